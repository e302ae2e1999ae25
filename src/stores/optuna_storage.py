"""Optuna's storage as the study's workers share it: an RDB database (SQLite on one machine, PostgreSQL across
machines) with heartbeats, so that a dead worker's trial is failed and queued again for another.

Tuning (src/tune/) and the sweep's queue (src/sweep/) both keep their trials here.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from src.errors import StudyError
from src.stores import databases
from src.stores.databases import reason, redact

SUPPORTED_DATABASES = ("sqlite", "postgresql")
HEARTBEAT_S = 10
GRACE_HEARTBEATS = 3  # a trial silent this many heartbeats is stale; >2 leaves room for a busy database
MAX_RETRIES = 2  # a stale trial is re-queued at most this often (a learning rate that kills its worker stops)
PURPOSE = "purpose"  # the study user attr that says what a study is for (tuning, or the sweep's queue)


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> RDBStorage:
    """An Optuna RDB storage with heartbeats; a bad, unsupported or unreachable URL is one StudyError line."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        raise StudyError(
            f"storage {redact(url)!r} is not a database URL (e.g. sqlite:///optuna.db or postgresql://user@host/db)"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in SUPPORTED_DATABASES:
        raise StudyError(f"storage {shown}: unsupported database '{parsed.drivername}' (use sqlite or postgresql)")
    url = databases.at_project_root(url)  # a stage of a temporary DVC experiment shares the project's studies
    probe = None
    try:
        probe = sqlalchemy.create_engine(url, connect_args=databases.connect_args(parsed))
        probe.connect().close()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
        raise StudyError(f"storage {shown}: cannot connect ({reason(error)})") from None
    finally:
        if probe is not None:
            probe.dispose()
    try:
        # workers that start together on an empty database would each create Optuna's tables: one at a time
        with databases.first_use(url), quiet_heartbeat_warnings():
            return RDBStorage(
                url,
                engine_kwargs={"connect_args": databases.connect_args(parsed)},
                heartbeat_interval=heartbeat_s,
                grace_period=GRACE_HEARTBEATS * heartbeat_s,
                # a dead worker's trial is re-queued at its learning rate, at most MAX_RETRIES times
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
            )
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise StudyError(f"storage {shown}: cannot create Optuna's tables ({reason(error)})") from None
    except RuntimeError as error:  # Optuna's schema check: the storage was made by another Optuna version
        raise StudyError(f"storage {shown}: {reason(error)}") from None


@contextmanager
def quiet_heartbeat_warnings() -> Iterator[None]:
    """Silence Optuna's notes on heartbeats: this project drives them itself (Study.optimize would, but ask/tell is
    what lets trials train together), and the heartbeat API is marked experimental."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        yield


def describe_study(study: optuna.Study, value: str, purpose: str) -> None:
    """Name what a trial's value is and say what the study is for, as optuna-dashboard shows them (a study made
    before they were set gets them too)."""
    if study.metric_names != [value]:
        with warnings.catch_warnings():  # Optuna's own way of naming the objective, marked experimental since 3.2
            warnings.filterwarnings(
                "ignore", message=".*set_metric_names is experimental", category=ExperimentalWarning
            )
            study.set_metric_names([value])
    if study.user_attrs.get(PURPOSE) != purpose:
        study.set_user_attr(PURPOSE, purpose)
