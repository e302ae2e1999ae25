"""The databases workers share: URLs shown without their password, a driver's complaint in one line, connections that
wait for a busy writer or give up on a dead server, and one lock per database around its first use."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy

from src.errors import StudyError
from src.stores.databases import (
    CONNECT_TIMEOUT_S,
    SQLITE_TIMEOUT_S,
    at_project_root,
    connect_args,
    first_use,
    project_root,
    reason,
    redact,
)
from tests.processes import stage_env


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://tuner:s3cret@db-host:5432/optuna", "postgresql://tuner:***@db-host:5432/optuna"),
        ("postgresql+psycopg2://tuner:p%40ss@db-host/optuna", "postgresql+psycopg2://tuner:***@db-host/optuna"),
        ("not a url //tuner:s3cret@somewhere", "not a url //tuner:***@somewhere"),
        ("postgresql://tuner@db-host/optuna", "postgresql://tuner@db-host/optuna"),
        ("sqlite:///optuna.db", "sqlite:///optuna.db"),
        ("postgresql://tuner:p@ss:word@db-host/optuna", "postgresql://tuner:***@db-host/optuna"),
    ],
    ids=["password", "encoded-password", "unparsable", "no-password", "sqlite", "raw-at-and-colon-in-password"],
)
def test_redact_hides_a_password_and_keeps_the_rest(url, shown):
    assert redact(url) == shown


class _DriverError(Exception):
    pass


def test_reason_is_the_first_line_of_what_the_driver_said_without_a_password():
    said = _DriverError("cannot reach postgresql://tuner:s3cret@db-host/optuna\nIs the server running on that host?")
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, said)  # SQLAlchemy keeps the driver's error as .orig
    assert reason(wrapped) == "cannot reach postgresql://tuner:***@db-host/optuna"
    assert reason(ValueError("plain\nsecond line")) == "plain"
    assert reason(TimeoutError()) == "TimeoutError"  # nothing said: what went wrong, by its kind


def test_sqlite_waits_for_a_busy_writer_and_a_server_connection_gives_up_on_a_dead_host():
    assert connect_args(sqlalchemy.engine.make_url("sqlite:///optuna.db")) == {"timeout": SQLITE_TIMEOUT_S}
    assert connect_args(sqlalchemy.engine.make_url("postgresql://h/db")) == {"connect_timeout": CONNECT_TIMEOUT_S}


# Says when it is about to enter first_use on argv[1] and when it is in, and holds the lock until argv[2] exists
HOLDER = """
import pathlib, sys, time
from src.stores.databases import first_use
print("entering", flush=True)
with first_use(sys.argv[1]):
    print("entered", flush=True)
    while not pathlib.Path(sys.argv[2]).exists():
        time.sleep(0.01)
"""


def _hold(url: str, release: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(release)], env=stage_env(), stdout=subprocess.PIPE, text=True
    )


def _says(process: subprocess.Popen, what: str) -> None:
    assert process.stdout.readline() == f"{what}\n", f"the process died before it was {what}"


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_first_use_lets_one_process_in_at_a_time_and_the_next_in_when_it_leaves(tmp_path, database, request):
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    else:
        url = request.getfixturevalue("new_postgres_database")("first_use")
    first, second = tmp_path / "release-first", tmp_path / "release-second"
    second.touch()  # the second leaves as soon as it is in
    holder = _hold(url, first)
    waiter = None
    try:
        _says(holder, "entering")
        _says(holder, "entered")
        waiter = _hold(url, second)
        _says(waiter, "entering")
        time.sleep(1)
        assert waiter.poll() is None, "the second process got in while the first held the lock"
        first.touch()
        assert holder.wait(timeout=30) == 0
        _says(waiter, "entered")
        assert waiter.wait(timeout=30) == 0
    finally:
        for process in (holder, waiter):
            if process is not None:
                process.kill()
                process.wait()


def test_on_sqlite_the_lock_is_a_file_beside_the_database(tmp_path):
    with first_use(f"sqlite:///{tmp_path / 'optuna.db'}"):
        assert (tmp_path / "optuna.db.lock").exists()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "http://mlflow-server:5000", "not a url"], ids=lambda url: url
)
def test_a_database_no_other_process_can_share_takes_no_lock(tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    with first_use(url):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_lock_that_cannot_be_created_is_one_error_naming_the_directory(tmp_path):
    missing = tmp_path / "no-such-dir"
    locked = first_use(f"sqlite:///{missing / 'optuna.db'}")
    with pytest.raises(StudyError, match=rf"^{missing}: cannot create the database's lock file \(No such file"), locked:
        pass


def test_an_unreachable_server_is_one_error_naming_it_without_its_password():
    with pytest.raises(StudyError) as error, first_use("postgresql://tuner:s3cret@127.0.0.1:1/db"):
        pass
    (line,) = str(error.value).splitlines()
    assert line.startswith("postgresql://tuner:***@127.0.0.1:1/db: cannot connect (") and "s3cret" not in line


def test_the_project_root_is_dvcs_root_where_dvc_sets_it_and_the_working_directory_otherwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert project_root() == tmp_path.resolve()
    monkeypatch.setenv("DVC_ROOT", "/somewhere/else")  # a temporary experiment's stage runs in a copy
    assert project_root() == Path("/somewhere/else")


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:///optuna.db", "sqlite:////project/optuna.db"),
        ("sqlite:///stores/optuna.db", "sqlite:////project/stores/optuna.db"),
        ("sqlite:////elsewhere/optuna.db", "sqlite:////elsewhere/optuna.db"),
        ("sqlite://", "sqlite://"),
        ("postgresql://tuner:s3cret@db-host/optuna", "postgresql://tuner:s3cret@db-host/optuna"),
        ("not a url", "not a url"),
    ],
)
def test_a_relative_sqlite_store_lives_at_the_project_root(monkeypatch, url, resolved):
    monkeypatch.setenv("DVC_ROOT", "/project")
    assert at_project_root(url) == resolved
