"""The comparison's statistics: t-intervals over seeds, steps to a target, curve areas, percentile drift, Welch.

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


@dataclass(frozen=True)
class PercentileDrift:
    """How a unit's input distribution moved between a reference step and the last step (Figure 1 b, c)."""

    reference_step: int
    final_step: int
    median_shift: float  # p50 at the end − p50 at the reference step
    spread_at_reference: float  # p85 − p15
    spread_at_end: float

    @property
    def relative_median_shift(self) -> float:
        """|median shift| in units of the reference 15–85 spread: a scale-free size of the drift."""
        return abs(self.median_shift) / self.spread_at_reference if self.spread_at_reference > 0 else math.inf

    @property
    def relative_spread_change(self) -> float:
        """|spread at the end / spread at the reference − 1|."""
        return abs(self.spread_at_end / self.spread_at_reference - 1) if self.spread_at_reference > 0 else math.inf


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
        final_step=int(steps[-1]),
        median_shift=float(p50[-1] - p50[reference]),
        spread_at_reference=float(p85[reference] - p15[reference]),
        spread_at_end=float(p85[-1] - p15[-1]),
    )


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
