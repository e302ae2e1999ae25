"""One spelling of each kind of number, for the report and the terminal alike; a missing number is "n/a"."""

from __future__ import annotations

import math

import pytest

from src import formats, metrics, stats
from src.claims import Claim
from src.formats import FILTERS

MISSING = [None, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", MISSING)
@pytest.mark.parametrize(
    "spell",
    [formats.percent, formats.points, lambda value: formats.number(value, ".3g"),
     lambda value: formats.effect(value, "ratio"), lambda value: formats.effect(value, "plain")],
    ids=["percent", "points", "number", "ratio", "plain"],
)  # fmt: skip
def test_a_missing_number_is_n_a_whatever_its_kind(spell, value):
    assert spell(value).startswith("n/a")


def test_a_percentage_has_no_space_before_its_sign():
    assert formats.percent(0.97234) == "97.23%"
    assert formats.percent(0.97234, 0) == "97%"


def test_an_accuracy_difference_is_in_signed_percentage_points():
    assert formats.points(0.0023) == "+0.23 pp"
    assert formats.points(-0.01) == "-1.00 pp"


def test_negative_zero_has_no_minus_sign():
    assert formats.number(-0.0, ".2f") == "0.00"
    assert formats.number(-0.0, "+.3f") == "+0.000"


def test_steps_are_counted_with_thousands_separators_or_not_reached():
    assert formats.steps(12345.0) == "12,345"
    assert formats.steps(None) == "not reached"


@pytest.mark.parametrize(("target", "key"), [(0.95, "95"), (0.975, "97.5"), (0.99, "99"), (1.0, "100")])
def test_a_target_is_keyed_by_its_percentage(target, key):
    assert formats.target_key(target) == key


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
    assert formats.effect(value, scale) == text


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
    assert formats.interval(estimate, scale) == text


def test_a_mean_accuracy_is_written_with_its_spread_over_seeds():
    assert formats.accuracy_with_sd(metrics.TestAccuracy(mean=0.97234, std=0.0011, ci_low=0.96, ci_high=0.98)) == (
        "97.23% ± 0.11 pp"
    )
    assert formats.accuracy_with_sd(metrics.TestAccuracy(mean=0.97234, std=None, ci_low=None, ci_high=None)) == "97.23%"


def test_an_accuracy_interval_is_shown_within_0_and_1():
    assert formats.accuracy_interval(metrics.TestAccuracy(mean=0.99, std=0.01, ci_low=0.97, ci_high=1.02)) == (
        "[97.00%, 100.00%]"
    )
    assert formats.accuracy_interval(metrics.TestAccuracy(mean=0.01, std=0.01, ci_low=-0.02, ci_high=0.03)) == (
        "[0.00%, 3.00%]"
    )
    assert (
        formats.accuracy_interval(metrics.TestAccuracy(mean=0.97, std=None, ci_low=None, ci_high=None))
        == "n/a (one seed)"
    )


def test_reaching_a_target_is_the_median_step_and_how_many_seeds_got_there():
    assert formats.reach(metrics.StepsTo(median=1800.0, n_reached=5), 5) == "1,800 steps (5/5)"
    assert formats.reach(metrics.StepsTo(median=None, n_reached=0), 3) == "never (0/3)"


def test_the_reports_filters_write_a_claim_as_the_formatters_do():
    claim = Claim("k", "title", "design", "statistic", "ratio", stats.Estimate(0.45, 0.4, 0.5, 3), "lower")
    assert FILTERS["effect"](claim) == formats.effect(0.45, "ratio") == "0.45×"
    assert FILTERS["interval"](claim) == formats.interval(claim.estimate, "ratio") == "[0.40×, 0.50×]"
    assert FILTERS["ci_pp"](stats.Estimate(0.01, 0.0, 0.02, 3)) == "[+0.00 pp, +2.00 pp]"
    assert FILTERS["ci_pp"](stats.Estimate(0.01, None, None, 1)) == "n/a"
    assert FILTERS["pct1"](0.9712) == "97.1%" and FILTERS["num4"](0.031623) == "0.03162"
