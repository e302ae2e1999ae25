"""The sweep's work queue: each unit taken once, a dead worker's unit queued again, every result kept and compared.

In-process, on an SQLite storage; tests/test_sweep.py runs the stage and worker processes on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from src.errors import StudyError
from src.stores.optuna_storage import PURPOSE, open_storage
from src.sweep.queue import UNIT_VALUE, SweepQueue, refuse_other_live, study_name
from tests.sweep.test_unit_result import trained

IDENTITY = {"variant": "bn", "params": {"sweep": {"steps": 60}}}  # what a stage's identity looks like, in short
UNITS = 3


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/optuna.db"


def stage_queue(url: str, identity: dict = IDENTITY) -> SweepQueue:
    """A study as the stage leaves it: made, its MLflow runs recorded, every unit queued."""
    queue = SweepQueue.create(open_storage(url, heartbeat_s=1), url, identity, UNITS, heartbeat_s=1)
    queue.record_runs("parent-run", [f"member-run-{k}" for k in range(UNITS)])
    with queue.locked():
        queue.enqueue_missing()
    return queue


def worker_queue(url: str, identity: dict = IDENTITY) -> SweepQueue:
    """Another process's view of the same study."""
    return SweepQueue.find(open_storage(url, heartbeat_s=1), url, identity, UNITS, heartbeat_s=1)


def states(queue: SweepQueue) -> list[tuple[int, str]]:
    return [(trial.user_attrs["unit"], trial.state.name) for trial in queue.study.get_trials()]


def test_the_study_is_named_by_a_digest_of_the_identity():
    assert study_name(IDENTITY).startswith("bn-mnist-sweep-bn-")
    assert study_name(IDENTITY) != study_name({**IDENTITY, "device": "cuda"})


def test_the_queue_says_in_optuna_dashboard_that_it_is_no_search_and_what_a_units_value_is(url):
    study = stage_queue(url).study
    assert study.user_attrs[PURPOSE] == "sweep@bn: a queue of units of work, not a search"
    assert study.metric_names == [UNIT_VALUE] == ["mean test accuracy of the unit's members"]


def test_every_unit_is_queued_once_however_often_the_stage_starts(url):
    queue = stage_queue(url)
    with queue.locked():
        assert queue.enqueue_missing() == 0
    assert states(queue) == [(0, "WAITING"), (1, "WAITING"), (2, "WAITING")]


def test_workers_taking_at_once_take_each_unit_once(url):
    stage, worker = stage_queue(url), worker_queue(url)
    taken = [queue.take() for queue in (stage, worker, worker, stage)]

    assert sorted(unit.unit for unit in taken[:3]) == [0, 1, 2] and taken[3] is None
    assert stage.progress().running == 3


def test_a_worker_finds_the_study_only_once_the_stage_made_it_and_its_runs(url):
    assert worker_queue(url) is None
    queue = SweepQueue.create(open_storage(url, heartbeat_s=1), url, IDENTITY, UNITS, heartbeat_s=1)
    assert worker_queue(url) is None, "no MLflow runs recorded yet"
    queue.record_runs("parent-run", ["a", "b", "c"])
    assert worker_queue(url).runs == {"parent": "parent-run", "members": ["a", "b", "c"]}


def test_a_unit_whose_worker_on_this_host_is_gone_is_queued_again_at_once(url):
    queue = stage_queue(url)
    taken = queue.take()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    worker = {**queue.study.trials[taken.number].user_attrs["worker"], "pid": int(ended.stdout)}  # as if it took it
    queue.storage.set_trial_user_attr(taken.trial_id, "worker", worker)

    queue.fail_dead()

    assert states(queue)[0] == (taken.unit, "FAIL")
    (retry,) = [trial for trial in queue.study.get_trials(states=(TrialState.WAITING,)) if trial.number == UNITS]
    assert retry.user_attrs["unit"] == taken.unit and retry.system_attrs["failed_trial"] == taken.number


def test_a_unit_whose_worker_stopped_beating_is_queued_again(url):
    queue = stage_queue(url)
    taken = queue.take()  # one heartbeat, then silence: grace is 3 heartbeats of 1 s
    queue.fail_dead()
    assert queue.progress().running == 1
    time.sleep(4.5)  # SQLite's clock (CURRENT_TIMESTAMP) counts whole seconds: 3 s of grace may read as 3

    queue.fail_dead()

    assert states(queue)[taken.number] == (taken.unit, "FAIL")
    assert queue.progress().waiting == UNITS


def test_a_stored_result_comes_back_from_the_study_in_unit_order(url):
    queue = stage_queue(url)
    results = {unit: trained((unit,), seed=unit) for unit in range(UNITS)}
    for _ in range(UNITS):
        taken = queue.take()
        queue.complete(taken, results[taken.unit], {"host": "here", "wall_time_s": 1.0})

    back = worker_queue(url).results([f"unit{unit}" for unit in range(UNITS)])

    assert [result.differences(results[unit]) for unit, result in enumerate(back)] == [[]] * UNITS
    assert queue.study.trials[0].user_attrs["host"] == "here", "who trained it goes to the trial, not the result"


def test_a_worker_presumed_dead_keeps_its_result_and_a_differing_retry_is_an_error(url):
    queue = stage_queue(url)
    taken = queue.take()
    queue.release(taken)  # failed under it (as a stale heartbeat would) and queued again
    retry = next(trial for trial in iter(queue.take, None) if trial.unit == taken.unit)

    queue.complete(taken, trained((taken.unit,), seed=1), {})  # the presumed dead worker finishes after all
    queue.complete(retry, trained((taken.unit,), seed=2), {})

    kept = queue.study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(str(trial.user_attrs.get("presumed_dead")) for trial in kept) == [str(taken.number), "None"]
    with pytest.raises(StudyError, match=rf"unit{taken.unit} was trained 2 times and the results differ"):
        queue.results([f"unit{unit}" for unit in range(UNITS)])


def test_a_unit_that_failed_is_named_with_why_and_queued_again_by_the_next_stage(url):
    queue = stage_queue(url)
    taken = queue.take()
    queue.release(taken, RuntimeError("out of memory\nsecond line"))
    assert queue.progress().live == UNITS - 1, "a unit's own error is not retried: it would recur"

    with pytest.raises(StudyError, match=r"unit0 did not finish \(trial 0 on \S+ \(pid \d+\): out of memory\)"):
        queue.results(["unit0", "unit1", "unit2"])
    with queue.locked():
        assert queue.enqueue_missing() == 1


def test_a_worker_of_another_checkout_is_refused_naming_what_differs(url):
    stage_queue(url)
    mine = {"variant": "bn", "params": {"sweep": {"steps": 30}}}
    storage = open_storage(url, heartbeat_s=1)
    with pytest.raises(StudyError, match=r"this checkout differs from .* \(params.sweep.steps: 60 -> 30\)"):
        refuse_other_live(storage, url, mine)
    refuse_other_live(storage, url, IDENTITY)  # its own study is no reason to refuse
    refuse_other_live(storage, url, {**mine, "variant": "vanilla"})  # nor another variant's
