"""The sweep's units of work, trained by whichever process takes them: the stage (`dvc repro`) and any number of
workers (`python -m src.sweep --worker`), more processes here or on other machines.

A worker reads the same params.yaml, data and code as the stage: together they name the study it joins (queue.py),
so a worker of another checkout refuses to join. It trains units until its studies have none left, or it found no
unit to take for `--wait` seconds (while a study is not made yet). A unit trains through the one training path
(src/training/runner.py), checkpointed in .checkpoints/: a process that takes a dead worker's unit resumes from that
checkpoint when it shares the directory (processes of one checkout), and from step 0 elsewhere.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import mlflow
from optuna.storages import RDBStorage

from src.engine.progress import EVERY_S
from src.errors import StudyError
from src.stores.databases import redact
from src.stores.optuna_storage import GRACE_HEARTBEATS
from src.stores.workers import HOST
from src.sweep.plan import SweepPlan
from src.sweep.queue import SweepQueue, Taken, refuse_other_live
from src.sweep.unit_result import UnitResult
from src.tracking import store
from src.training.runner import TrainedMembers, Unit, stage_runs, train_members

POLL_S = 1  # how often a process with nothing to train looks at the queue again


def train_unit(
    plan: SweepPlan, queue: SweepQueue, taken: Taken, made_here: frozenset[str] = frozenset()
) -> TrainedMembers:
    """Train the unit `taken` into the MLflow runs its stage made (`made_here`: those this process made, in this
    invocation), store its result in its trial and close it."""
    indices, runs = plan.units[taken.unit], queue.runs
    member_runs = tuple(runs["members"][k] for k in indices)
    untouched = not taken.retried and set(member_runs) <= made_here
    with queue.beating(taken) as heartbeat:
        unit = Unit(plan.unit_name(taken.unit), runs["parent"], member_runs, heartbeat.check, untouched)
        try:
            members = plan.members.subset(indices)
            with train_members(plan.run, plan.variant, members, log_percentiles=False, unit=unit) as done:
                done.finish()
                details = {
                    "host": HOST,
                    "pid": os.getpid(),
                    "device": str(done.device),
                    "wall_time_s": done.result.wall_time_s,
                    "resumed_from": done.resumed_from,
                }
                queue.complete(taken, UnitResult.of(indices, done.result, done.predictions()), details)
        except Exception as error:
            queue.release(taken, error)
            raise
        except BaseException:  # Ctrl-C, SystemExit: not the unit's fault, so it is queued again at once
            queue.release(taken)
            raise
    print(done.describe(unit.name, plan.sweep.steps), file=sys.stderr)
    return done


def work_through(plan: SweepPlan, queue: SweepQueue, made_here: frozenset[str]) -> list[TrainedMembers]:
    """The stage's share: train units until none waits, then wait for those other workers hold (taking over a dead
    worker's); the units trained here. A line on stderr counts the units at each unit taken, and every 30 s of
    waiting."""
    trained, said_at = [], -math.inf
    while True:
        queue.fail_dead()
        taken = queue.take()
        if taken is not None:
            print(f"{_counts(plan, queue)}; training {plan.unit_name(taken.unit)} here", file=sys.stderr, flush=True)
            trained.append(train_unit(plan, queue, taken, made_here))
            continue
        if not queue.progress().live:
            return trained
        if time.monotonic() - said_at >= EVERY_S:
            grace = GRACE_HEARTBEATS * queue.heartbeat_s
            print(
                f"{_counts(plan, queue)}; waiting for those training elsewhere (a dead worker's are trained again "
                f"after {grace} s)",
                file=sys.stderr,
                flush=True,
            )
            said_at = time.monotonic()
        time.sleep(POLL_S)


def _counts(plan: SweepPlan, queue: SweepQueue) -> str:
    """'sweep@bn: 3 of 10 units done, 2 running, 5 waiting'."""
    progress = queue.progress()
    return (
        f"sweep@{plan.variant}: {progress.done} of {len(plan.units)} units done, {progress.running} running, "
        f"{progress.waiting} waiting"
    )


@contextmanager
def stage_run(plan: SweepPlan, queue: SweepQueue) -> Iterator[frozenset[str]]:
    """The stage's MLflow run around its work: made with one child run per member on first use and recorded in the
    study, continued by a resumed stage; the units not done queued. Yields the member runs made now (none when
    continued)."""
    with ExitStack() as stack:
        with queue.locked():  # two stages at once would each make runs and queue units
            runs = queue.runs
            if runs is not None and not store.runs_exist([runs["parent"]]):
                raise StudyError(runs_elsewhere(queue))
            resumed = None if runs is None else (runs["parent"], None)
            run_id, member_runs = stack.enter_context(
                stage_runs(plan.run, plan.variant, plan.members, plan.device, resumed)
            )
            queue.enqueue_missing()
            if runs is None:  # after the units are queued: a worker joins a study once its runs are recorded
                queue.record_runs(run_id, member_runs.run_ids)
        yield frozenset(member_runs.run_ids if runs is None else ())


def runs_elsewhere(queue: SweepQueue) -> str:
    uri = mlflow.get_tracking_uri()
    return (
        f"study {queue.study.study_name}'s MLflow runs are not in the tracking store {redact(uri)}: point "
        f"MLFLOW_TRACKING_URI at the store its stage logs to (or delete the study to start the sweep over)"
    )


# --- a worker --------------------------------------------------------------------------------------------------


def serve(plans: Sequence[SweepPlan], storage: RDBStorage, wait_s: float) -> list[TrainedMembers]:
    """Take units of the `plans`' studies until every study has none left to train, or none was there to take for
    `wait_s` seconds (a study not made yet); the units trained."""
    url = plans[0].sweep.storage
    trained, queues, idle_since = [], {}, time.monotonic()
    while time.monotonic() - idle_since < wait_s:
        if len(queues) == len(plans) and not any(queue.progress().live for queue in queues.values()):
            break
        for plan in plans:
            queue = queues.get(plan.variant) or plan.queue(storage, create=False)
            if queue is None or not queue.progress().live:
                refuse_other_live(storage, url, plan.identity)
            if queue is None:
                continue
            if plan.variant not in queues:  # MLflow is touched once there is a study to log into
                store.configure(plan.run.experiment)
                if not store.runs_exist([queue.runs["parent"]]):
                    raise StudyError(runs_elsewhere(queue))
            queues[plan.variant] = queue
            queue.fail_dead()
            taken = queue.take()
            if taken is not None:
                trained.append(train_unit(plan, queue, taken))
                idle_since = time.monotonic()
                break
        else:
            time.sleep(POLL_S)
    if not queues:
        raise StudyError(
            f"no sweep study of this checkout in {redact(url)} after {wait_s:g} s: start the stage "
            "(`dvc repro`) with the same commit, params.yaml and data"
        )
    return trained


def status(plans: Sequence[SweepPlan], storage: RDBStorage) -> list[str]:
    """One line per variant: its study and how many of its units are done, running and waiting."""
    lines = []
    for plan in plans:
        queue = plan.queue(storage, create=False)
        if queue is None:
            lines.append(f"sweep@{plan.variant}: not started in {redact(plan.sweep.storage)}")
            continue
        progress = queue.progress()
        lines.append(
            f"sweep@{plan.variant}: study {queue.study.study_name}: {progress.done} of {len(plan.units)} "
            f"units done, {progress.running} running, {progress.waiting} waiting"
        )
    return lines
