"""What a training curve says, measured the same way for every run: the first step reaching a target (at an
evaluation, or interpolated between two), the target a climb defines, the curve's mean, and a percentile drift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from src.analysis.curves import (
    CHANCE,
    PercentileDrift,
    StepsToTarget,
    climb_target,
    first_step_reaching,
    mean_accuracy_over_steps,
    percentile_drift,
    steps_to,
    steps_to_target,
)

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


# --- the climb's target and the interpolated first crossing ------------------------------------------------------


def test_a_climbs_target_is_that_share_of_the_way_from_chance_to_the_lowest_best_accuracy():
    curves = np.array([[0.1, 0.8, 0.9, 0.85], [0.1, 0.5, 0.7, 0.96]])  # best 0.9 and 0.96: every curve reaches 0.9
    assert CHANCE == 0.1
    assert climb_target(curves, 0.5) == pytest.approx(0.1 + 0.5 * (0.9 - 0.1))
    assert climb_target(curves, 1.0) == pytest.approx(0.9)


def test_every_curve_reaches_its_climbs_target():
    rng = np.random.default_rng(0)
    curves = np.sort(rng.uniform(0.1, 0.99, (2, 5, 12)), axis=-1)  # two variants, five seeds each
    for climb in (0.5, 0.95, 1.0):
        assert np.all(curves.max(axis=-1) >= climb_target(curves, climb))


def test_a_climbs_target_does_not_move_with_which_variant_is_faster():
    slow = np.array([[0.1, 0.3, 0.6, 0.9], [0.1, 0.4, 0.7, 0.92]])
    fast = np.array([[0.1, 0.8, 0.9, 0.9], [0.1, 0.85, 0.92, 0.92]])  # the same best accuracies, reached sooner
    assert climb_target(np.concatenate([slow, fast]), 0.9) == climb_target(np.concatenate([slow, slow]), 0.9)


def test_a_climbs_target_ignores_an_evaluation_a_seed_lacks():
    assert climb_target(np.array([[0.1, np.nan, 0.9], [0.1, 0.5, 0.7]]), 1.0) == pytest.approx(0.7)


def test_the_first_crossing_is_interpolated_between_the_evaluation_before_and_the_one_reaching_the_target():
    steps = np.array([0, 100, 300])
    curves = np.array([[0.1, 0.5, 0.9], [0.1, 0.95, 0.97], [0.1, 0.2, 0.3]])
    # 0.7 lies halfway from 0.5 (step 100) to 0.9 (step 300); from 0.1 to 0.95 over 0 to 100: 0.6 / 0.85 of the way
    np.testing.assert_allclose(steps_to(steps, curves, 0.7), [200.0, 100 * 0.6 / 0.85, np.nan])


def test_a_curve_at_the_target_from_its_first_evaluation_reaches_it_there():
    assert steps_to(np.array([0, 10]), np.array([[0.95, 0.97]]), 0.9).tolist() == [0.0]
    assert steps_to(np.array([5, 10]), np.array([[0.95, 0.97]]), 0.95).tolist() == [5.0]


def test_reaching_the_target_exactly_at_an_evaluation_is_that_step():
    assert steps_to(np.array([0, 100, 200]), np.array([[0.1, 0.5, 0.9]]), 0.5).tolist() == [100.0]


def test_an_evaluation_a_seed_lacks_never_reaches_the_target():
    steps = np.array([0, 100, 200, 300])
    np.testing.assert_allclose(steps_to(steps, np.array([[0.1, np.nan, 0.96, 0.97]]), 0.99), [np.nan])
    assert steps_to(steps, np.array([[0.1, np.nan, 0.96, 0.97]]), 0.95)[0] > 100  # found at 200, not at 100


def test_steps_to_keeps_the_leading_shape_of_the_curves():
    curves = np.tile(np.array([0.1, 0.5, 0.9]), (2, 3, 1))  # (variants, seeds, evals)
    assert steps_to(np.array([0, 1, 2]), curves, 0.5).shape == (2, 3)
