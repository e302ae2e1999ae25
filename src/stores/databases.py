"""The databases the study shares between processes (MLflow's store, Optuna's storage): their URLs, and one lock.

Several workers may start at once against one empty database, on one machine or many. Creating a store's tables
(MLflow's and Optuna's schema migrations) and its first rows is not safe to run twice at the same moment: SQLite
answers "duplicate column name", alembic "expected to match one row", a unique key "IntegrityError". `first_use`
serialises that moment across processes: a file lock beside an SQLite file, an advisory lock on a PostgreSQL server.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import sqlalchemy

from src.errors import StudyError

CONNECT_TIMEOUT_S = 10  # an unreachable database server fails fast instead of hanging
SQLITE_TIMEOUT_S = 60  # how long a writer waits for SQLite's lock before "database is locked"


def redact(url: str) -> str:
    """`url` with any password replaced by ***, even when the URL does not parse (a password holding "@" or ":"
    included: everything up to the authority's last "@" is hidden)."""
    return re.sub(r"(//[^/@:]*:)[^/]*@", r"\1***@", url)


def reason(error: BaseException) -> str:
    """The first line of what a database driver (or any library) said, without any password."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return redact(lines[0]) if lines else type(cause).__name__


def project_root() -> Path:
    """The project's root directory, also when a stage runs in a temporary copy of the project."""
    # `dvc exp run --temp` and queued experiments (`dvc queue start`) run every stage in a copy under .dvc/tmp/exps/,
    # deleted when the experiment ends: a git repository of its own with no remote, so git cannot lead back. DVC
    # points DVC_ROOT at the original root there ("and not an executor tempdir root", DVC 3.67's queue/base.py), and
    # at the root for `dvc repro` and `dvc exp run` in the workspace. A stage run by hand runs from the root.
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def at_project_root(url: str) -> str:
    """`url` with a relative SQLite path taken from the project's root (`project_root`), not the working directory:
    a stage of a temporary experiment then shares the project's store. Other URLs are returned as they are."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return url
    if Path(parsed.database).is_absolute():
        return url
    return parsed.set(database=str(project_root() / parsed.database)).render_as_string(hide_password=False)


def connect_args(url: sqlalchemy.engine.URL) -> dict:
    """Driver options: SQLite waits for a busy writer, a server connection gives up after CONNECT_TIMEOUT_S."""
    if url.get_backend_name() == "sqlite":
        return {"timeout": SQLITE_TIMEOUT_S}
    return {"connect_timeout": CONNECT_TIMEOUT_S}


def first_use(url: str) -> Iterator[None] | nullcontext:
    """A lock held by one process at a time per database, around the creation of its tables and first rows.

    SQLite: an exclusive `flock` on `<file>.lock` beside the database (SQLite's own locks do not cover a schema
    migration, which spans many transactions). PostgreSQL: a session-level advisory lock. Other URLs (an MLflow
    tracking server) serialise on their own side, so the lock is a no-op.
    """
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        return nullcontext()
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return _file_lock(Path(parsed.database).with_name(Path(parsed.database).name + ".lock"))
    if backend == "postgresql":
        return _advisory_lock(parsed)
    return nullcontext()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        handle = path.open("a")
    except OSError as error:
        raise StudyError(f"{path.parent}: cannot create the database's lock file ({error.strerror})") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, also by a killed process
        yield


# one key for every first use of a database by this project (a 63-bit integer, as pg_advisory_lock takes)
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"bn-mnist: first use of a database").digest()[:8], "big") >> 1


@contextmanager
def _advisory_lock(url: sqlalchemy.engine.URL) -> Iterator[None]:
    engine = sqlalchemy.create_engine(url, connect_args=connect_args(url), poolclass=sqlalchemy.pool.NullPool)
    try:
        try:
            connection = engine.connect()
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise StudyError(f"{url.render_as_string(hide_password=True)}: cannot connect ({reason(error)})") from None
        with connection:
            # a session lock: the server releases it when the connection ends, also when the process is killed
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_KEY})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_KEY})
    finally:
        engine.dispose()
