"""The sweep's units of work, trained by whichever process takes them: the stage (`dvc repro`) and any number of
workers, more processes here or on other machines.

    python -m src.sweep --worker                       # the units of both variants, in params.yaml's storage
    python -m src.sweep --worker --variant bn --storage postgresql://sweep@db-host/optuna
    python -m src.sweep                                # how far each variant's sweep is

A worker reads the same params.yaml, data and code as the stage: together they name the study it joins
(src/sweep_queue.py), so a worker of another checkout refuses to join. It trains units until its studies have none
left, or it found no unit to take for `--wait` seconds (while a study is not made yet). A database password is read
as PostgreSQL's own clients read it (PGPASSWORD, ~/.pgpass), never from the command line. A unit trains through the
one training path (src/stage_training.py), checkpointed in .checkpoints/: a process that takes a dead worker's unit
resumes from that checkpoint when it shares the directory (processes of one checkout), and from step 0 elsewhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Annotated

import optuna
import torch
from optuna.storages import RDBStorage
from pydantic import Field

from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, Params, load_params, validate_option, with_overrides
from src.engine.device import resolve_device
from src.errors import StudyError
from src.stores.databases import redact
from src.sweep.heartbeat import storage_errors
from src.sweep.queue import SweepQueue, Taken, refuse_other_live
from src.sweep.unit_result import UnitResult
from src.tracking import runs as tracking
from src.training import provenance
from src.training.members import MemberTable
from src.training.runner import TRAINING_SPLITS, TrainedMembers, Unit, stage_runs, train_members
from src.tune.study import GRACE_HEARTBEATS, open_storage

POLL_S = 1  # how often a process with nothing to train looks at the queue again
WAIT_S = 60.0  # how long a worker looks for a unit to take before it ends
NonNegativeFloat = Annotated[float, Field(ge=0)]


@dataclass(frozen=True)
class SweepPlan:
    """One variant's sweep: the grid's members, the units it is cut into (indices into the grid) and its identity."""

    params: Params
    variant: str
    members: MemberTable
    units: list[tuple[int, ...]]
    identity: dict
    device: torch.device

    @classmethod
    def of(cls, params: Params, variant: str) -> SweepPlan:
        device = resolve_device(params.train.device)
        members = MemberTable.grid(params.sweep)
        identity = provenance.stage_identity(params, "sweep", variant, device, TRAINING_SPLITS)
        return cls(params, variant, members, members.units(params.sweep.unit), identity, device)

    def unit_name(self, unit: int) -> str:
        """sweep-bn for the whole grid, sweep-bn-seed2 or sweep-bn-seed2-lr0.1-0.316 for a part of it."""
        return f"sweep-{self.variant}{self.members.unit_name(self.units[unit])}"

    def queue(self, storage: RDBStorage, create: bool) -> SweepQueue | None:
        """The stage's queue of this sweep, made on first use (`create`), or a worker's view of it (None before)."""
        url, heartbeat_s = self.params.sweep.storage, self.params.sweep.heartbeat_s
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per study made or trial queued says nothing here
        opened = SweepQueue.create if create else SweepQueue.find
        return opened(storage, url, self.identity, len(self.units), heartbeat_s)


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
            with train_members(plan.params, "sweep", plan.variant, members, log_percentiles=False, unit=unit) as done:
                done.finish()
                details = {"host": tracking.HOST, "pid": os.getpid(), "device": str(done.device),
                           "wall_time_s": done.result.wall_time_s, "resumed_from": done.resumed_from}  # fmt: skip
                queue.complete(taken, UnitResult.of(indices, done.result, done.predictions()), details)
        except Exception as error:
            queue.release(taken, error)
            raise
        except BaseException:  # Ctrl-C, SystemExit: not the unit's fault, so it is queued again at once
            queue.release(taken)
            raise
    print(done.describe(unit.name, plan.params.sweep.steps), file=sys.stderr)
    return done


def work_through(plan: SweepPlan, queue: SweepQueue, made_here: frozenset[str]) -> list[TrainedMembers]:
    """The stage's share: train units until none waits, then wait for those other workers hold (taking over a dead
    worker's); the units trained here."""
    trained, waiting = [], False
    while True:
        queue.fail_dead()
        taken = queue.take()
        if taken is not None:
            trained.append(train_unit(plan, queue, taken, made_here))
            waiting = False
            continue
        progress = queue.progress()
        if not progress.live:
            return trained
        if not waiting:
            grace = GRACE_HEARTBEATS * queue.heartbeat_s
            print(f"sweep@{plan.variant}: waiting for {progress.running} unit(s) training elsewhere (a dead "
                  f"worker's are trained again after {grace} s)", file=sys.stderr)  # fmt: skip
            waiting = True
        time.sleep(POLL_S)


@contextmanager
def stage_run(plan: SweepPlan, queue: SweepQueue) -> Iterator[frozenset[str]]:
    """The stage's MLflow run around its work: made with one child run per member on first use and recorded in the
    study, continued by a resumed stage; the units not done queued. Yields the member runs made now (none when
    continued)."""
    with ExitStack() as stack:
        with queue.locked():  # two stages at once would each make runs and queue units
            runs = queue.runs
            if runs is not None and not tracking.runs_exist([runs["parent"]]):
                raise StudyError(runs_elsewhere(queue))
            resumed = None if runs is None else (runs["parent"], None)
            run_id, member_runs = stack.enter_context(
                stage_runs(plan.params, "sweep", plan.variant, plan.members, plan.device, resumed)
            )
            queue.enqueue_missing()
            if runs is None:  # after the units are queued: a worker joins a study once its runs are recorded
                queue.record_runs(run_id, member_runs.run_ids)
        yield frozenset(member_runs.run_ids if runs is None else ())


def runs_elsewhere(queue: SweepQueue) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI", tracking.DEFAULT_TRACKING_URI)
    return (
        f"study {queue.study.study_name}'s MLflow runs are not in the tracking store {redact(uri)}: point "
        f"MLFLOW_TRACKING_URI at the store its stage logs to (or delete the study to start the sweep over)"
    )


# --- a worker --------------------------------------------------------------------------------------------------


def serve(plans: Sequence[SweepPlan], storage: RDBStorage, wait_s: float) -> list[TrainedMembers]:
    """Take units of the `plans`' studies until every study has none left to train, or none was there to take for
    `wait_s` seconds (a study not made yet); the units trained."""
    url = plans[0].params.sweep.storage
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
                tracking.configure(plan.params.tracking.experiment)
                if not tracking.runs_exist([queue.runs["parent"]]):
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
            lines.append(f"sweep@{plan.variant}: not started in {redact(plan.params.sweep.storage)}")
            continue
        progress = queue.progress()
        lines.append(f"sweep@{plan.variant}: study {queue.study.study_name}: {progress.done} of {len(plan.units)} "
                     f"units done, {progress.running} running, {progress.waiting} waiting")  # fmt: skip
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description="Train the sweep's units of work beside its stage, or show its progress.")
    parser.add_argument("--worker", action="store_true", help="train units until none is left to take")
    parser.add_argument("--variant", choices=VARIANTS, help="only this variant's units (default: both)")
    parser.add_argument("--storage", help="the Optuna storage, e.g. postgresql://user@host/db (sweep.storage)")
    parser.add_argument("--wait", type=float, default=WAIT_S, help=f"end after this long with no unit to take, "
                        f"while a study is not made yet (default {WAIT_S:g} s)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params()
    if args.storage is not None:
        params = with_overrides(params, {"sweep.storage": args.storage})
    wait_s = validate_option(NonNegativeFloat, args.wait, "--wait")
    plans = [SweepPlan.of(params, variant) for variant in ([args.variant] if args.variant else VARIANTS)]
    url = params.sweep.storage
    storage = open_storage(url, params.sweep.heartbeat_s)
    with storage_errors(url):
        if not args.worker:
            print("\n".join(status(plans, storage)))
            return
        trained = serve(plans, storage, wait_s)
    print(f"sweep worker {tracking.HOST}:{os.getpid()}: trained {len(trained)} unit(s); none left to take")


if __name__ == "__main__":
    report_user_errors(main)
