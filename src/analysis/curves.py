"""What a training curve says, measured the same way for every run: when it first reaches a target, the target
a climb defines, its mean over training, and how a band of percentiles drifted. Pure functions on numpy arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CHANCE = 0.1  # ten classes: where every climb starts


@dataclass(frozen=True)
class StepsToTarget:
    """Median first step at which a seed reached the target, over the seeds that reached it (None if none did)."""

    median: float | None
    n_reached: int


def first_step_reaching(steps: np.ndarray, accuracy: np.ndarray, target: float) -> int | None:
    """The first evaluation step at which `accuracy` >= `target`, or None if it never does."""
    steps, accuracy = _as_curve(steps, accuracy)
    reached = np.flatnonzero(accuracy >= target)
    return int(steps[reached[0]]) if reached.size else None


def steps_to_target(steps: np.ndarray, accuracy_per_seed: np.ndarray, target: float) -> StepsToTarget:
    """Median of the per-seed first steps reaching `target`; `accuracy_per_seed` is (seeds, evals) over `steps`."""
    accuracy_per_seed = np.atleast_2d(np.asarray(accuracy_per_seed, dtype=float))
    firsts = [first_step_reaching(steps, curve, target) for curve in accuracy_per_seed]
    reached = [step for step in firsts if step is not None]
    median = float(np.median(reached)) if reached else None
    return StepsToTarget(median=median, n_reached=len(reached))


def mean_accuracy_over_steps(steps: np.ndarray, accuracy: np.ndarray) -> float:
    """Area under the curve (trapezoid over steps) divided by the step span: the curve's mean accuracy."""
    steps, accuracy = _as_curve(steps, accuracy)
    if steps.size == 1:
        return float(accuracy[0])
    return float(np.trapezoid(accuracy, steps) / (steps[-1] - steps[0]))


@dataclass(frozen=True)
class PercentileDrift:
    """How a unit's input distribution moved between a reference step and the last step (Figure 1 b, c)."""

    reference_step: int
    median_shift: float  # p50 at the end − p50 at the reference step
    spread_at_reference: float  # p85 − p15
    spread_at_end: float
    p15_shift: float = 0.0
    p85_shift: float = 0.0

    @property
    def relative_drift(self) -> float:
        """How far the distribution moved: the mean |shift| of its 15th, 50th and 85th percentiles, in units of
        the reference 15–85 spread. It grows with a moving median and with a widening or narrowing spread."""
        shifts = (abs(self.p15_shift), abs(self.median_shift), abs(self.p85_shift))
        return sum(shifts) / 3 / self.spread_at_reference if self.spread_at_reference > 0 else math.inf


def percentile_drift(
    steps: np.ndarray, p15: np.ndarray, p50: np.ndarray, p85: np.ndarray, reference_fraction: float
) -> PercentileDrift:
    """Compare the percentiles at the first step >= `reference_fraction` of the last step with those at the end.

    The reference is taken after the first moments of training, when every network's distribution moves.
    """
    steps, p50 = _as_curve(steps, p50)
    p15, p85 = np.asarray(p15, dtype=float), np.asarray(p85, dtype=float)
    reference = int(np.flatnonzero(steps >= steps[0] + reference_fraction * (steps[-1] - steps[0]))[0])
    return PercentileDrift(
        reference_step=int(steps[reference]),
        median_shift=float(p50[-1] - p50[reference]),
        spread_at_reference=float(p85[reference] - p15[reference]),
        spread_at_end=float(p85[-1] - p15[-1]),
        p15_shift=float(p15[-1] - p15[reference]),
        p85_shift=float(p85[-1] - p85[reference]),
    )


def _as_curve(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if steps.ndim != 1 or steps.shape != values.shape or steps.size == 0:
        raise ValueError(f"steps and values must be equal-length 1-d arrays, got {steps.shape} and {values.shape}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError(f"steps must be strictly increasing, got {steps.tolist()}")
    return steps, values


def climb_target(curves: np.ndarray, climb: float) -> float:
    """The accuracy `climb` of the way from chance to the highest accuracy every curve reaches.

    `curves` (..., E) are every seed's (of both variants) in one design, so both variants reach the target by
    construction; which variant is faster does not move it."""
    ceiling = float(np.nanmax(curves, axis=-1).min())
    return CHANCE + climb * (ceiling - CHANCE)


def steps_to(steps: np.ndarray, curves: np.ndarray, target: float) -> np.ndarray:
    """(...) the step each curve (..., E) first reaches `target`, interpolated linearly between the evaluation before
    and the one at the crossing (the evaluations are far apart early on); NaN where it never does."""
    curves = np.nan_to_num(curves, nan=-1.0)  # an evaluation a seed lacks never reaches the target
    reached = curves >= target
    first = reached.argmax(axis=-1)
    found = reached.any(axis=-1)
    before = np.maximum(first - 1, 0)
    a0, a1 = (
        np.take_along_axis(curves, before[..., None], -1)[..., 0],
        np.take_along_axis(curves, first[..., None], -1)[..., 0],
    )
    s0, s1 = steps[before].astype(float), steps[first].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(first > 0, (target - a0) / (a1 - a0), 1.0)
    return np.where(found, s0 + fraction * (s1 - s0), np.nan)
