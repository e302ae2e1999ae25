"""A training run's schedule: how many steps of which batch size, when to evaluate, which data order.

One builder, `schedule_for`, turns a stage's TrainingRun into a Schedule, so tune@, train@, sweep@ and edge@ read
their steps and evaluations the same way, and share the batch size and momentum of params.train.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from src.config import TrainingRun


def eval_schedule(steps: int, every: int, per_decade: int = 0) -> tuple[int, ...]:
    """Step 0, every `every` steps, `per_decade` log-spaced steps (so early training is resolved), and the last.

    The log-spaced steps are rounded to two significant digits (…, 1800, 2000, 2200, 2500, …), so they fall on
    the linear ones where they nearly meet.
    """
    exponents = range(math.floor(per_decade * math.log10(steps)) + 1) if per_decade else ()
    log_spaced = {round(float(f"{10 ** (i / per_decade):.2g}")) for i in exponents}
    return tuple(sorted({*range(0, steps, every), *(step for step in log_spaced if step < steps), steps}))


@dataclass(frozen=True)
class Schedule:
    steps: int
    batch_size: int
    eval_steps: tuple[int, ...]  # must include 0 and `steps`
    momentum: float
    learning_rates: tuple[float, ...]  # one per member
    # One shuffled data order per group of members: G seeds for K members, G dividing K; member k follows
    # data_seeds[k // (K / G)]. One seed: every member sees the same batches (one GEMM for all of them).
    data_seeds: tuple[int, ...]
    population_batches: int = 500  # Algorithm 2: the training mini-batches BN's inference statistics average over


def schedule_for(run: TrainingRun, learning_rates: Sequence[float], data_seeds: Sequence[int]) -> Schedule:
    """The schedule of one of `run`'s trainings: its horizon, batch size and momentum, BN's population pass."""
    horizon = run.horizon
    return Schedule(
        steps=horizon.steps,
        batch_size=run.batch_size,
        eval_steps=eval_schedule(horizon.steps, horizon.eval_every, horizon.evals_per_decade),
        momentum=run.momentum,
        learning_rates=tuple(learning_rates),
        data_seeds=tuple(data_seeds),
        population_batches=run.model.population_batches,
    )
