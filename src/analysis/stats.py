"""The comparison's statistics: paired tests, intervals and verdicts over seeds, and the corrections of a family.

Paired seeds (n = 5 to 15) of bounded, discrete or bimodal outcomes fit no normal theory. A paired effect is tested
by exact sign-flip permutation of the mean difference (or an exact signed-rank test), valid at any n when the
differences are symmetric about 0 under no effect, ties and zeros included; its interval is seeded, by default a
symmetric studentized bootstrap, the one that covered best at n = 10 in src/analysis/simulation.py, clipped to the
outcome's possible range. Accuracy on the shared test set can also get a two-level bootstrap over seeds and images,
and each family of verdicts a Holm or Benjamini–Hochberg correction.

Pure functions on numpy arrays. Where there is nothing to estimate (one seed, or no pair that differs) the interval
and the p-value are None rather than a number that looks meaningful. Pairs that all differ by the same nonzero amount
are the strongest result there is, not a missing one: their exact p-value is 2 / 2^n, their interval the point.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SeedSummary:
    """Mean of per-seed values, sample std (ddof=1) and the configured interval of the mean; None where n < 2 or the
    values do not vary."""

    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Estimate:
    """A paired effect of BN against vanilla (BN − vanilla, or BN / vanilla for a ratio), its interval, its two-sided
    p-value (uncorrected for multiplicity), the test and how the interval was drawn. Not estimable (no interval, no
    p-value) with fewer than two pairs, or when no pair differs."""

    effect: float
    ci_low: float | None
    ci_high: float | None
    n: int
    p_value: float | None = None
    test: str | None = None  # "sign_flip", "signed_rank" or "two_level_bootstrap"
    interval_method: str | None = None  # an IntervalMethod, BCa's "percentile" fallback, or "point" (pairs alike)
    spread: float | None = None  # the per-seed paired values' sample std (on the log scale for a ratio)

    @property
    def estimable(self) -> bool:
        """There is an interval, and from the tests a p-value: the data could say something either way."""
        return self.ci_low is not None and self.ci_high is not None


Decision = Literal["holds", "contradicted", "not shown", "not estimable"]
PairedTest = Literal["sign_flip", "signed_rank"]
# studentized: the symmetric bootstrap-t, mean ± q·s/√n with q the resampled |t|'s quantile
IntervalMethod = Literal["studentized", "BCa", "t", "percentile"]

# Spread or ties finer than this are floating-point rounding of O(1) values (accuracies, log-ratios), not a result.
FLOAT_NOISE = 1e-12
# Up to this many pairs the tests enumerate all 2^n sign patterns, so their p-values are exact.
EXACT_UP_TO_PAIRS = 15


@dataclass(frozen=True)
class PairedInference:
    """How a paired effect is tested and bounded, fixed before the data are seen: the test, the interval's
    confidence, the bootstrap's resamples and seed (one seed: the same interval on every machine) and the interval."""

    confidence: float = 0.95
    test: PairedTest = "sign_flip"
    resamples: int = 9999
    seed: int = 0
    interval: IntervalMethod = "studentized"

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.test not in get_args(PairedTest):
            raise ValueError(f"test must be one of {get_args(PairedTest)}, got {self.test!r}")
        if self.interval not in get_args(IntervalMethod):
            raise ValueError(f"interval must be one of {get_args(IntervalMethod)}, got {self.interval!r}")
        if self.resamples < 1:
            raise ValueError(f"resamples must be >= 1, got {self.resamples}")


def seed_summary(
    values: Sequence[float] | np.ndarray,
    inference: PairedInference,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> SeedSummary:
    """Mean, std (ddof=1) and `inference.interval`'s interval of the mean of `values` (one per seed) inside `bounds`,
    the values' possible range: (0, 1) for an accuracy (a studentized or t interval is not held to the values)."""
    values = _as_sample(values)
    std = float(values.std(ddof=1)) if values.size > 1 else None
    if values.size < 2 or np.ptp(values) <= FLOAT_NOISE:
        return SeedSummary(mean=float(values.mean()), std=std, ci_low=None, ci_high=None)
    low, high, _ = mean_interval(values, inference, bounds)
    return SeedSummary(mean=float(values.mean()), std=std, ci_low=low, ci_high=high)


def paired_difference_test(
    bn: Sequence[float],
    vanilla: Sequence[float],
    inference: PairedInference,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Estimate:
    """Mean of bn[i] − vanilla[i] (pairs share a seed), its exact two-sided p-value and an interval inside
    `bounds`, the differences' possible range: (−1, 1) for an accuracy difference."""
    bn, vanilla = _as_finite_pairs(bn, vanilla)
    differences = bn - vanilla
    low, high = bounds
    if not np.all((differences >= low) & (differences <= high)):
        raise ValueError(f"paired differences must lie in [{low}, {high}], got {differences.tolist()}")
    return _test_mean(differences, inference, bounds)


def paired_ratio_test(bn: Sequence[float], vanilla: Sequence[float], inference: PairedInference) -> Estimate:
    """Geometric mean of bn[i] / vanilla[i], tested and bounded on log(bn) − log(vanilla): an interval in (0, inf)."""
    bn, vanilla = _as_finite_pairs(bn, vanilla)
    if not (np.all(bn > 0) and np.all(vanilla > 0)):
        raise ValueError(f"a ratio needs positive values, got {bn.tolist()} and {vanilla.tolist()}")
    return _exponentiated(_test_mean(np.log(bn) - np.log(vanilla), inference))


def two_level_bootstrap(differences: np.ndarray, confidence: float, resamples: int, seed: int) -> Estimate:
    """Grand mean of `differences` (seeds, items), e.g. correct_bn − correct_vanilla per seed and test image, with
    a percentile interval and two-sided p-value from resampling seeds and items independently, with replacement:
    the interval counts the test set's own sampling noise as well as the seeds'."""
    differences = np.asarray(differences, dtype=float)
    if differences.ndim != 2 or differences.size == 0 or not np.all(np.isfinite(differences)):
        raise ValueError(f"differences must be a finite (seeds, items) array, got shape {differences.shape}")
    if not 0 < confidence < 1 or resamples < 1:
        raise ValueError(f"need confidence in (0, 1) and resamples >= 1, got {confidence} and {resamples}")
    seeds = differences.shape[0]
    effect = float(differences.mean())
    if seeds < 2 or np.ptp(differences) <= FLOAT_NOISE:
        return Estimate(effect, None, None, seeds, test="two_level_bootstrap")
    means = _two_level_means(differences, resamples, np.random.default_rng(seed))
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    # the share of resampled means on the far side of 0 from the effect (the smaller side), doubled; +1 counts
    # the data as one of the resamples, so that no finite number of resamples gives p = 0
    far_side = min(np.count_nonzero(means <= 0), np.count_nonzero(means >= 0))
    p_value = min(1.0, 2 * (1 + int(far_side)) / (resamples + 1))
    low, high = _within_range(float(low), float(high), differences)
    spread = float(differences.mean(axis=1).std(ddof=1))  # of the per-seed means: what more seeds average away
    return Estimate(effect, low, high, seeds, p_value, "two_level_bootstrap", "percentile", spread)


def seeds_needed(estimate: Estimate, alpha: float, power: float = 0.8, log_scale: bool = False) -> int | None:
    """About how many paired seeds would detect an effect of this size and spread at level `alpha` with `power`
    (a normal approximation; a planning figure, not a promise), and never fewer than the exact sign-flip test needs to
    reach `alpha` at all: 2 / 2^n <= alpha. None when the estimate has no spread or no effect."""
    if estimate.spread is None or not estimate.spread > 0:
        return None
    effect = math.log(estimate.effect) if log_scale else estimate.effect
    if effect == 0 or not math.isfinite(effect):
        return None
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    resolution = math.ceil(math.log2(2 / alpha))
    return max(math.ceil((z * estimate.spread / abs(effect)) ** 2), resolution)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values. None (not estimable) stays None and is not counted in the family."""
    return _adjust_present(p_values, _holm)


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (false discovery rate). None stays None, outside the family."""
    return _adjust_present(p_values, lambda present: stats.false_discovery_control(present, method="bh"))


def decide(
    estimate: Estimate,
    adjusted_p: float | None,
    alpha: float,
    no_effect: float,
    bn_favoured: Literal["higher", "lower"],
) -> Decision:
    """The verdict of a test: "holds" if the effect is significant (adjusted_p <= alpha) on the side of `no_effect`
    (0 for a difference, 1 for a ratio) BN is claimed to be on, "contradicted" if on the other, else "not shown";
    "not estimable" when the estimate is."""
    if not estimate.estimable:
        return "not estimable"
    if adjusted_p is None:
        raise ValueError(f"an estimable effect needs its adjusted p-value, got None for {estimate}")
    # <=: a valid p-value has P(p <= alpha) <= alpha under no effect, so rejecting at equality keeps the size alpha
    if adjusted_p > alpha or estimate.effect == no_effect:
        return "not shown"
    return "holds" if (estimate.effect > no_effect) == (bn_favoured == "higher") else "contradicted"


def _test_mean(
    values: np.ndarray, inference: PairedInference, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> Estimate:
    effect = float(values.mean())
    if values.size < 2 or np.all(np.abs(values) <= FLOAT_NOISE):
        return Estimate(effect, None, None, values.size, test=inference.test)
    if np.ptp(values) <= FLOAT_NOISE:
        # every pair moved the same way by the same amount: of the 2^n sign patterns only this one and its mirror
        # image are as extreme, under either test, so p = 2 / 2^n exactly; every resampled mean is this one point
        p_value = 2 / 2**values.size
        return Estimate(effect, effect, effect, values.size, p_value, inference.test, "point", 0.0)
    p_value = _sign_flip_p_value(_signed_ranks(values) if inference.test == "signed_rank" else values, inference)
    low, high, interval_method = mean_interval(values, inference, bounds)
    spread = float(values.std(ddof=1))
    return Estimate(effect, low, high, values.size, p_value, inference.test, interval_method, spread)


def _sign_flip_p_value(values: np.ndarray, inference: PairedInference) -> float:
    """Two-sided p-value of the mean under flipping each pair's sign (BN and vanilla swapped within a seed)."""
    if values.size < 2:
        return 1.0  # one value (one nonzero signed rank): its two sign patterns are equally extreme
    # permutation_test enumerates every pattern when there are no more than n_resamples: exact up to 2^15
    n_resamples = max(inference.resamples, 2**EXACT_UP_TO_PAIRS)
    result = stats.permutation_test(
        (values,),
        np.mean,
        permutation_type="samples",
        n_resamples=n_resamples,
        rng=np.random.default_rng(inference.seed),
    )
    return float(result.pvalue)


def _signed_ranks(values: np.ndarray) -> np.ndarray:
    """Wilcoxon's signed ranks (zeros dropped, ties at their mean rank). Flipping signs leaves the ranks of |d| as
    they are, so the sign-flip test of their mean is the exact signed-rank test, ties and zeros included: the
    p-value of scipy's wilcoxon with a PermutationMethod, which is not vectorised (0.1 s at n = 10, 3 s at 15)."""
    # ties and zeros that only rounding broke stay ties and zeros
    rounded = np.round(values, decimals=12)
    nonzero = rounded[rounded != 0]
    return np.sign(nonzero) * stats.rankdata(np.abs(nonzero))


def mean_interval(
    values: np.ndarray, inference: PairedInference, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[float, float, str]:
    """`inference.interval`'s interval of the mean of `values` (at least two, not all alike) inside `bounds`, and
    the method that drew it."""
    if inference.interval in ("BCa", "percentile"):
        return _bootstrap_interval(values, inference)
    mean, standard_error = float(values.mean()), float(values.std(ddof=1)) / math.sqrt(values.size)
    if inference.interval == "t":
        half_width = stats.t.ppf((1 + inference.confidence) / 2, values.size - 1) * standard_error
    else:
        quantile = _studentized_quantile(values, inference)
        if not math.isfinite(quantile):
            # more than 1 − confidence of the resamples repeat one value (heavy ties, few seeds): they teach no t
            # table, while the percentile interval of the resampled means is always defined
            return _bootstrap_interval(values, replace(inference, interval="percentile"))
        half_width = quantile * standard_error
    low, high = bounds
    return max(mean - half_width, low), min(mean + half_width, high), inference.interval


def _studentized_quantile(values: np.ndarray, inference: PairedInference) -> float:
    """The `confidence` quantile of |mean* − mean| / se* over resamples: the bootstrap's own t table for this
    sample, which learns its skew and tails where Student's t assumes normal ones. A resample of one repeated value
    has no standard error (none beyond rounding): |t| is 0 where its mean is the sample's, else infinite."""
    rng = np.random.default_rng(inference.seed)
    resampled = values[rng.integers(values.size, size=(inference.resamples, values.size))]
    errors = np.abs(resampled.mean(axis=1) - values.mean())
    standard_errors = resampled.std(axis=1, ddof=1) / math.sqrt(values.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(standard_errors <= FLOAT_NOISE, np.inf, errors / standard_errors)
    t[errors <= FLOAT_NOISE] = 0.0
    # inverted_cdf: an order statistic, never an interpolation (between two infinities it would be NaN)
    return float(np.quantile(t, inference.confidence, method="inverted_cdf"))


def _bootstrap_interval(values: np.ndarray, inference: PairedInference) -> tuple[float, float, str]:
    """The BCa or percentile interval of the mean; the percentile interval of the same resamples where BCa is
    undefined."""
    resample = {"confidence_level": inference.confidence, "rng": np.random.default_rng(inference.seed)}
    # an undefined BCa end is NaN, with a warning and a division by infinity on the way: handled below
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (values,), np.mean, n_resamples=inference.resamples, method=inference.interval, **resample
        )
    interval_method = inference.interval
    if not np.all(np.isfinite(result.confidence_interval)):
        # BCa's bias correction is infinite when no resampled mean falls below the observed one (or none above),
        # possible with few resamples; the percentile interval of the same resamples is always defined
        result = stats.bootstrap(
            (values,), np.mean, n_resamples=0, bootstrap_result=result, method="percentile", **resample
        )
        interval_method = "percentile"
    low, high = result.confidence_interval
    return (*_within_range(float(low), float(high), values), interval_method)


def _within_range(low: float, high: float, values: np.ndarray) -> tuple[float, float]:
    """Percentile and BCa ends are quantiles of resampled means, each a mean of `values`, so they lie within the
    values' range, and so within the statistic's possible range; a float mean can land one ulp outside (the mean
    of three 0.1s is 0.10000000000000002), which the clip removes. It moves nothing by more than rounding."""
    smallest, largest = float(values.min()), float(values.max())
    return min(max(low, smallest), largest), min(max(high, smallest), largest)


def _two_level_means(differences: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Grand means of `resamples` two-level resamples: S seeds drawn with replacement (as counts, so a seed drawn
    twice counts twice), crossed with I items drawn with replacement, the same items for every drawn seed."""
    seeds, items = differences.shape
    # about 2^18 values (2 MiB) an array per chunk: memory stays bounded, and in cache it runs twice as fast as 2^21
    chunk = max(1, 2**18 // items)
    means = np.empty(resamples)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        seed_counts = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=size).astype(float)
        per_item = seed_counts @ differences  # (size, items): each item's sum over the drawn seeds
        drawn_items = rng.integers(items, size=(size, items))
        # summed before the one division: on 0/±1 differences every sum is an exact integer, on any machine
        means[start : start + size] = np.take_along_axis(per_item, drawn_items, axis=1).sum(axis=1) / (seeds * items)
    return means


def _adjust_present(p_values: Sequence[float | None], adjust: Callable[[np.ndarray], np.ndarray]) -> list[float | None]:
    """Adjust the p-values that are there as one family; None (not estimable) stays None and is not counted."""
    present = [index for index, p in enumerate(p_values) if p is not None]
    family = np.array([p_values[index] for index in present], dtype=float)
    if not np.all((family >= 0) & (family <= 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {list(p_values)}")
    adjusted: list[float | None] = [None] * len(p_values)
    for index, p in zip(present, adjust(family) if present else [], strict=True):
        adjusted[index] = float(p)
    return adjusted


def _holm(p_values: np.ndarray) -> np.ndarray:
    order = np.argsort(p_values, kind="stable")
    family = p_values.size
    # the k-th smallest p is multiplied by the m − k + 1 hypotheses still in play; step-down: never below an earlier one
    stepped = np.maximum.accumulate(np.minimum(1.0, (family - np.arange(family)) * p_values[order]))
    adjusted = np.empty_like(stepped)
    adjusted[order] = stepped
    return adjusted


def _exponentiated(on_logs: Estimate) -> Estimate:
    """An effect and interval on the log scale, taken back to a ratio (the geometric mean ratio and its interval)."""
    return replace(
        on_logs,
        effect=math.exp(on_logs.effect),
        ci_low=None if on_logs.ci_low is None else math.exp(on_logs.ci_low),
        ci_high=None if on_logs.ci_high is None else math.exp(on_logs.ci_high),
    )


def _as_finite_pairs(bn: Sequence[float], vanilla: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    bn, vanilla = _as_sample(bn), _as_sample(vanilla)
    if bn.shape != vanilla.shape:
        raise ValueError(f"paired samples need one value of each per seed, got {bn.size} and {vanilla.size}")
    if not (np.all(np.isfinite(bn)) and np.all(np.isfinite(vanilla))):
        raise ValueError(f"paired values must be finite, got {bn.tolist()} and {vanilla.tolist()}")
    return bn, vanilla


def _as_sample(values: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("need at least one value (one per seed), got none")
    return values
