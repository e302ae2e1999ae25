"""Statistics over seeds, checked against scipy and against cases small enough to do by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from src.stats import (
    Estimate,
    PairedInference,
    PercentileDrift,
    StepsToTarget,
    benjamini_hochberg,
    decide,
    first_step_reaching,
    holm,
    mean_accuracy_over_steps,
    paired_difference,
    paired_difference_test,
    paired_ratio,
    paired_ratio_test,
    percentile_drift,
    seed_summary,
    side,
    steps_to_target,
    two_level_bootstrap,
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


# --- tests that fit the data: exact paired tests, bootstrap intervals, corrections, decisions ------------------

SIGN_FLIP, SIGNED_RANK = PairedInference(test="sign_flip"), PairedInference(test="signed_rank")
BOTH_TESTS = pytest.mark.parametrize("inference", [SIGN_FLIP, SIGNED_RANK], ids=["sign_flip", "signed_rank"])
ACCURACY_DIFFERENCE = (-1.0, 1.0)


def _seeds_with_a_gain(seeds: int = 10, gain: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Final accuracies per seed, BN ahead by `gain` with noise; seeds vary together, as they share data order."""
    rng = np.random.default_rng(1)
    vanilla = 0.97 + rng.normal(0, 0.004, seeds)
    return vanilla + gain + rng.normal(0, 0.003, seeds), vanilla


@BOTH_TESTS
def test_a_clear_gain_holds_and_the_same_seeds_reversed_contradict_it(inference):
    bn, vanilla = _seeds_with_a_gain()
    gain = paired_difference_test(bn, vanilla, inference, ACCURACY_DIFFERENCE)
    assert gain.effect == pytest.approx(np.mean(bn - vanilla))
    assert 0 < gain.ci_low < gain.effect < gain.ci_high and gain.p_value < 0.01 and gain.test == inference.test
    assert decide(gain, gain.p_value, 0.05, 0.0, "higher") == "holds"
    loss = paired_difference_test(vanilla, bn, inference, ACCURACY_DIFFERENCE)
    assert loss.ci_high < 0
    assert decide(loss, loss.p_value, 0.05, 0.0, "higher") == "contradicted"
    assert decide(loss, loss.p_value, 0.05, 0.0, "lower") == "holds"


@BOTH_TESTS
def test_a_clear_speed_up_holds_as_a_ratio_below_one(inference):
    # steps to a target, read at evaluation points every 100 steps: BN needs about half of vanilla's
    rng = np.random.default_rng(2)
    vanilla = 100.0 * rng.integers(20, 40, 10)
    bn = 100.0 * np.round(vanilla * 0.5 * np.exp(rng.normal(0, 0.1, 10)) / 100)
    speed_up = paired_ratio_test(bn, vanilla, inference)
    assert speed_up.effect == pytest.approx(scipy_stats.gmean(bn / vanilla))
    assert speed_up.effect == pytest.approx(0.5, rel=0.1)
    assert 0 < speed_up.ci_low < speed_up.effect < speed_up.ci_high < 1
    assert decide(speed_up, speed_up.p_value, 0.05, 1.0, "lower") == "holds"
    assert decide(speed_up, speed_up.p_value, 0.05, 1.0, "higher") == "contradicted"


# --- on data with no effect, "holds" no more often than the nominal rate ---------------------------------------

ALPHA = 0.05


def _at_most_nominal(decisions: list[str]) -> None:
    """ "holds" (BN claimed higher) at most alpha/2 of the time and a significant verdict either way at most alpha,
    each within three Monte Carlo standard errors."""
    trials = len(decisions)
    holds = decisions.count("holds") / trials
    significant = holds + decisions.count("contradicted") / trials
    for rate, nominal in ((holds, ALPHA / 2), (significant, ALPHA)):
        assert rate <= nominal + 3 * math.sqrt(nominal * (1 - nominal) / trials), (rate, nominal)


def _trained_or_at_chance(rng: np.random.Generator, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Both variants' final accuracies from one distribution: a run trains (≈ 0.95) with chance 0.8, else stays at
    chance (≈ 0.1); bounded, bimodal, and discrete (200 test images)."""
    trained = rng.random((2, seeds)) < 0.8
    accuracy = np.where(trained, rng.binomial(200, 0.95, (2, seeds)), rng.binomial(200, 0.1, (2, seeds))) / 200
    return accuracy[0], accuracy[1]


def _usable_rates_on_a_grid(rng: np.random.Generator, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Both variants' largest usable rate from one distribution on a half-decade grid: ties and zero differences."""
    rates = 10.0 ** ((rng.integers(-2, 3, size=(2, seeds)) - 2) / 2)
    return rates[0], rates[1]


def test_the_sign_flip_rule_holds_no_more_than_the_nominal_rate_on_bimodal_accuracies_with_no_effect():
    # 2,000 data sets of 8 seeds (~3 s); few bootstrap resamples, as the interval does not enter the decision
    rng, inference = np.random.default_rng(20), PairedInference(test="sign_flip", resamples=199)
    decisions = []
    for _ in range(2000):
        estimate = paired_difference_test(*_trained_or_at_chance(rng, 8), inference, ACCURACY_DIFFERENCE)
        decisions.append(decide(estimate, estimate.p_value, ALPHA, 0.0, "higher"))
    _at_most_nominal(decisions)


def test_the_signed_rank_rule_holds_no_more_than_the_nominal_rate_on_grid_ratios_with_no_effect():
    rng, inference = np.random.default_rng(21), PairedInference(test="signed_rank", resamples=199)
    decisions = []
    for _ in range(2000):
        estimate = paired_ratio_test(*_usable_rates_on_a_grid(rng, 8), inference)
        decisions.append(decide(estimate, estimate.p_value, ALPHA, 1.0, "higher"))
    _at_most_nominal(decisions)


def _correct_per_image(rng: np.random.Generator, seeds: int, images: int) -> np.ndarray:
    """correct_bn − correct_vanilla per (seed, image) with no effect on average over images, but each image favours
    one variant or the other: this test set's mean difference is its own sampling noise, not an effect."""
    difficulty = rng.normal(2.5, 1.5, images)
    favours = rng.normal(0, 1.5, images) * np.array([0.5, -0.5])[:, None, None]
    ability = rng.normal(0, 0.1, (2, seeds, 1))
    correct = rng.random((2, seeds, images)) < 1 / (1 + np.exp(-(difficulty + favours + ability)))
    return correct[0].astype(float) - correct[1].astype(float)


def test_the_two_level_bootstrap_holds_no_more_than_the_nominal_rate_when_only_the_test_set_favours_bn():
    # 400 data sets of 10 seeds × 400 images, 400 resamples (~2 s): three standard errors are wider here (±0.033).
    # A test over seeds alone (sign flip on per-seed accuracies) calls this test-set noise significant in 18 %.
    rng = np.random.default_rng(22)
    decisions = []
    for data_set in range(400):
        estimate = two_level_bootstrap(_correct_per_image(rng, 10, 400), 0.95, resamples=400, seed=data_set)
        decisions.append(decide(estimate, estimate.p_value, ALPHA, 0.0, "higher"))
    _at_most_nominal(decisions)


# --- nothing to estimate -------------------------------------------------------------------------------------


@BOTH_TESTS
def test_seeds_that_all_give_the_same_grid_ratio_are_not_estimable_not_a_zero_width_hold(inference):
    # three seeds, each a ratio of 10: the logs differ in the last bit only (4e-16), which is rounding, not spread
    bn, vanilla = [31.6, 3.16, 0.316], [3.16, 0.316, 0.0316]
    assert np.ptp(np.log(bn) - np.log(vanilla)) > 0
    estimate = paired_ratio_test(bn, vanilla, inference)
    assert estimate.effect == pytest.approx(10.0)
    assert not estimate.estimable
    assert (estimate.ci_low, estimate.ci_high, estimate.p_value, estimate.n) == (None, None, None, 3)
    assert decide(estimate, None, ALPHA, 1.0, "higher") == "not estimable"


@BOTH_TESTS
@pytest.mark.parametrize(("bn", "vanilla"), [([3.0, 5.0, 9.0], [1.0, 3.0, 7.0]), (VANILLA, VANILLA), ([0.9], [0.1])])
def test_pairs_that_all_agree_or_a_single_pair_are_not_estimable(inference, bn, vanilla):
    estimate = paired_difference_test(bn, vanilla, inference)
    assert estimate.effect == pytest.approx(np.mean(np.subtract(bn, vanilla)))
    assert (estimate.ci_low, estimate.ci_high, estimate.p_value) == (None, None, None)
    assert decide(estimate, 0.001, ALPHA, 0.0, "higher") == "not estimable"


@pytest.mark.parametrize("differences", [np.full((3, 50), 0.01), np.ones((1, 50)) - np.eye(1, 50)])
def test_a_two_level_sample_with_no_spread_or_one_seed_is_not_estimable(differences):
    estimate = two_level_bootstrap(differences, 0.95, resamples=200, seed=0)
    assert estimate.effect == pytest.approx(differences.mean())
    assert not estimate.estimable and estimate.p_value is None


# --- intervals stay in the possible range ----------------------------------------------------------------------

TRAINED_AND_FAILED = [
    # seeds where one variant trains (≈ 0.97) and the other stays at chance (≈ 0.10): differences near ±0.9
    ([0.98, 0.10, 0.97, 0.11, 0.98], [0.10, 0.97, 0.10, 0.98, 0.11]),
    ([0.97, 0.98, 0.10], [0.10, 0.11, 0.97]),
]


@BOTH_TESTS
@pytest.mark.parametrize("confidence", [0.95, 0.99])
@pytest.mark.parametrize(("bn", "vanilla"), TRAINED_AND_FAILED)
def test_an_interval_where_trained_and_failed_seeds_mix_stays_inside_minus_one_to_one(
    inference, confidence, bn, vanilla
):
    assert paired_difference(bn, vanilla, confidence).ci_high > 1  # the t-interval it replaces leaves the range
    options = PairedInference(confidence=confidence, test=inference.test)
    estimate = paired_difference_test(bn, vanilla, options, ACCURACY_DIFFERENCE)
    differences = np.subtract(bn, vanilla)
    assert -1 <= differences.min() <= estimate.ci_low < estimate.ci_high <= differences.max() <= 1


def test_an_interval_end_is_never_a_rounding_error_past_the_data():
    # a resample of three 0.1s (drawn 30 % of the time) has the float mean 0.10000000000000002, past the data
    assert np.mean([0.1, 0.1, 0.1]) > 0.1
    estimate = paired_difference_test([0.1, 0.1, 0.05], [0.0] * 3, SIGN_FLIP, (0.0, 0.1))
    assert estimate.ci_high == 0.1


def test_a_ratio_interval_stays_positive_however_far_the_seeds_spread():
    estimate = paired_ratio_test([1e-6, 10.0, 1e6, 1e-3], [1.0, 1.0, 1.0, 1.0], SIGN_FLIP)
    assert 0 < estimate.ci_low < estimate.effect < estimate.ci_high < math.inf


def test_a_two_level_interval_where_trained_and_failed_seeds_mix_stays_inside_minus_one_to_one():
    rng = np.random.default_rng(3)
    bn_trained = np.array([True, False, True, False, True])[:, None]  # vanilla the other way round
    correct_bn = np.where(bn_trained, rng.random((5, 1000)) < 0.97, rng.random((5, 1000)) < 0.1)
    correct_vanilla = np.where(~bn_trained, rng.random((5, 1000)) < 0.97, rng.random((5, 1000)) < 0.1)
    estimate = two_level_bootstrap(correct_bn.astype(float) - correct_vanilla, 0.99, resamples=2000, seed=0)
    assert -1 <= estimate.ci_low < estimate.effect < estimate.ci_high <= 1


@pytest.mark.parametrize(("bn", "vanilla", "bounds"), [([0.5, 2.0], [0.4, 0.3], (-1.0, 1.0)), ([0.9], [0.95], (0, 1))])
def test_differences_outside_their_stated_range_are_refused(bn, vanilla, bounds):
    with pytest.raises(ValueError, match="must lie in"):
        paired_difference_test(bn, vanilla, SIGN_FLIP, bounds)


@pytest.mark.parametrize(("bn", "vanilla"), [([1.0, 0.0], [1.0, 1.0]), ([1.0, 1.0], [1.0, -2.0])])
def test_a_ratio_test_needs_positive_values(bn, vanilla):
    with pytest.raises(ValueError, match="positive"):
        paired_ratio_test(bn, vanilla, SIGN_FLIP)


def test_a_missing_value_is_refused_rather_than_tested():
    with pytest.raises(ValueError, match="finite"):
        paired_difference_test([0.9, math.nan, 0.8], [0.8, 0.8, 0.8], SIGN_FLIP)


# --- the same inputs give the same interval --------------------------------------------------------------------


@BOTH_TESTS
def test_the_same_seeds_and_bootstrap_seed_give_identical_results_and_another_bootstrap_seed_moves_only_the_interval(
    inference,
):
    bn, vanilla = _seeds_with_a_gain(gain=0.002)
    first = paired_difference_test(bn, vanilla, inference, ACCURACY_DIFFERENCE)
    assert paired_difference_test(bn, vanilla, inference, ACCURACY_DIFFERENCE) == first
    other = paired_difference_test(bn, vanilla, PairedInference(test=inference.test, seed=1), ACCURACY_DIFFERENCE)
    assert (other.effect, other.p_value) == (first.effect, first.p_value)  # the exact test uses no random numbers
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_the_interval_is_scipys_bca_bootstrap_of_the_mean_difference_seeded_with_default_rng():
    bn, vanilla = _seeds_with_a_gain(gain=0.002)
    inference = PairedInference(confidence=0.9, resamples=5000, seed=7)
    estimate = paired_difference_test(bn, vanilla, inference)
    reference = scipy_stats.bootstrap(
        (bn - vanilla,), np.mean, n_resamples=5000, confidence_level=0.9, rng=np.random.default_rng(7)
    ).confidence_interval
    assert (estimate.ci_low, estimate.ci_high, estimate.interval_method) == (reference.low, reference.high, "BCa")


def test_where_bca_is_undefined_the_percentile_interval_of_the_same_resamples_is_used():
    # with two resamples, both above the observed mean (bootstrap seed 4), BCa's bias correction is infinite
    estimate = paired_difference_test([0.0, 0.0, 0.0, 1.0], [0.0] * 4, PairedInference(resamples=2, seed=4))
    assert estimate.interval_method == "percentile"
    assert 0 <= estimate.ci_low <= estimate.ci_high <= 1


def test_the_two_level_bootstrap_gives_identical_results_for_the_same_seed():
    differences = _correct_per_image(np.random.default_rng(4), 5, 300)
    first = two_level_bootstrap(differences, 0.95, resamples=1000, seed=3)
    assert two_level_bootstrap(differences, 0.95, resamples=1000, seed=3) == first
    assert two_level_bootstrap(differences, 0.95, resamples=1000, seed=4) != first


# --- p-values: exact, with the resolution that n allows --------------------------------------------------------


def test_the_sign_flip_p_value_counts_the_sign_patterns_as_extreme_as_the_data():
    # 16 patterns of ±0.3 ±0.1 ±0.2 ±0.5; the observed sum 0.9 is reached when nothing or only the 0.1 is negative
    differences = [0.3, -0.1, 0.2, 0.5]
    sums = [
        sum(sign * d for sign, d in zip(signs, differences, strict=True))
        for signs in itertools.product((-1, 1), repeat=4)
    ]
    assert sum(abs(total) >= 0.9 - 1e-12 for total in sums) == 4
    assert paired_difference_test(differences, [0.0] * 4, SIGN_FLIP).p_value == pytest.approx(4 / 16)


@pytest.mark.parametrize(
    "differences",
    [
        [0.3, -0.1, 0.2, 0.5, 0.45, -0.05, 0.7],  # no ties, no zeros: wilcoxon's exact distribution
        [0.5, 0.5, -0.5, 1.0, 1.0, 0.0, 1.5, 0.0],  # ties and zeros: wilcoxon by permutation
    ],
)
def test_the_signed_rank_p_value_is_scipys_wilcoxon(differences):
    method = "exact" if 0 not in differences else scipy_stats.PermutationMethod(n_resamples=2**15)
    reference = scipy_stats.wilcoxon(differences, method=method).pvalue
    assert paired_difference_test(differences, [0.0] * len(differences), SIGNED_RANK).p_value == pytest.approx(
        reference
    )


@BOTH_TESTS
def test_at_five_seeds_an_exact_test_cannot_go_below_2_in_32_though_every_seed_agrees(inference):
    estimate = paired_difference_test([0.01, 0.02, 0.03, 0.015, 0.025], [0.0] * 5, inference)
    assert estimate.p_value == 2 / 2**5 == 0.0625
    # the bootstrap interval excludes 0, but the decision is the test's: at n = 5 nothing is significant at 0.05
    assert estimate.ci_low > 0
    assert decide(estimate, estimate.p_value, ALPHA, 0.0, "higher") == "not shown"


@BOTH_TESTS
@pytest.mark.parametrize("seeds", [10, 15])
def test_at_ten_or_more_seeds_the_exact_p_value_reaches_2_in_2_to_the_n(inference, seeds):
    # 2 / 2^15 is only reached by enumerating all 32,768 patterns: a sample of them could not go below 2 / 32,769
    estimate = paired_difference_test(0.01 * np.arange(1, seeds + 1), [0.0] * seeds, inference)
    assert estimate.p_value == 2 / 2**seeds


def test_the_two_level_p_value_is_the_far_side_share_doubled_with_one_added():
    # every resampled mean is above 0: none on the far side, so p = 2 (0 + 1) / (999 + 1)
    differences = np.ones((4, 100)) - np.eye(4, 100)
    assert two_level_bootstrap(differences, 0.95, resamples=999, seed=0).p_value == 2 / 1000


def test_the_two_level_p_value_is_capped_at_one():
    # a grand mean of exactly 0: about half the resampled means on each side, and 2 (1 + about 500) / 1000 > 1
    estimate = two_level_bootstrap(np.array([[1.0, -1.0], [-1.0, 1.0]]), 0.95, resamples=999, seed=0)
    assert estimate.p_value == 1.0


def test_the_two_level_interval_counts_the_test_sets_noise_where_the_seeds_all_agree():
    # every seed gets the same images right and wrong: seeds alone show no spread, the test set's 300 images do
    per_image = np.where(np.arange(300) % 10 < 6, 1.0, np.where(np.arange(300) % 10 < 8, -1.0, 0.0))
    differences = np.tile(per_image, (5, 1))
    assert not paired_difference_test(differences.mean(axis=1), [0.0] * 5, SIGN_FLIP).estimable
    estimate = two_level_bootstrap(differences, 0.95, resamples=2000, seed=0)
    assert estimate.effect == pytest.approx(0.4)
    assert 0.3 < estimate.ci_low < 0.4 < estimate.ci_high < 0.5  # a binomial-like width, ±1.96 · 0.8 / √300


@pytest.mark.parametrize("differences", [np.zeros(5), np.zeros((2, 0)), np.array([[0.0, math.inf], [0.0, 1.0]])])
def test_two_level_differences_must_be_a_finite_seeds_by_items_array(differences):
    with pytest.raises(ValueError, match=r"finite \(seeds, items\) array"):
        two_level_bootstrap(differences, 0.95, resamples=100, seed=0)


@pytest.mark.parametrize(("confidence", "resamples"), [(1.0, 100), (0.95, 0)])
def test_two_level_options_are_checked(confidence, resamples):
    with pytest.raises(ValueError, match="need confidence in"):
        two_level_bootstrap(np.eye(3), confidence, resamples, seed=0)


# --- multiplicity -------------------------------------------------------------------------------------------


def test_holm_by_hand_with_a_not_estimable_member_left_out_of_the_family():
    # m = 4: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04, raised to 0.06 (step-down: never below)
    assert holm([0.01, 0.04, None, 0.03, 0.005]) == pytest.approx([0.03, 0.06, None, 0.06, 0.02])


def test_benjamini_hochberg_by_hand_with_a_not_estimable_member_left_out_of_the_family():
    # m = 4: p · 4 / rank = 0.02, 0.02, 0.04, 0.04, each the least of itself and those ranked above it
    assert benjamini_hochberg([0.01, 0.04, None, 0.03, 0.005]) == pytest.approx([0.02, 0.04, None, 0.04, 0.02])


@pytest.mark.parametrize(
    ("p_values", "by_holm", "by_bh"),
    [
        ([0.5, 0.6], [1.0, 1.0], [0.6, 0.6]),  # capped at 1
        ([0.01, 0.01], [0.02, 0.02], [0.01, 0.01]),  # ties
        ([0.01, None, None], [0.01, None, None], [0.01, None, None]),  # a family of one, not of three
        ([None, None], [None, None], [None, None]),
        ([], [], []),
    ],
)
def test_corrections_at_the_edges(p_values, by_holm, by_bh):
    assert holm(p_values) == pytest.approx(by_holm)
    assert benjamini_hochberg(p_values) == pytest.approx(by_bh)


@pytest.mark.parametrize("correct", [holm, benjamini_hochberg])
def test_a_p_value_outside_zero_to_one_is_refused(correct):
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        correct([0.01, 1.5])


# --- the decision ------------------------------------------------------------------------------------------------


def _estimate(effect: float) -> Estimate:
    return Estimate(effect=effect, ci_low=effect - 0.01, ci_high=effect + 0.01, n=10, p_value=0.01, test="sign_flip")


@pytest.mark.parametrize(
    ("effect", "adjusted_p", "no_effect", "bn_favoured", "expected"),
    [
        (0.02, 0.01, 0.0, "higher", "holds"),
        (0.02, 0.01, 0.0, "lower", "contradicted"),
        (-0.02, 0.01, 0.0, "higher", "contradicted"),
        (-0.02, 0.01, 0.0, "lower", "holds"),
        (0.02, 0.2, 0.0, "higher", "not shown"),
        (-0.02, 0.2, 0.0, "lower", "not shown"),
        # significant at equality: a valid p-value is <= alpha at most alpha of the time under no effect
        (0.02, 0.05, 0.0, "higher", "holds"),
        (0.02, 0.0500001, 0.0, "higher", "not shown"),
        # ratios: no effect is 1, so a ratio of 0.5 is below it though it is above 0
        (0.5, 0.01, 1.0, "lower", "holds"),
        (0.5, 0.01, 1.0, "higher", "contradicted"),
        (2.0, 0.01, 1.0, "lower", "contradicted"),
        (1.5, 0.3, 1.0, "higher", "not shown"),
    ],
)
def test_the_decision_is_the_adjusted_p_values_significance_and_the_effects_side(
    effect, adjusted_p, no_effect, bn_favoured, expected
):
    assert decide(_estimate(effect), adjusted_p, ALPHA, no_effect, bn_favoured) == expected


def test_without_an_estimate_there_is_no_decision_whatever_the_p_value():
    assert decide(Estimate(0.5, None, None, n=1), 0.001, ALPHA, 0.0, "higher") == "not estimable"


def test_an_estimable_effect_without_its_adjusted_p_value_is_an_error():
    with pytest.raises(ValueError, match="needs its adjusted p-value"):
        decide(_estimate(0.02), None, ALPHA, 0.0, "higher")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
        ({"test": "t"}, "test must be one of"),
        ({"resamples": 0}, "resamples must be >= 1"),
    ],
)
def test_inference_options_are_checked_when_made(options, message):
    with pytest.raises(ValueError, match=message):
        PairedInference(**options)
