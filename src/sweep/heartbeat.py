"""A unit's heartbeat while it trains, and a storage that stops answering: the queue's side that can fail mid-run.

A worker records its unit's heartbeat in the Optuna storage every `heartbeat_s` from a thread, since evaluations and
checkpoints may be further apart than the grace period. When the storage stops answering (a database server gone,
a network cut), training goes on to the next checkpoint and stops there with one line saying how to resume: no more
than a checkpoint's steps are lost, and the unit resumes from that checkpoint when the command runs again.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy
from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage

from src.errors import StudyError
from src.stores.databases import reason, redact

STORAGE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, StorageInternalError)


class Heartbeat:
    """A thread recording a unit's heartbeat every `every` s while it trains (so another worker can tell it is alive);
    `check` (at a checkpoint) stops the training there when the storage has stopped answering, so that no more than a
    checkpoint's steps are at risk."""

    def __init__(self, storage: RDBStorage, trial_id: int, every: int, url: str):
        self.storage, self.trial_id, self.every, self.url = storage, trial_id, every, url
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.storage.record_heartbeat(self.trial_id)
                self.error = None
            except STORAGE_ERRORS as error:
                self.error = error
                print(f"warning: heartbeat not recorded in {redact(self.url)}: {_why(error)}", file=sys.stderr)

    def check(self, where: str) -> None:
        """Raise a StudyError saying how to resume from `where` (a checkpoint) if the storage no longer answers.

        Asked of the storage itself at every checkpoint, not only after a failed beat: a unit shorter than a few
        heartbeats would otherwise train on past a storage gone and fail at its end, with its steps since the last
        checkpoint lost. One write per checkpoint is nothing beside the checkpoint's own."""
        try:
            self.storage.record_heartbeat(self.trial_id)
            self.error = None
        except STORAGE_ERRORS as error:
            raise StudyError(
                f"storage {redact(self.url)} stopped answering ({_why(error)}): stopped at {where}; run the same "
                "command again once it answers, and the unit resumes there"
            ) from None


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """A storage that goes away while the queue talks to it is one StudyError line naming it (password redacted)."""
    try:
        yield
    except STORAGE_ERRORS as error:
        raise StudyError(
            f"storage {redact(url)} stopped answering ({_why(error)}); the units done are kept in it: run the same "
            "command again once it answers"
        ) from None


def _why(error: BaseException) -> str:
    """What the driver said: Optuna wraps it in a StorageInternalError of its own words."""
    return reason(error.__cause__ if isinstance(error, StorageInternalError) and error.__cause__ else error)
