"""Statistics over seeds: summaries with t-intervals, steps to an accuracy target, curve areas, Welch's test.

Pure functions on numpy arrays. With a single seed there is no spread to estimate: every std, interval
and p-value is None rather than a number that looks meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Summary:
    """Mean of per-seed values, sample std (ddof=1) and the t-interval of the mean; None where n < 2."""

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class StepsToTarget:
    """Median first step at which a seed reached the target, over the seeds that reached it (None if none did)."""

    target: float
    median: float | None
    n_reached: int
    n_seeds: int


@dataclass(frozen=True)
class Difference:
    """treated − control of the means, its Welch t-interval and the two-sided Welch p-value; None where n < 2."""

    difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def summarize(values: Sequence[float] | np.ndarray, confidence: float) -> Summary:
    """Mean, std (ddof=1) and the `confidence` t-interval of the mean of `values` (one per seed)."""
    values = _as_sample(values)
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return Summary(n=n, mean=mean, std=None, ci_low=None, ci_high=None)
    std = float(values.std(ddof=1))
    half_width = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * std / math.sqrt(n)
    return Summary(n=n, mean=mean, std=std, ci_low=mean - half_width, ci_high=mean + half_width)


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
    return StepsToTarget(target=target, median=median, n_reached=len(reached), n_seeds=len(firsts))


def steps_ratio(vanilla: StepsToTarget, bn: StepsToTarget) -> float | None:
    """vanilla median / BN median (the paper's "N× fewer steps"); None unless both reached it at a step > 0."""
    if vanilla.median is None or bn.median is None or bn.median == 0:
        return None
    return vanilla.median / bn.median


def mean_accuracy_over_steps(steps: np.ndarray, accuracy: np.ndarray) -> float:
    """Area under the curve (trapezoid over steps) divided by the step span: the curve's mean accuracy."""
    steps, accuracy = _as_curve(steps, accuracy)
    if steps.size == 1:
        return float(accuracy[0])
    return float(np.trapezoid(accuracy, steps) / (steps[-1] - steps[0]))


def welch_difference(treated: Sequence[float], control: Sequence[float], confidence: float) -> Difference:
    """mean(treated) − mean(control) with Welch's t-interval and two-sided p-value (unequal variances)."""
    treated, control = _as_sample(treated), _as_sample(control)
    difference = float(treated.mean() - control.mean())
    if treated.size < 2 or control.size < 2:
        return Difference(difference=difference, ci_low=None, ci_high=None, p_value=None)
    test = stats.ttest_ind(treated, control, equal_var=False)
    interval = test.confidence_interval(confidence_level=confidence)
    # zero variance in both groups leaves the t statistic undefined: no test rather than a NaN
    return Difference(
        difference=difference,
        ci_low=_finite_or_none(interval.low),
        ci_high=_finite_or_none(interval.high),
        p_value=_finite_or_none(test.pvalue),
    )


def _as_sample(values: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("need at least one value (one per seed), got none")
    return values


def _as_curve(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if steps.ndim != 1 or steps.shape != values.shape or steps.size == 0:
        raise ValueError(f"steps and values must be equal-length 1-d arrays, got {steps.shape} and {values.shape}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError(f"steps must be strictly increasing, got {steps.tolist()}")
    return steps, values


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
