"""A unit's heartbeat: a storage that stops answering stops training at the next checkpoint, in one line."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy

from src.errors import StudyError
from src.sweep.heartbeat import Heartbeat, storage_errors


class _Unreachable:
    def record_heartbeat(self, trial_id: int) -> None:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))


class _Answering:
    def __init__(self):
        self.beats = 0

    def record_heartbeat(self, trial_id: int) -> None:
        self.beats += 1


def test_each_checkpoint_asks_the_storage_itself_and_a_storage_that_answers_lets_training_go_on():
    storage = _Answering()
    heartbeat = Heartbeat(storage, trial_id=1, every=60, url="sqlite:///optuna.db")
    heartbeat.error = RuntimeError("a beat failed a moment ago")
    heartbeat.check("step 100, checkpointed in .checkpoints/sweep-bn.pt")
    heartbeat.check("step 200, checkpointed in .checkpoints/sweep-bn.pt")
    assert storage.beats == 2 and heartbeat.error is None


def test_a_storage_that_stops_answering_stops_training_at_a_checkpoint_with_the_way_to_resume():
    # no beat has failed yet (the thread was never started): the checkpoint's own question finds the storage gone
    heartbeat = Heartbeat(_Unreachable(), trial_id=1, every=1, url="postgresql://sweep:s3cret@db/optuna")

    with pytest.raises(StudyError) as stopped:
        heartbeat.check("step 200, checkpointed in .checkpoints/sweep-bn.pt")

    assert str(stopped.value) == (
        "storage postgresql://sweep:***@db/optuna stopped answering (server closed the connection): stopped at "
        "step 200, checkpointed in .checkpoints/sweep-bn.pt; run the same command again once it answers, and the "
        "unit resumes there"
    )


def test_a_storage_lost_between_units_is_one_line_without_its_password():
    expected = r"^storage postgresql://sweep:\*\*\*@db/optuna stopped answering \(boom\)"
    with pytest.raises(StudyError, match=expected), storage_errors("postgresql://sweep:s3cret@db/optuna"):
        raise optuna.exceptions.StorageInternalError("boom")


def test_the_drivers_words_are_shown_not_optunas_wrapper():
    expected = r"stopped answering \(server closed the connection\)"
    with pytest.raises(StudyError, match=expected), storage_errors("sqlite:///optuna.db"):
        try:
            _Unreachable().record_heartbeat(1)
        except sqlalchemy.exc.OperationalError as error:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from error
