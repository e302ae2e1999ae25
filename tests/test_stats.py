"""Statistics over seeds, checked against scipy and against cases small enough to do by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from src.stats import (
    StepsToTarget,
    first_step_reaching,
    mean_accuracy_over_steps,
    percentile_drift,
    steps_ratio,
    steps_to_target,
    summarize,
    welch_difference,
)

ACCURACIES = [0.971, 0.975, 0.968, 0.980, 0.973]


def test_summary_is_the_mean_the_sample_std_and_the_t_interval():
    summary = summarize(ACCURACIES, confidence=0.95)
    low, high = scipy_stats.t.interval(0.95, df=4, loc=np.mean(ACCURACIES), scale=scipy_stats.sem(ACCURACIES))
    assert summary.n == 5
    assert summary.mean == pytest.approx(np.mean(ACCURACIES))
    assert summary.std == pytest.approx(np.std(ACCURACIES, ddof=1))
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_a_higher_confidence_gives_a_wider_interval():
    narrow, wide = summarize(ACCURACIES, 0.8), summarize(ACCURACIES, 0.99)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


def test_two_values_by_hand():
    # mean 2, std sqrt(2), t(0.975, df=1) = 12.706: half width 12.706 * sqrt(2) / sqrt(2)
    summary = summarize([1.0, 3.0], confidence=0.95)
    assert summary.std == pytest.approx(math.sqrt(2))
    assert summary.ci_high - summary.mean == pytest.approx(12.7062, abs=1e-4)


def test_one_seed_has_a_mean_but_no_spread():
    summary = summarize([0.97], confidence=0.95)
    assert (summary.n, summary.mean) == (1, 0.97)
    assert summary.std is None and summary.ci_low is None and summary.ci_high is None


def test_no_values_is_an_error():
    with pytest.raises(ValueError, match="at least one value"):
        summarize([], confidence=0.95)


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
    assert result == StepsToTarget(target=0.95, median=200.0, n_reached=3, n_seeds=4)
    assert steps_to_target(STEPS, per_seed, 0.975).median == 400.0  # seeds 0 and 1, both at 400
    assert steps_to_target(STEPS, per_seed, 0.99) == StepsToTarget(0.99, None, 0, 4)


def test_an_even_number_of_reached_seeds_takes_the_middle_of_the_two():
    per_seed = np.array([[0.0, 0.99, 0.99, 0.99, 0.99], [0.0, 0.0, 0.0, 0.99, 0.99]])
    assert steps_to_target(STEPS, per_seed, 0.95).median == 200.0


def test_the_steps_ratio_is_vanilla_over_bn():
    vanilla, bn = StepsToTarget(0.95, 3000.0, 5, 5), StepsToTarget(0.95, 200.0, 5, 5)
    assert steps_ratio(vanilla, bn) == pytest.approx(15.0)


@pytest.mark.parametrize(
    ("vanilla_median", "bn_median"),
    [(None, 200.0), (3000.0, None), (None, None), (3000.0, 0.0)],
)
def test_the_steps_ratio_is_undefined_unless_both_reached_the_target(vanilla_median, bn_median):
    vanilla = StepsToTarget(0.95, vanilla_median, 0 if vanilla_median is None else 1, 1)
    bn = StepsToTarget(0.95, bn_median, 0 if bn_median is None else 1, 1)
    assert steps_ratio(vanilla, bn) is None


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


def test_welch_difference_matches_scipy():
    bn = [0.981, 0.979, 0.983, 0.980]
    vanilla = [0.970, 0.965, 0.975, 0.972, 0.969]
    result = welch_difference(bn, vanilla, confidence=0.9)
    reference = scipy_stats.ttest_ind(bn, vanilla, equal_var=False)
    assert result.difference == pytest.approx(np.mean(bn) - np.mean(vanilla))
    assert result.p_value == pytest.approx(reference.pvalue)
    # the Welch interval by hand: Welch–Satterthwaite degrees of freedom, unpooled standard error
    va, vb = np.var(bn, ddof=1) / 4, np.var(vanilla, ddof=1) / 5
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    half_width = scipy_stats.t.ppf(0.95, df) * math.sqrt(va + vb)
    assert result.ci_low == pytest.approx(result.difference - half_width)
    assert result.ci_high == pytest.approx(result.difference + half_width)


def test_welch_difference_is_signed_treated_minus_control():
    worse = welch_difference([0.90, 0.91, 0.92], [0.97, 0.98, 0.99], confidence=0.95)
    assert worse.difference == pytest.approx(-0.07)
    assert worse.ci_high < 0 and worse.p_value < 0.01


def test_welch_difference_with_one_seed_has_no_test():
    result = welch_difference([0.98], [0.97, 0.96], confidence=0.95)
    assert result.difference == pytest.approx(0.015)
    assert result.ci_low is None and result.ci_high is None and result.p_value is None


def test_percentile_drift_compares_the_reference_step_with_the_end():
    steps = np.arange(0, 1100, 100)  # reference at 10 % of 1000: step 100
    p15 = np.linspace(-1.0, -4.0, 11)
    p50 = np.linspace(0.0, -2.0, 11)
    p85 = np.linspace(1.0, 0.0, 11)
    drift = percentile_drift(steps, p15, p50, p85, reference_fraction=0.1)
    assert (drift.reference_step, drift.final_step) == (100, 1000)
    assert drift.median_shift == pytest.approx(-2.0 + 0.2)
    assert drift.spread_at_reference == pytest.approx(0.9 - (-1.3))
    assert drift.spread_at_end == pytest.approx(4.0)
    assert drift.relative_median_shift == pytest.approx(1.8 / 2.2)
    assert drift.relative_spread_change == pytest.approx(4.0 / 2.2 - 1)


def test_a_distribution_that_stays_put_has_no_drift():
    steps = np.array([0, 500, 1000, 5000, 10000])
    flat = np.ones(5)
    drift = percentile_drift(steps, -flat, 0 * flat, flat, reference_fraction=0.1)
    assert drift.reference_step == 1000
    assert drift.median_shift == 0 and drift.relative_median_shift == 0 and drift.relative_spread_change == 0
