"""The comparison's statistics: t-intervals over seeds, paired effects and the verdicts they decide, steps to a
target, curve areas, percentile drift.

Pure functions on numpy arrays. With a single seed there is no spread to estimate: every std and interval is
None rather than a number that looks meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SeedSummary:
    """Mean of per-seed values, sample std (ddof=1) and the t-interval of the mean; None where n < 2."""

    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class StepsToTarget:
    """Median first step at which a seed reached the target, over the seeds that reached it (None if none did)."""

    median: float | None
    n_reached: int


@dataclass(frozen=True)
class Estimate:
    """A paired effect of BN against vanilla (BN − vanilla, or BN / vanilla for a ratio) and its t-interval.

    The interval is None with fewer than two pairs; when every pair agrees exactly it is the single point.
    """

    effect: float
    ci_low: float | None
    ci_high: float | None
    n: int


Verdict = Literal["holds", "contradicted", "not shown"]


def seed_summary(values: Sequence[float] | np.ndarray, confidence: float) -> SeedSummary:
    """Mean, std (ddof=1) and the `confidence` t-interval of the mean of `values` (one per seed)."""
    values = _as_sample(values)
    interval = _mean_with_interval(values, confidence)
    std = float(values.std(ddof=1)) if values.size > 1 else None
    return SeedSummary(mean=interval.effect, std=std, ci_low=interval.ci_low, ci_high=interval.ci_high)


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


def paired_difference(bn: Sequence[float], vanilla: Sequence[float], confidence: float) -> Estimate:
    """Mean of the per-pair differences bn[i] − vanilla[i] (pairs share a seed) with its t-interval."""
    bn, vanilla = _as_pairs(bn, vanilla)
    return _mean_with_interval(bn - vanilla, confidence)


def paired_ratio(bn: Sequence[float], vanilla: Sequence[float], confidence: float) -> Estimate:
    """Geometric mean of the per-pair ratios bn[i] / vanilla[i], its t-interval taken on the log scale."""
    bn, vanilla = _as_pairs(bn, vanilla)
    if np.any(bn <= 0) or np.any(vanilla <= 0):
        raise ValueError(f"a ratio needs positive values, got {bn.tolist()} and {vanilla.tolist()}")
    on_logs = _mean_with_interval(np.log(bn) - np.log(vanilla), confidence)
    return Estimate(
        effect=math.exp(on_logs.effect),
        ci_low=None if on_logs.ci_low is None else math.exp(on_logs.ci_low),
        ci_high=None if on_logs.ci_high is None else math.exp(on_logs.ci_high),
        n=on_logs.n,
    )


def side(estimate: Estimate, no_effect: float) -> Literal["above", "below"] | None:
    """Where the interval lies: wholly "above" or "below" `no_effect`, or None when it includes it or there is none.

    The one place that decides whether an interval excludes no effect."""
    if estimate.ci_low is None or estimate.ci_high is None:
        return None
    if estimate.ci_low > no_effect:
        return "above"
    return "below" if estimate.ci_high < no_effect else None


def verdict(estimate: Estimate, no_effect: float, bn_favoured: Literal["higher", "lower"]) -> Verdict:
    """The verdict: "holds" if the interval excludes `no_effect` on BN's side, "contradicted" if on the other side,
    else "not shown"."""
    where = side(estimate, no_effect)
    if where is None:
        return "not shown"
    return "holds" if (where == "above") == (bn_favoured == "higher") else "contradicted"


def _mean_with_interval(values: np.ndarray, confidence: float) -> Estimate:
    mean = float(values.mean())
    if values.size < 2:
        return Estimate(effect=mean, ci_low=None, ci_high=None, n=values.size)
    half_width = stats.t.ppf(0.5 + confidence / 2, df=values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return Estimate(effect=mean, ci_low=float(mean - half_width), ci_high=float(mean + half_width), n=values.size)


def _as_pairs(bn: Sequence[float], vanilla: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    bn, vanilla = _as_sample(bn), _as_sample(vanilla)
    if bn.shape != vanilla.shape:
        raise ValueError(f"paired samples need one value of each per seed, got {bn.size} and {vanilla.size}")
    return bn, vanilla


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
