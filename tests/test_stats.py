"""Statistics over seeds, checked against scipy and against cases small enough to do by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from src.stats import (
    Estimate,
    PercentileDrift,
    StepsToTarget,
    first_step_reaching,
    mean_accuracy_over_steps,
    paired_difference,
    paired_ratio,
    percentile_drift,
    seed_summary,
    side,
    steps_to_target,
    verdict,
)

ACCURACIES = [0.971, 0.975, 0.968, 0.980, 0.973]


def test_summary_is_the_mean_the_sample_std_and_the_t_interval():
    summary = seed_summary(ACCURACIES, confidence=0.95)
    low, high = scipy_stats.t.interval(0.95, df=4, loc=np.mean(ACCURACIES), scale=scipy_stats.sem(ACCURACIES))
    assert summary.mean == pytest.approx(np.mean(ACCURACIES))
    assert summary.std == pytest.approx(np.std(ACCURACIES, ddof=1))
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_a_higher_confidence_gives_a_wider_interval():
    narrow, wide = seed_summary(ACCURACIES, 0.8), seed_summary(ACCURACIES, 0.99)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


def test_two_values_by_hand():
    # mean 2, std sqrt(2), t(0.975, df=1) = 12.706: half width 12.706 * sqrt(2) / sqrt(2)
    summary = seed_summary([1.0, 3.0], confidence=0.95)
    assert summary.std == pytest.approx(math.sqrt(2))
    assert summary.ci_high - summary.mean == pytest.approx(12.7062, abs=1e-4)


def test_one_seed_has_a_mean_but_no_spread():
    summary = seed_summary([0.97], confidence=0.95)
    assert summary.mean == 0.97
    assert summary.std is None and summary.ci_low is None and summary.ci_high is None


def test_no_values_is_an_error():
    with pytest.raises(ValueError, match="at least one value"):
        seed_summary([], confidence=0.95)


STEPS = np.array([0, 100, 200, 300, 400])


def test_first_step_reaching_a_target_is_the_first_eval_at_or_above_it():
    accuracy = np.array([0.1, 0.90, 0.95, 0.94, 0.97])
    assert first_step_reaching(STEPS, accuracy, 0.95) == 200  # equal counts as reached
    assert first_step_reaching(STEPS, accuracy, 0.96) == 400
    assert first_step_reaching(STEPS, accuracy, 0.98) is None


def test_steps_to_target_is_the_median_over_the_seeds_that_got_there():
    per_seed = np.array(
        [
            [0.1, 0.96, 0.97, 0.97, 0.98],  # reaches 0.95 at 100
            [0.1, 0.90, 0.95, 0.97, 0.98],  # at 200
            [0.1, 0.90, 0.93, 0.96, 0.97],  # at 300
            [0.1, 0.50, 0.60, 0.70, 0.80],  # never
        ]
    )
    result = steps_to_target(STEPS, per_seed, 0.95)
    assert result == StepsToTarget(median=200.0, n_reached=3)
    assert steps_to_target(STEPS, per_seed, 0.975).median == 400.0  # seeds 0 and 1, both at 400
    assert steps_to_target(STEPS, per_seed, 0.99) == StepsToTarget(None, 0)


def test_an_even_number_of_reached_seeds_takes_the_middle_of_the_two():
    per_seed = np.array([[0.0, 0.99, 0.99, 0.99, 0.99], [0.0, 0.0, 0.0, 0.99, 0.99]])
    assert steps_to_target(STEPS, per_seed, 0.95).median == 200.0


def test_the_area_under_a_constant_curve_is_the_constant():
    assert mean_accuracy_over_steps(STEPS, np.full(5, 0.9)) == pytest.approx(0.9)


def test_the_area_is_a_trapezoid_normalised_by_the_step_span():
    # 0 -> 1 over [0, 100], then 1 over [100, 300]: area 50 + 200 = 250 over a span of 300
    assert mean_accuracy_over_steps(np.array([0, 100, 300]), np.array([0.0, 1.0, 1.0])) == pytest.approx(250 / 300)


def test_a_single_evaluation_is_its_own_mean():
    assert mean_accuracy_over_steps(np.array([500]), np.array([0.93])) == pytest.approx(0.93)


@pytest.mark.parametrize(
    ("steps", "values", "message"),
    [
        ([0, 200, 100], [0.1, 0.2, 0.3], "strictly increasing"),
        ([0, 100], [0.1, 0.2, 0.3], "equal-length"),
    ],
)
def test_malformed_curves_are_rejected(steps, values, message):
    with pytest.raises(ValueError, match=message):
        mean_accuracy_over_steps(np.array(steps), np.array(values))


def test_percentile_drift_compares_the_reference_step_with_the_end():
    steps = np.arange(0, 1100, 100)  # reference at 10 % of 1000: step 100
    p15 = np.linspace(-1.0, -4.0, 11)
    p50 = np.linspace(0.0, -2.0, 11)
    p85 = np.linspace(1.0, 0.0, 11)
    drift = percentile_drift(steps, p15, p50, p85, reference_fraction=0.1)
    assert drift.reference_step == 100
    assert drift.median_shift == pytest.approx(-2.0 + 0.2)
    assert drift.p15_shift == pytest.approx(-4.0 + 1.3)
    assert drift.p85_shift == pytest.approx(0.0 - 0.9)
    assert drift.spread_at_reference == pytest.approx(0.9 - (-1.3))
    assert drift.spread_at_end == pytest.approx(4.0)
    assert drift.relative_drift == pytest.approx((2.7 + 1.8 + 0.9) / 3 / 2.2)


def test_a_distribution_that_stays_put_has_no_drift():
    steps = np.array([0, 500, 1000, 5000, 10000])
    flat = np.ones(5)
    drift = percentile_drift(steps, -flat, 0 * flat, flat, reference_fraction=0.1)
    assert drift.reference_step == 1000
    assert drift.median_shift == 0 and drift.relative_drift == 0


def test_relative_drift_is_the_mean_absolute_percentile_shift_over_the_reference_spread():
    # spread 2 at the reference; p15 moves −0.5, p50 +1, p85 +0.3: (0.5 + 1 + 0.3) / 3 / 2
    drift = PercentileDrift(
        0, median_shift=1.0, spread_at_reference=2.0, spread_at_end=2.8, p15_shift=-0.5, p85_shift=0.3
    )
    assert drift.relative_drift == pytest.approx(0.3)


def test_a_pure_widening_of_the_spread_counts_as_drift():
    # the median stays put while the 15th and 85th percentiles move apart: shifts of opposite sign do not cancel
    steps = np.array([0, 100, 1000])
    drift = percentile_drift(steps, [-1.0, -1.0, -2.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0], reference_fraction=0.1)
    assert drift.median_shift == 0
    assert drift.relative_drift == pytest.approx((1 + 0 + 1) / 3 / 2)


def test_a_distribution_that_moves_as_a_whole_drifts_by_its_shift_over_its_spread():
    steps = np.array([0, 100, 1000])
    drift = percentile_drift(steps, [-1.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 2.0], reference_fraction=0.1)
    assert drift.relative_drift == pytest.approx(1 / 2)


def test_an_input_with_no_spread_at_the_reference_has_no_finite_drift():
    drift = PercentileDrift(0, median_shift=0.0, spread_at_reference=0.0, spread_at_end=1.0)
    assert drift.relative_drift == math.inf


# --- paired effects and verdicts ------------------------------------------------------------------------------

# the seeds vary together (seed 2 is easy for both variants): pairing removes that shared spread
BN = [0.981, 0.975, 0.990, 0.979, 0.984]
VANILLA = [0.972, 0.968, 0.983, 0.969, 0.977]


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_a_paired_difference_is_the_mean_per_pair_difference_with_the_paired_t_interval(confidence):
    estimate = paired_difference(BN, VANILLA, confidence)
    reference = scipy_stats.ttest_rel(BN, VANILLA).confidence_interval(confidence_level=confidence)
    assert estimate.effect == pytest.approx(np.mean(np.subtract(BN, VANILLA)))
    assert (estimate.ci_low, estimate.ci_high) == (pytest.approx(reference.low), pytest.approx(reference.high))
    assert estimate.n == 5


def test_a_paired_difference_is_signed_bn_minus_vanilla():
    assert paired_difference(VANILLA, BN, 0.95).effect == pytest.approx(-paired_difference(BN, VANILLA, 0.95).effect)
    assert paired_difference(VANILLA, BN, 0.95).ci_high < 0


def test_pairing_is_narrower_than_comparing_the_two_groups_when_seeds_vary_together():
    paired = paired_difference(BN, VANILLA, 0.95)
    unpaired = scipy_stats.ttest_ind(BN, VANILLA, equal_var=False).confidence_interval(0.95)
    assert paired.ci_high - paired.ci_low < (unpaired.high - unpaired.low) / 2


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_a_paired_ratio_is_the_geometric_mean_with_the_log_scale_interval_exponentiated(confidence):
    bn, vanilla = [200.0, 300.0, 150.0, 400.0], [1000.0, 1200.0, 900.0, 1500.0]
    estimate = paired_ratio(bn, vanilla, confidence)
    on_logs = scipy_stats.ttest_rel(np.log(bn), np.log(vanilla)).confidence_interval(confidence_level=confidence)
    assert estimate.effect == pytest.approx(scipy_stats.gmean(np.divide(bn, vanilla)))
    assert estimate.ci_low == pytest.approx(math.exp(on_logs.low))
    assert estimate.ci_high == pytest.approx(math.exp(on_logs.high))
    assert estimate.n == 4


def test_a_paired_ratio_is_bn_over_vanilla():
    bn, vanilla = [1.0, 2.0, 3.0], [4.0, 4.5, 7.0]
    forward, backward = paired_ratio(bn, vanilla, 0.95), paired_ratio(vanilla, bn, 0.95)
    assert forward.effect < 1 < backward.effect
    assert forward.effect == pytest.approx(1 / backward.effect)
    assert forward.ci_low == pytest.approx(1 / backward.ci_high)


@pytest.mark.parametrize("paired", [paired_difference, paired_ratio])
def test_one_pair_has_an_effect_but_no_interval(paired):
    estimate = paired([2.0], [4.0], 0.95)
    assert estimate.effect == pytest.approx(-2.0 if paired is paired_difference else 0.5)
    assert (estimate.ci_low, estimate.ci_high, estimate.n) == (None, None, 1)


def test_pairs_that_all_agree_give_a_zero_width_interval_at_the_effect():
    shifted = paired_difference([3.0, 5.0, 9.0], [1.0, 3.0, 7.0], 0.95)
    assert shifted == Estimate(effect=2.0, ci_low=2.0, ci_high=2.0, n=3)
    scaled = paired_ratio([2.0, 6.0, 10.0], [1.0, 3.0, 5.0], 0.95)
    assert (scaled.effect, scaled.ci_low, scaled.ci_high) == (pytest.approx(2.0),) * 3


@pytest.mark.parametrize("paired", [paired_difference, paired_ratio])
def test_identical_pairs_give_a_zero_width_interval_at_no_effect(paired):
    no_effect = 0.0 if paired is paired_difference else 1.0
    estimate = paired(VANILLA, VANILLA, 0.95)
    assert (estimate.effect, estimate.ci_low, estimate.ci_high) == (no_effect, no_effect, no_effect)


@pytest.mark.parametrize("paired", [paired_difference, paired_ratio])
def test_pairs_need_one_value_of_each_per_seed(paired):
    with pytest.raises(ValueError, match="one value of each per seed, got 3 and 2"):
        paired([1.0, 2.0, 3.0], [1.0, 2.0], 0.95)


@pytest.mark.parametrize(("bn", "vanilla"), [([1.0, 0.0], [1.0, 1.0]), ([1.0, 1.0], [1.0, -2.0])])
def test_a_ratio_needs_positive_values(bn, vanilla):
    with pytest.raises(ValueError, match="positive"):
        paired_ratio(bn, vanilla, 0.95)


def _interval(low: float, high: float) -> Estimate:
    return Estimate(effect=(low + high) / 2, ci_low=low, ci_high=high, n=5)


@pytest.mark.parametrize(
    ("low", "high", "no_effect", "expected"),
    [
        (0.01, 0.03, 0.0, "above"),
        (-0.03, -0.01, 0.0, "below"),
        (-0.01, 0.03, 0.0, None),
        (1.5, 4.0, 1.0, "above"),
        (0.2, 0.5, 1.0, "below"),
        (0.2, 4.0, 1.0, None),
        # an interval that reaches no effect does not exclude it
        (0.0, 0.03, 0.0, None),
        (-0.03, 0.0, 0.0, None),
        (1.0, 1.0, 1.0, None),
    ],
)
def test_an_interval_lies_on_one_side_of_no_effect_only_when_it_excludes_it(low, high, no_effect, expected):
    assert side(_interval(low, high), no_effect) == expected


def test_without_an_interval_there_is_no_side():
    assert side(Estimate(effect=100.0, ci_low=None, ci_high=None, n=1), 0.0) is None


@pytest.mark.parametrize(
    ("low", "high", "no_effect", "bn_favoured", "expected"),
    [
        # differences: no effect is 0
        (0.01, 0.03, 0.0, "higher", "holds"),
        (-0.03, -0.01, 0.0, "higher", "contradicted"),
        (-0.01, 0.03, 0.0, "higher", "not shown"),
        (-0.03, -0.01, 0.0, "lower", "holds"),
        (0.01, 0.03, 0.0, "lower", "contradicted"),
        (-0.03, 0.01, 0.0, "lower", "not shown"),
        # ratios: no effect is 1, and an interval entirely above 0 says nothing by itself
        (1.5, 4.0, 1.0, "higher", "holds"),
        (0.2, 0.5, 1.0, "higher", "contradicted"),
        (0.5, 1.5, 1.0, "higher", "not shown"),
        (0.2, 0.5, 1.0, "lower", "holds"),
        (1.5, 4.0, 1.0, "lower", "contradicted"),
        (0.9, 1.1, 1.0, "lower", "not shown"),
        # an interval that reaches no effect does not exclude it
        (0.0, 0.03, 0.0, "higher", "not shown"),
        (0.5, 1.0, 1.0, "lower", "not shown"),
        (1.0, 1.0, 1.0, "higher", "not shown"),
    ],
)
def test_the_verdict_follows_from_where_the_interval_lies(low, high, no_effect, bn_favoured, expected):
    assert verdict(_interval(low, high), no_effect, bn_favoured) == expected


@pytest.mark.parametrize("bn_favoured", ["higher", "lower"])
def test_without_an_interval_nothing_is_shown(bn_favoured):
    huge = Estimate(effect=100.0, ci_low=None, ci_high=None, n=1)
    assert verdict(huge, 1.0, bn_favoured) == "not shown"
    assert verdict(paired_difference([0.99], [0.10], 0.95), 0.0, bn_favoured) == "not shown"
