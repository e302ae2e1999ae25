"""One spelling of each kind of number, for the report and the terminal alike; a missing number is "n/a"."""

from __future__ import annotations

import math
from typing import get_args

import pytest

from src.analysis import stats
from src.analysis.claims import TOPICS, Claim
from src.analysis.specifications import Specification
from src.config import EvaluateConfig
from src.metrics import number_format, schema
from src.metrics.number_format import FILTERS

MISSING = [None, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", MISSING)
@pytest.mark.parametrize(
    "spell",
    [
        number_format.percent,
        number_format.points,
        lambda value: number_format.number(value, ".3g"),
        lambda value: number_format.effect(value, "ratio"),
        lambda value: number_format.effect(value, "plain"),
    ],
    ids=["percent", "points", "number", "ratio", "plain"],
)
def test_a_missing_number_is_n_a_whatever_its_kind(spell, value):
    assert spell(value).startswith("n/a")


def test_a_percentage_has_no_space_before_its_sign():
    assert number_format.percent(0.97234) == "97.23%"
    assert number_format.percent(0.97234, 0) == "97%"


def test_an_accuracy_difference_is_in_signed_percentage_points():
    assert number_format.points(0.0023) == "+0.23 pp"
    assert number_format.points(-0.01) == "-1.00 pp"


def test_negative_zero_has_no_minus_sign():
    assert number_format.number(-0.0, ".2f") == "0.00"
    assert number_format.number(-0.0, "+.3f") == "+0.000"


def test_steps_are_counted_with_thousands_separators_or_not_reached():
    assert number_format.steps(12345.0) == "12,345"
    assert number_format.steps(None) == "not reached"


@pytest.mark.parametrize(("target", "key"), [(0.95, "95"), (0.975, "97.5"), (0.99, "99"), (1.0, "100")])
def test_a_target_is_keyed_by_its_percentage(target, key):
    assert number_format.target_key(target) == key


@pytest.mark.parametrize(
    ("value", "scale", "text"),
    [
        (0.7455, "ratio", "0.75×"),
        (0.0023, "accuracy", "+0.23 pp"),
        (0.072, "plain", "+0.072"),
        (-0.5, "plain", "-0.500"),
    ],
)
def test_an_effect_is_written_on_its_claims_scale(value, scale, text):
    assert number_format.effect(value, scale) == text


@pytest.mark.parametrize(
    ("estimate", "scale", "text"),
    [
        (stats.Estimate(0.01, 0.005, 0.015, 3), "accuracy", "[+0.50 pp, +1.50 pp]"),
        (stats.Estimate(-0.2, -0.25, -0.15, 3), "plain", "[-0.250, -0.150]"),
        (stats.Estimate(0.5, 0.4, 0.6, 3), "ratio", "[0.40×, 0.60×]"),
        (stats.Estimate(2.0, None, None, 0), "ratio", "n/a (0 pairs)"),
        (stats.Estimate(0.9, None, None, 1), "accuracy", "n/a (1 pair)"),
    ],
)
def test_an_interval_is_written_on_its_scale_or_says_how_few_pairs_it_lacks(estimate, scale, text):
    assert number_format.interval(estimate, scale) == text


def test_a_mean_accuracy_is_written_with_its_spread_over_seeds():
    assert number_format.accuracy_with_sd(schema.TestAccuracy(mean=0.97234, std=0.0011, ci_low=0.96, ci_high=0.98)) == (
        "97.23% ± 0.11 pp"
    )
    assert (
        number_format.accuracy_with_sd(schema.TestAccuracy(mean=0.97234, std=None, ci_low=None, ci_high=None))
        == "97.23%"
    )


def test_an_accuracy_interval_is_shown_within_0_and_1():
    assert number_format.accuracy_interval(schema.TestAccuracy(mean=0.99, std=0.01, ci_low=0.97, ci_high=1.02)) == (
        "[97.00%, 100.00%]"
    )
    assert number_format.accuracy_interval(schema.TestAccuracy(mean=0.01, std=0.01, ci_low=-0.02, ci_high=0.03)) == (
        "[0.00%, 3.00%]"
    )
    assert (
        number_format.accuracy_interval(schema.TestAccuracy(mean=0.97, std=None, ci_low=None, ci_high=None))
        == "n/a (one seed)"
    )


def test_reaching_a_target_is_the_median_step_and_how_many_seeds_got_there():
    assert number_format.reach(schema.StepsTo(median=1800.0, n_reached=5), 5) == "1,800 steps (5/5)"
    assert number_format.reach(schema.StepsTo(median=None, n_reached=0), 3) == "never (0/3)"


def test_the_reports_filters_write_a_claim_as_the_formatters_do():
    estimate = stats.Estimate(0.45, 0.4, 0.5, 3)
    spec = Specification("faster_convergence", "tuned", None, "95 % of the climb", estimate, primary=True)
    claim = Claim(TOPICS["faster_convergence"], spec, 0.01, "holds", [spec], alpha=0.05, family=8)
    assert FILTERS["effect"](claim) == number_format.effect(0.45, "ratio") == "0.45×"
    assert FILTERS["interval"](claim) == number_format.interval(claim.estimate, "ratio") == "[0.40×, 0.50×]"
    assert FILTERS["effect_on"](estimate, "plain") == "+0.450"
    assert FILTERS["interval_on"](estimate, "accuracy") == "[+40.00 pp, +50.00 pp]"
    assert FILTERS["ci_pp"](stats.Estimate(0.01, 0.0, 0.02, 3)) == "[+0.00 pp, +2.00 pp]"
    assert FILTERS["ci_pp"](stats.Estimate(0.01, None, None, 1)) == "n/a"
    assert FILTERS["pct1"](0.9712) == "97.1%" and FILTERS["num4"](0.031623) == "0.03162"
    assert FILTERS["p"](0.001953125) == "0.002" and FILTERS["pct_any"](0.001) == "0.1%"


@pytest.mark.parametrize(("value", "text"), [(0.001953125, "0.002"), (0.0216, "0.022"), (1.0, "1"), (None, "n/a")])
def test_a_p_value_has_two_significant_digits(value, text):
    assert number_format.p_value(value) == text


@pytest.mark.parametrize(("value", "text"), [(0.01, "1%"), (0.001, "0.1%"), (0.5, "50%"), (1.0, "100%"), (None, "n/a")])
def test_a_share_has_as_many_digits_as_it_needs(value, text):
    assert number_format.share(value) == text


@pytest.mark.parametrize(
    ("estimate", "text"),
    [
        (
            stats.Estimate(0.1, 0.05, 0.2, 10, 0.002, "sign_flip", "BCa"),
            "exact sign-flip permutation test of the mean over 10 paired seeds; BCa bootstrap interval",
        ),
        (
            stats.Estimate(0.1, 0.05, 0.2, 8, 0.01, "signed_rank", "percentile"),
            "exact Wilcoxon signed-rank test (all sign flips) over 8 paired seeds; percentile bootstrap interval",
        ),
        (
            stats.Estimate(0.1, 0.05, 0.2, 10, 0.002, "two_level_bootstrap", "percentile"),
            "two-level bootstrap over 10 paired seeds and the test images; percentile bootstrap interval",
        ),
        (
            stats.Estimate(0.02, 0.02, 0.02, 10, 2 / 2**10, "sign_flip", "point", 0.0),
            "exact sign-flip permutation test of the mean over 10 paired seeds; every pair differs alike: the interval"
            " is that point",
        ),
        (
            stats.Estimate(0.1, None, None, 10, test="sign_flip"),
            "exact sign-flip permutation test of the mean over 10 paired seeds",
        ),
        (stats.Estimate(math.nan, None, None, 0), "not estimable over 0 paired seeds"),
    ],
)
def test_a_test_is_named_in_words_with_its_pairs_and_its_interval(estimate, text):
    assert number_format.test_text(estimate) == text


def test_every_correction_and_test_params_can_name_has_words():
    corrections = get_args(EvaluateConfig.model_fields["correction"].annotation)
    assert set(number_format.CORRECTIONS) == set(corrections) == {"holm", "bh"}
    assert number_format.CORRECTIONS == {"holm": "Holm", "bh": "Benjamini–Hochberg"}
    assert set(get_args(stats.PairedTest)) | {"two_level_bootstrap"} == set(number_format.TESTS)
    assert set(get_args(stats.IntervalMethod)) | {"point"} == set(number_format.INTERVALS)
