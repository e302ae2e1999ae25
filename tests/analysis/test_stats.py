"""Statistics over seeds, checked against scipy and against cases small enough to do by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from src.analysis.stats import (
    Estimate,
    PairedInference,
    benjamini_hochberg,
    decide,
    holm,
    paired_difference_test,
    paired_ratio_test,
    seed_summary,
    seeds_needed,
    two_level_bootstrap,
)

ACCURACIES = [0.971, 0.975, 0.968, 0.980, 0.973]


def test_a_summary_is_the_mean_the_sample_std_and_the_bootstrap_interval_of_the_mean():
    inference = PairedInference(confidence=0.9, resamples=5000, seed=3, interval="BCa")
    summary = seed_summary(ACCURACIES, inference)
    reference = scipy_stats.bootstrap(
        (np.array(ACCURACIES),), np.mean, n_resamples=5000, confidence_level=0.9, rng=np.random.default_rng(3)
    ).confidence_interval
    assert summary.mean == pytest.approx(np.mean(ACCURACIES))
    assert summary.std == pytest.approx(np.std(ACCURACIES, ddof=1))
    assert (summary.ci_low, summary.ci_high) == (reference.low, reference.high)


@pytest.mark.parametrize("interval", ["BCa", "percentile"])
def test_a_summarys_resampled_interval_stays_within_the_values_and_widens_with_the_confidence(interval):
    narrow = seed_summary(ACCURACIES, PairedInference(0.8, interval=interval))
    wide = seed_summary(ACCURACIES, PairedInference(0.99, interval=interval))
    assert min(ACCURACIES) <= wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high <= max(ACCURACIES)


@pytest.mark.parametrize("interval", ["studentized", "t"])
def test_a_summarys_studentized_or_t_interval_is_centred_on_the_mean_and_widens_with_the_confidence(interval):
    narrow = seed_summary(ACCURACIES, PairedInference(0.8, interval=interval))
    wide = seed_summary(ACCURACIES, PairedInference(0.99, interval=interval))
    assert wide.ci_low < narrow.ci_low < narrow.mean < narrow.ci_high < wide.ci_high
    assert narrow.ci_high - narrow.mean == pytest.approx(narrow.mean - narrow.ci_low)


@pytest.mark.parametrize("interval", ["studentized", "t"])
def test_a_summarys_interval_stays_inside_the_bounds_it_is_given(interval):
    accuracies = [1.0, 0.985, 1.0, 1.0, 1.0, 0.975, 1.0, 0.94, 1.0, 1.0]  # mean + q·s/√n passes 100 %
    inference = PairedInference(interval=interval)
    unbounded, bounded = seed_summary(accuracies, inference), seed_summary(accuracies, inference, bounds=(0.0, 1.0))
    assert unbounded.ci_high > 1.0
    assert (bounded.ci_low, bounded.ci_high) == (unbounded.ci_low, 1.0)


@pytest.mark.parametrize("values", [[0.97], [0.97, 0.97, 0.97]], ids=["one seed", "no spread"])
def test_one_seed_or_seeds_that_agree_have_a_mean_but_no_interval(values):
    summary = seed_summary(values, PairedInference())
    assert summary.mean == pytest.approx(0.97)
    assert (summary.ci_low, summary.ci_high) == (None, None)
    assert summary.std is None if len(values) == 1 else summary.std == pytest.approx(0.0, abs=1e-12)


def test_no_values_is_an_error():
    with pytest.raises(ValueError, match="at least one value"):
        seed_summary([], PairedInference())


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
def test_seeds_that_all_give_the_same_grid_ratio_are_the_exact_extreme_not_a_missing_result(inference):
    # three seeds, each a ratio of 10: the logs differ in the last bit only (4e-16), which is rounding, not spread
    bn, vanilla = [31.6, 3.16, 0.316], [3.16, 0.316, 0.0316]
    assert np.ptp(np.log(bn) - np.log(vanilla)) > 0
    estimate = paired_ratio_test(bn, vanilla, inference)
    assert estimate.effect == pytest.approx(10.0)
    assert (estimate.ci_low, estimate.ci_high) == (estimate.effect, estimate.effect)
    assert (estimate.p_value, estimate.n, estimate.interval_method, estimate.spread) == (2 / 2**3, 3, "point", 0.0)
    assert decide(estimate, estimate.p_value, ALPHA, 1.0, "higher") == "not shown"  # 0.25: three seeds cannot decide


@BOTH_TESTS
@pytest.mark.parametrize("seeds", [10, 20])
def test_a_constant_nonzero_difference_has_the_exact_p_of_2_in_2_to_the_n_and_holds(inference, seeds):
    estimate = paired_difference_test([0.013] * seeds, [0.01] * seeds, inference, ACCURACY_DIFFERENCE)
    assert estimate.p_value == 2 / 2**seeds
    assert estimate.estimable and estimate.ci_low == estimate.ci_high == estimate.effect == pytest.approx(0.003)
    assert decide(estimate, estimate.p_value, ALPHA, 0.0, "higher") == "holds"
    assert decide(estimate, estimate.p_value, ALPHA, 0.0, "lower") == "contradicted"


def test_a_constant_nonzero_difference_stays_in_the_holm_family():
    constant = paired_difference_test([1.0] * 10, [0.0] * 10, SIGN_FLIP)
    # it counts in the family: the smallest p is doubled for the two present, and None stays outside
    assert holm([constant.p_value, 0.03, None]) == pytest.approx([2 * 2 / 2**10, 0.03, None])


def test_the_exact_p_of_a_constant_difference_is_the_permutation_tests():
    differences = np.full(10, -0.02)
    reference = scipy_stats.permutation_test((differences,), np.mean, permutation_type="samples").pvalue
    assert paired_difference_test(differences, np.zeros(10), SIGN_FLIP).p_value == pytest.approx(reference)


@BOTH_TESTS
@pytest.mark.parametrize(("bn", "vanilla"), [(ACCURACIES, ACCURACIES), ([0.9], [0.1]), ([0.9, 0.5], [0.9, 0.5])])
def test_pairs_that_never_differ_or_a_single_pair_are_not_estimable(inference, bn, vanilla):
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
    t_interval = scipy_stats.ttest_rel(bn, vanilla).confidence_interval(confidence)
    assert t_interval.high > 1  # the paired t-interval leaves the range
    for interval in ("BCa", "percentile"):  # resampled means: within the differences themselves
        options = PairedInference(confidence=confidence, test=inference.test, interval=interval)
        estimate = paired_difference_test(bn, vanilla, options, ACCURACY_DIFFERENCE)
        differences = np.subtract(bn, vanilla)
        assert -1 <= differences.min() <= estimate.ci_low < estimate.ci_high <= differences.max() <= 1
    for interval in ("studentized", "t"):  # mean ± a multiple of its standard error: clipped to the possible range
        options = PairedInference(confidence=confidence, test=inference.test, interval=interval)
        estimate = paired_difference_test(bn, vanilla, options, ACCURACY_DIFFERENCE)
        assert -1 <= estimate.ci_low < estimate.effect < estimate.ci_high <= 1


def test_an_interval_end_is_never_a_rounding_error_past_the_data():
    # a resample of three 0.1s (drawn 30 % of the time) has the float mean 0.10000000000000002, past the data
    assert np.mean([0.1, 0.1, 0.1]) > 0.1
    bca = PairedInference(interval="BCa")
    estimate = paired_difference_test([0.1, 0.1, 0.05], [0.0] * 3, bca, (0.0, 0.1))
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
    inference = PairedInference(confidence=0.9, resamples=5000, seed=7, interval="BCa")
    estimate = paired_difference_test(bn, vanilla, inference)
    reference = scipy_stats.bootstrap(
        (bn - vanilla,), np.mean, n_resamples=5000, confidence_level=0.9, rng=np.random.default_rng(7)
    ).confidence_interval
    assert (estimate.ci_low, estimate.ci_high, estimate.interval_method) == (reference.low, reference.high, "BCa")


def test_the_t_interval_is_scipys_paired_t_interval():
    bn, vanilla = _seeds_with_a_gain(gain=0.002)
    estimate = paired_difference_test(bn, vanilla, PairedInference(interval="t"), ACCURACY_DIFFERENCE)
    reference = scipy_stats.ttest_rel(bn, vanilla).confidence_interval(0.95)
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx((reference.low, reference.high))
    assert estimate.interval_method == "t"


def test_the_studentized_interval_is_the_mean_plus_minus_the_resampled_abs_t_quantile_times_its_standard_error():
    values = np.array([0.3, -0.1, 0.4, 0.2, 0.0, 0.5, 0.1, 0.25])
    rng = np.random.default_rng(5)
    resampled = values[rng.integers(8, size=(999, 8))]
    t = np.abs(resampled.mean(1) - values.mean()) / (resampled.std(1, ddof=1) / math.sqrt(8))
    half_width = np.sort(t)[math.ceil(0.95 * 999) - 1] * values.std(ddof=1) / math.sqrt(8)
    estimate = paired_difference_test(values, np.zeros(8), PairedInference(resamples=999, seed=5))
    assert estimate.interval_method == "studentized"
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx(
        (values.mean() - half_width, values.mean() + half_width)
    )


def test_where_too_many_resamples_repeat_one_value_the_studentized_interval_falls_back_to_the_percentile():
    # (3/4)^4 = 32 % of resamples are four 0s, with no standard error and a mean off the sample's: an infinite |t|,
    # so the 95 % quantile is infinite too; the percentile interval of the same resamples is defined
    values = [0.0, 0.0, 0.0, 1.0]
    estimate = paired_difference_test(values, [0.0] * 4, PairedInference(resamples=999), (-1.0, 1.0))
    percentile = paired_difference_test(values, [0.0] * 4, PairedInference(resamples=999, interval="percentile"))
    assert estimate.interval_method == "percentile"
    assert (estimate.ci_low, estimate.ci_high) == (percentile.ci_low, percentile.ci_high)
    assert 0.0 <= estimate.ci_low < estimate.ci_high <= 1.0


def test_where_bca_is_undefined_the_percentile_interval_of_the_same_resamples_is_used():
    # with two resamples, both above the observed mean (bootstrap seed 4), BCa's bias correction is infinite
    bca = PairedInference(resamples=2, seed=4, interval="BCa")
    estimate = paired_difference_test([0.0, 0.0, 0.0, 1.0], [0.0] * 4, bca)
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
    seeds_alone = paired_difference_test(differences.mean(axis=1), [0.0] * 5, SIGN_FLIP)
    assert seeds_alone.ci_low == seeds_alone.ci_high == pytest.approx(0.4)  # no width: the test set is held fixed
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


# --- how many seeds would decide it ------------------------------------------------------------------------------


def _spread(effect: float, spread: float | None) -> Estimate:
    return Estimate(effect, effect - 0.1, effect + 0.1, n=5, p_value=0.3, test="sign_flip", spread=spread)


def test_seeds_needed_is_the_normal_approximation_of_a_two_sided_test_with_80_percent_power():
    # z = 1.960 + 0.842 = 2.802; (2.802 · 0.02 / 0.01)^2 = 31.4, rounded up
    assert seeds_needed(_spread(0.01, 0.02), alpha=0.05) == 32
    assert seeds_needed(_spread(-0.01, 0.02), alpha=0.05) == 32  # either side
    assert seeds_needed(_spread(0.005, 0.02), alpha=0.05) == math.ceil(4 * 2.8016**2 * 4)  # half the effect: 4×


def test_seeds_needed_is_never_fewer_than_an_exact_sign_flip_test_needs_to_reach_alpha_at_all():
    alpha = 0.05 / 8  # a family of eight, Bonferroni's first step
    needed = seeds_needed(_spread(1.0, 1e-6), alpha)
    assert needed == 9 and 2 / 2**needed <= alpha < 2 / 2 ** (needed - 1)


def test_seeds_needed_for_a_ratio_reads_its_effect_on_the_log_scale_of_its_spread():
    # a ratio of 0.8 is −0.223 on the log scale; with a log-scale spread of 0.3: (2.802 · 0.3 / 0.223)^2 = 14.2
    assert seeds_needed(_spread(0.8, 0.3), alpha=0.05, log_scale=True) == 15


@pytest.mark.parametrize(
    ("effect", "spread", "log_scale"),
    [(0.01, None, False), (0.01, 0.0, False), (0.0, 0.02, False), (1.0, 0.02, True), (math.nan, 0.02, False)],
    ids=["no spread", "zero spread", "no effect", "ratio of one", "no effect at all"],
)
def test_without_a_spread_or_an_effect_no_number_of_seeds_is_given(effect, spread, log_scale):
    assert seeds_needed(_spread(effect, spread), alpha=0.05, log_scale=log_scale) is None
