"""A stage's training run that survives a kill: checkpointed, resumed bit for bit, tracked in MLflow without gaps.

The stage run and one child run per member are created when training starts and their ids go into every
checkpoint, so a resumed invocation continues the same runs. At each checkpoint the members' histories so far are
logged; a resumed invocation first logs whatever the killed one saved but did not get into MLflow.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from src import tracking
from src.checkpoint import Checkpoint
from src.engine import Trainer, TrainResult

Histories = Callable[[TrainResult], Sequence[Mapping[str, Sequence[tuple[int, float]]]]]


@dataclass(frozen=True)
class StageRun:
    """How one stage invocation is tracked and checkpointed."""

    name: str  # e.g. "train-bn": the MLflow run name and the stage's name in messages
    tags: Mapping[str, str]
    params: Mapping[str, object]
    members: Sequence[tracking.Member]
    checkpoint: Checkpoint
    checkpoint_every: int


@dataclass
class Outcome:
    result: TrainResult
    member_runs: tracking.MemberRuns
    resumed_from: int  # the step training resumed from; 0 for a fresh start
    checkpoints: int = 0
    checkpoint_s: float = 0.0  # spent writing checkpoints and logging at them

    @property
    def checkpoint_overhead(self) -> float:
        """Checkpointing time as a fraction of training time."""
        return self.checkpoint_s / self.result.wall_time_s if self.result.wall_time_s else 0.0

    @property
    def resumed_text(self) -> str:
        return f", resumed from step {self.resumed_from:,}" if self.resumed_from else ""

    @property
    def checkpoint_text(self) -> str:
        return (
            f"{self.checkpoints} checkpoints took {self.checkpoint_s:.2f} s "
            f"({100 * self.checkpoint_overhead:.2f} % of training)"
        )

    def finish(self, member_metrics: Sequence[Mapping[str, float]] | None = None) -> None:
        """Every member's final accuracy, diverged flag and `member_metrics`, the stage's timing; then the member
        runs FINISHED."""
        final = self.result.final
        extra = member_metrics or [{} for _ in final.accuracy]
        self.member_runs.finish(
            tags=[{"diverged": str(diverged).lower()} for diverged in final.diverged],
            metrics=[
                {"final_test_accuracy": accuracy, **more} for accuracy, more in zip(final.accuracy, extra, strict=True)
            ],
        )
        timing = {"training_wall_time_s": self.result.wall_time_s, "checkpoint_overhead": self.checkpoint_overhead}
        tracking.log_results(timing, artifacts=[])


@contextmanager
def tracked_training(trainer: Trainer, stage: StageRun, histories: Histories) -> Iterator[Outcome]:
    """Train to the end (from the stage's checkpoint when it has a usable one) inside the stage's MLflow run.

    The caller writes its outputs inside the block; the checkpoint is removed once they have landed.
    """
    saved = stage.checkpoint.load()
    if saved is not None and not tracking.runs_exist([saved["stage_run"], *saved["member_runs"]]):
        saved = stage.checkpoint.refuse("its MLflow runs are not in this tracking store")
    if saved is not None:
        trainer.load_state_dict(saved["trainer"])
        print(f"{stage.name}: resumed from step {trainer.step:,} ({stage.checkpoint.path})", file=sys.stderr)
    with tracking.stage_run(stage.name, stage.tags, stage.params, run_id=saved and saved["stage_run"]) as run_id:
        member_runs = tracking.MemberRuns(stage.members, run_ids=saved and saved["member_runs"])
        outcome = Outcome(result=trainer.recorded(), member_runs=member_runs, resumed_from=trainer.step)

        def on_checkpoint(at: Trainer) -> None:
            started = time.perf_counter()
            stage.checkpoint.save({"trainer": at.state_dict(), "stage_run": run_id, "member_runs": member_runs.run_ids})
            member_runs.log_history(histories(at.recorded()))
            outcome.checkpoints += 1
            outcome.checkpoint_s += time.perf_counter() - started

        outcome.result = trainer.run(on_checkpoint=on_checkpoint, checkpoint_every=stage.checkpoint_every)
        member_runs.log_history(histories(outcome.result))
        yield outcome
    stage.checkpoint.remove()
