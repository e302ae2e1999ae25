"""Benchmark: what making a checkpoint durable costs, for a train@-sized and a sweep@-sized trainer state.

    python -m benchmarks.bench_checkpoint                        # 5 rounds, in .checkpoints/ (where the stages write)
    python -m benchmarks.bench_checkpoint --rounds 9 --directory /scratch

Each row is the trainer state of a stage's checkpoint after its first step, for params.yaml's members of the BN net:
train@'s seeds (10) and sweep@'s grid as one unit (270). It is saved as the stages save it (src/training/checkpoint.py
through src/atomic.py): durable (the file fsynced before its rename, the directory after), and with os.fsync made a
no-op, the writes left in the page cache. Every configuration saves once per round, rounds interleave, and the table
gives each one's median and best round: unlike compute, how long a flush waits for the disk is the cost itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import NamedTuple
from unittest import mock

from benchmarks.bench_engine import random_split
from benchmarks.bench_sweep import machine
from src import paths
from src.cli import OneLineParser, report_user_errors
from src.config import TrainingRun, load_params
from src.engine.network import build_model
from src.engine.schedule import schedule_for
from src.engine.trainer import Trainer, TrainingData
from src.training.checkpoint import Checkpoint
from src.training.members import MemberTable

TRAINING_EXAMPLES = 50_000  # MNIST's training split after validation: the size of the data order a checkpoint holds
VARIANT = "bn"  # its γ and β and moving averages make its state the larger of the two


class Row(NamedTuple):
    stage: str
    members: int
    payload: dict


class _FirstCheckpoint(Exception):
    """Raised from the first checkpoint to stop training there: its state is what every later one holds, in size."""

    def __init__(self, state: dict):
        self.state = state


def trainer_state(run: TrainingRun, members: MemberTable) -> dict:
    """The state a checkpoint of `run` holds for `members` after one step: weights, optimizer, data order, history."""
    model = build_model(run.model, VARIANT, list(members.seed), "cpu", init_stds=list(members.init_std))
    schedule = schedule_for(run, members.lr, data_seeds=members.data_seeds)
    train, probe = random_split(TRAINING_EXAMPLES, "cpu", seed=0), random_split(run.batch_size, "cpu", seed=1)
    trainer = Trainer(model, TrainingData(train, probe, probe.images, run.tracked_units), schedule)

    def stop(at: Trainer) -> None:
        raise _FirstCheckpoint(at.state_dict())

    try:
        trainer.run(on_checkpoint=stop, checkpoint_every=1, progress=False)
    except _FirstCheckpoint as first:
        return first.state
    raise AssertionError("the trainer finished without a checkpoint")


def rows() -> list[Row]:
    """train@'s and sweep@'s checkpoint payloads for params.yaml's members, as src/training/runner.py saves them."""
    params = load_params()
    train = MemberTable.tuned(1.0, params.model.init_std, params.train.seed_list)  # any rate: the size is the same
    sweep = MemberTable.grid(params.sweep)
    run_id = "0" * 32  # an MLflow run id's length
    return [
        Row(
            stage,
            len(members),
            {"trainer": trainer_state(run, members), "parent_run": run_id, "member_runs": [run_id] * len(members)},
        )
        for stage, run, members in (("train@", params.train_run, train), ("sweep@", params.sweep_run, sweep))
    ]


def save_seconds(payload: dict, path: Path, durable: bool) -> float:
    """Seconds to save `payload` as a checkpoint at `path`; not `durable`: with os.fsync a no-op."""
    checkpoint = Checkpoint(path, identity={})
    with mock.patch.object(os, "fsync", os.fsync if durable else lambda descriptor: None):
        started = time.perf_counter()
        checkpoint.save(payload)
        return time.perf_counter() - started


class Measured(NamedTuple):
    seconds: dict[tuple[str, bool], list[float]]  # (stage, durable) -> each round's seconds
    sizes: dict[str, int]  # stage -> bytes of its checkpoint file


def measure(table: list[Row], rounds: int, directory: Path) -> Measured:
    """Every row saved durable and not, once per round, rounds interleaved."""
    seconds = {(row.stage, durable): [] for row in table for durable in (False, True)}
    sizes = {}
    with tempfile.TemporaryDirectory(dir=directory, prefix=".bench-checkpoint.") as scratch:
        for _ in range(rounds):
            for row in table:
                path = Path(scratch) / f"{row.stage.rstrip('@')}.pt"
                for durable in (False, True):
                    seconds[row.stage, durable].append(save_seconds(row.payload, path, durable))
                sizes[row.stage] = path.stat().st_size
    return Measured(seconds, sizes)


def print_table(table: list[Row], measured: Measured) -> None:
    print("| checkpoint | members | size | no fsync: median (best) | durable: median (best) | fsync adds (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in table:
        cache, durable = measured.seconds[row.stage, False], measured.seconds[row.stage, True]
        print(
            f"| {row.stage} | {row.members} | {measured.sizes[row.stage] / 1e6:.1f} MB "
            f"| {_ms(statistics.median(cache))} ({_ms(min(cache))}) "
            f"| {_ms(statistics.median(durable))} ({_ms(min(durable))}) "
            f"| {_ms(statistics.median(durable) - statistics.median(cache), sign=True)} |"
        )


def _ms(seconds: float, sign: bool = False) -> str:
    return f"{1000 * seconds:{'+' if sign else ''},.0f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--directory", type=Path, default=paths.CHECKPOINTS, help="where to write (.checkpoints)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    table = rows()  # a bad params file is one line before anything is written
    args.directory.mkdir(parents=True, exist_ok=True)
    print(machine())
    print(f"checkpoints written to {args.directory.resolve()}, {args.rounds} interleaved rounds")
    print_table(table, measure(table, args.rounds, args.directory))


if __name__ == "__main__":
    report_user_errors(main)
