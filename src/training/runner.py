"""The one training path of train@, sweep@ and edge@: a member table trained to the end, checkpointed, resumed bit for
bit after a kill, and tracked in MLflow without gaps.

The stage's parent run and one child run per member are created when training starts and their ids go into every
checkpoint, so a resumed invocation continues the same runs. At each checkpoint the members' histories so far are
logged; a resumed invocation first logs whatever the killed one saved but did not get into MLflow.

A `Unit` is a block of a stage's members trained as one model by whichever process takes it (the sweep's units of
work, src/sweep/): the same path, with its own checkpoint, continuing the member runs its stage made for it, under
the parent run the stage holds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from src import paths
from src.config import TrainingRun
from src.data.splits import Split, load_split
from src.engine.clock import PhaseClock
from src.engine.device import resolve_device
from src.engine.network import MLP, build_model
from src.engine.schedule import schedule_for
from src.engine.scoring import predict_members
from src.engine.trainer import LEVELS, Trainer, TrainingData, TrainingHistory
from src.stores.databases import redact
from src.tracking import runs, store
from src.training import provenance
from src.training.checkpoint import Checkpoint
from src.training.members import MemberTable

TRAINING_SPLITS = ("train", "test")  # what training reads: it steps on train and is scored on test as it goes


@dataclass(frozen=True)
class Unit:
    """A block of a stage's members trained as one model in any process: its name (and its checkpoint's), the runs its
    stage made for it, and what to check after each checkpoint is saved (it raises to stop training there)."""

    name: str
    parent_run: str
    member_runs: tuple[str, ...]
    after_checkpoint: Callable[[str], None] = lambda where: None  # where: "step N, checkpointed in <path>"
    runs_untouched: bool = False  # made by this process and not logged to yet (tracking.ContinuedMemberRuns)


@dataclass
class TrainedMembers:
    """What `train_members` hands the stage inside its block: the trained members and where they are tracked."""

    members: MemberTable
    model: MLP  # after the last step: BN under Algorithm 2's statistics, in eval mode
    result: TrainingHistory
    device: torch.device
    splits: Mapping[str, Split]
    member_runs: runs.MemberRuns
    resumed_from: int  # the step training resumed from; 0 for a fresh start
    clock: PhaseClock  # the trainer's, which times the stage's phases around training too
    unit: Unit | None = None

    @property
    def checkpoint_overhead(self) -> float:
        """Writing checkpoints and logging the histories as a fraction of training time."""
        spent = self.clock.total(("checkpoints", "logging"))
        return spent / self.result.wall_time_s if self.result.wall_time_s else 0.0

    def predictions(self) -> np.ndarray:
        """(K, test images): each trained member's predicted class of every test image (BN under Algorithm 2)."""
        with self.clock.phase("scoring"):
            return predict_members(self.model, self.splits["test"]).cpu().numpy()

    def describe(self, stage: str, steps: int) -> str:
        """One line: what was trained, how long it took and where the time went, whether it resumed."""
        resumed = f", resumed from step {self.resumed_from:,}" if self.resumed_from else ""
        return (
            f"{stage}: {len(self.members)} members × {steps:,} steps in {self.result.wall_time_s:.1f} s of training "
            f"on {self.device}{resumed}; {self.clock.describe()}"
        )

    def finish(self, member_metrics: Sequence[Mapping[str, float]] | None = None) -> None:
        """Every member's final accuracy, diverged flag and `member_metrics`, the stage's timing; then the member
        runs FINISHED."""
        final = self.result.final
        extra = member_metrics or [{} for _ in final.accuracy]
        timing = {
            "training_wall_time_s": self.result.wall_time_s,
            "checkpoint_overhead": self.checkpoint_overhead,
            **{f"time_{phase}_s": seconds for phase, seconds in self.clock.seconds.items()},
        }
        unit_timing = timing if self.unit is not None else {}  # a unit's time is its members', not the stage's
        with self.clock.phase("logging"):
            self.member_runs.finish(
                tags=[{"diverged": str(diverged).lower()} for diverged in final.diverged],
                metrics=[
                    {"final_test_accuracy": accuracy, **more, **unit_timing}
                    for accuracy, more in zip(final.accuracy, extra, strict=True)
                ],
            )
            if self.unit is None:
                runs.log_results(timing, artifacts=[])


@contextmanager
def train_members(
    run: TrainingRun, variant: str, members: MemberTable, log_percentiles: bool, unit: Unit | None = None
) -> Iterator[TrainedMembers]:
    """Train `members` of `variant` as `run` says to the end, from the stage's checkpoint when it has a usable one,
    inside the stage's MLflow run; `log_percentiles`: also log each member's sigmoid inputs. With `unit`, the members
    are that unit of the stage (tracking configured by the caller).

    The caller writes its outputs inside the block; the checkpoint is removed once they have landed.
    """
    trainer, splits = build_trainer(run, variant, members)
    device = splits["train"].images.device
    name = f"{run.stage}-{variant}" if unit is None else unit.name
    identity = provenance.stage_identity(run, variant, device, TRAINING_SPLITS)
    own_runs = {} if unit is None else {"member_runs": list(unit.member_runs)}  # a unit resumes into its runs only
    checkpoint = Checkpoint(paths.checkpoint(name), {**identity, "members": _columns(members), **own_runs})
    if unit is None:
        store.configure(run.experiment)
    saved = _resume(checkpoint, trainer, name)
    if unit is None:
        resumed = None if saved is None else (saved["parent_run"], saved["member_runs"])
        tracked = stage_runs(run, variant, members, device, resumed)
    else:  # the stage holds the parent run; this process continues the unit's member runs under it
        tracked = nullcontext((unit.parent_run, runs.ContinuedMemberRuns(unit.member_runs, unit.runs_untouched)))
    with tracked as (run_id, member_runs):
        trained = TrainedMembers(
            members, trainer.model, trainer.recorded(), device, splits, member_runs, trainer.step, trainer.clock, unit
        )

        def on_checkpoint(at: Trainer) -> None:
            with at.clock.phase("checkpoints"):
                checkpoint.save({"trainer": at.state_dict(), "parent_run": run_id, "member_runs": member_runs.run_ids})
            with at.clock.phase("logging"):
                member_runs.log_history(metric_histories(at.recorded(), log_percentiles))
            if unit is not None:
                unit.after_checkpoint(f"step {at.step:,}, checkpointed in {checkpoint.path}")

        label = f"{run.stage}@{variant}" + ("" if unit is None else f" unit {unit.name}")
        trained.result = trainer.run(on_checkpoint=on_checkpoint, checkpoint_every=run.checkpoint_every, label=label)
        with trainer.clock.phase("logging"):
            member_runs.log_history(metric_histories(trained.result, log_percentiles))
            if unit is None:  # the stage records its data once, on its own run
                log_training_data(splits["train"])
        yield trained
    checkpoint.remove()


@contextmanager
def stage_runs(
    run: TrainingRun, variant: str, members: MemberTable, device: torch.device, resumed: tuple | None
) -> Iterator[tuple[str, runs.MemberRuns | None]]:
    """The stage's parent run and one child run per member, made now (`resumed` None; in the stage's members experiment,
    src/tracking/store.py) or continued from resumed = (parent run, member runs); resumed = (parent run, None)
    continues the parent run alone and leaves its member runs to the processes that train them (the sweep's units)."""
    name, tags = f"{run.stage}-{variant}", {"stage": run.stage, "variant": variant, "device": str(device)}
    parent, member_ids = resumed or (None, None)
    read = _without_passwords(run.read)
    with runs.parent_run(name, tags, read, run_id=parent, system_metrics=run.system_metrics) as run_id:
        if parent is not None and member_ids is None:
            yield run_id, None
            return
        children = [
            runs.Member(
                name=f"{name}-{members.name(k)}",
                tags={**tags, **_member_tags(members, k)},
                params={column: getattr(members, column)[k] for column in ("lr", "init_std", "seed")},
            )
            for k in range(len(members))
        ]
        experiment_id = store.members_experiment(run.experiment, run.stage) if member_ids is None else None
        yield run_id, runs.MemberRuns(children, run_ids=member_ids, experiment_id=experiment_id)


def _without_passwords(tree: dict) -> dict:
    """`tree` with the password of every `storage` URL as ***: whoever can read a run can read its params."""
    return {
        key: _without_passwords(value) if isinstance(value, dict) else redact(value) if key == "storage" else value
        for key, value in tree.items()
    }


def log_training_data(train: Split) -> None:
    """The training split as an MLflow dataset input of the active (stage) run."""
    images, labels = train.images.cpu().numpy(), train.labels.cpu().numpy()
    dataset = runs.numpy_dataset(images, labels, name="mnist-train", source=paths.PROCESSED_DATA / "train.npz")
    runs.log_dataset(dataset, context="training")


def build_trainer(run: TrainingRun, variant: str, members: MemberTable) -> tuple[Trainer, dict[str, Split]]:
    """A trainer of `members` on `run`'s device at step 0 of its schedule; the splits it trains on and scores."""
    device = resolve_device(run.device)
    splits = {name: load_split(paths.PROCESSED_DATA, name, device, run.binarize) for name in TRAINING_SPLITS}
    model = build_model(run.model, variant, list(members.seed), device, init_stds=list(members.init_std))
    schedule = schedule_for(run, members.lr, data_seeds=members.data_seeds)
    probe = splits["test"].images[: run.percentile_examples]
    training_data = TrainingData(splits["train"], splits["test"], probe, run.tracked_units)
    return Trainer(model, training_data, schedule), splits


def _resume(checkpoint: Checkpoint, trainer: Trainer, name: str) -> dict | None:
    """The checkpoint's payload, its trainer state restored, when it is usable; else None (and why, on stderr)."""
    saved = checkpoint.load()
    if saved is not None and not store.runs_exist([saved["parent_run"], *saved["member_runs"]]):
        saved = checkpoint.refuse("its MLflow runs are not in this tracking store")
    if saved is not None:
        trainer.load_state_dict(saved["trainer"])
        print(f"{name}: resumed from step {trainer.step:,} ({checkpoint.path})", file=sys.stderr)
    return saved


def metric_histories(result: TrainingHistory, with_percentiles: bool) -> list[dict[str, list[tuple[int, float]]]]:
    """Per member, MLflow metric name -> (step, value): test accuracy and loss, and optionally the sigmoid inputs."""
    steps = result.eval_steps
    histories = []
    for member in range(result.accuracy.shape[1]):
        history = {
            "test_accuracy": list(zip(steps, result.accuracy[:, member].tolist(), strict=True)),
            "test_loss": list(zip(steps, result.loss[:, member].tolist(), strict=True)),
        }
        if with_percentiles and result.percentiles is not None:
            for unit in range(result.percentiles.shape[-1]):
                for level, name in enumerate(LEVELS):
                    values = result.percentiles[:, level, member, unit].tolist()
                    history[f"sigmoid_input_unit{unit}_{name}"] = list(zip(steps, values, strict=True))
        histories.append(history)
    return histories


def _columns(members: MemberTable) -> dict[str, list]:
    return {"lr": list(members.lr), "init_std": list(members.init_std), "seed": list(members.seed)}


def _member_tags(members: MemberTable, member: int) -> dict[str, str]:
    return {column: str(getattr(members, column)[member]) for column in members.labels}
