"""The five claims decided on synthetic outcomes whose effect is known in advance: an effect in BN's favour holds
(and is estimated close to its true size), a null effect is not shown, an effect against BN is contradicted. Then the
sweep's map, cell by cell, and the horizon check of each tuned rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from src import stats
from src.claims import (
    Claim,
    MapCell,
    all_claims,
    faster_convergence,
    higher_accuracy,
    higher_usable_learning_rate,
    horizon_check,
    robust_to_initialisation,
    robustness_map,
    stable_sigmoid_inputs,
)
from src.outcomes import TunedOutcome
from src.results import SweepResults
from tests import synthetic_results

CONFIDENCE = 0.95
SEEDS = [0, 1, 2, 3, 4, 5]
STEPS = np.arange(0, 2010, 10)  # an evaluation every 10 steps; the horizon is step 2000
TARGET = 0.95
LEARNING_RATES = 0.01 * 2.0 ** np.arange(8)  # 0.01 … 1.28, doubling
INIT_STDS = np.array([0.01, 0.1, 1.0])
INIT_STD = 0.1  # the row the usable-rate claim reads
USABLE = 0.9
# some seeds are easier than others for both variants alike: the pairing must see through this shared spread
SEED_EFFECT = np.random.default_rng(0).normal(0.0, 0.005, len(SEEDS))


def noise(rng_seed: int, scale: float, shape: tuple[int, ...] = (len(SEEDS),)) -> np.ndarray:
    return np.random.default_rng(rng_seed).normal(0.0, scale, shape)


def curve_reaching(at: int | None) -> np.ndarray:
    """Test accuracy 0.5 until step `at`, 0.99 from then on (0.5 throughout if `at` is None)."""
    reached = np.zeros(STEPS.shape, dtype=bool) if at is None else np.greater_equal(STEPS, at)
    return np.where(reached, 0.99, 0.5)


def reaches_around(step: int, rng_seed: int) -> list[int]:
    """Steps scattered log-normally around `step` (about ±20 %), on the evaluation grid."""
    return np.round(step * np.exp(noise(rng_seed, 0.2)), -1).astype(int).tolist()


def trained(
    reach_at: list[int | None] | None = None, final_accuracy: np.ndarray | None = None, drift: np.ndarray | None = None
) -> TunedOutcome:
    """One variant's train@ outcome; seed s first reaches TARGET at step reach_at[s] (None: it never does), its
    saved model scores final_accuracy[s] and its tracked sigmoid's input drifts by drift[s]."""
    reach_at = reach_at or [1000] * len(SEEDS)
    return synthetic_results.outcome(
        STEPS,
        accuracy=np.array([curve_reaching(at) for at in reach_at]),
        final_accuracy=np.full(len(SEEDS), 0.97) if final_accuracy is None else final_accuracy,
        drift=np.full(len(SEEDS), 0.2) if drift is None else drift,
        seeds=SEEDS,
    )


def swept(final_accuracy: np.ndarray) -> SweepResults:
    """One variant's sweep with the given (seeds, init stds, rates) final accuracies; no curves."""
    return synthetic_results.swept(final_accuracy, LEARNING_RATES, INIT_STDS)


def trains_up_to(largest: list[int]) -> SweepResults:
    """Seed s trains at INIT_STD up to rate index largest[s] and fails above it; no other init std trains at all,
    so a claim that read the wrong row would find nothing."""
    final = np.full((len(SEEDS), len(INIT_STDS), len(LEARNING_RATES)), 0.1)
    for seed, top in enumerate(largest):
        final[seed, 1, : top + 1] = 0.97
    return swept(final)


def accuracy_by_init(penalty: list[float], rng_seed: int) -> SweepResults:
    """Final accuracy 0.97 − penalty[init std] at every rate, plus the shared seed effect and a little noise."""
    shape = (len(SEEDS), len(INIT_STDS), len(LEARNING_RATES))
    final = 0.97 - np.array(penalty)[None, :, None] + SEED_EFFECT[:, None, None] + noise(rng_seed, 0.002, shape)
    return swept(final)


def final_accuracy(offset: float, rng_seed: int) -> np.ndarray:
    return 0.97 + offset + SEED_EFFECT + noise(rng_seed, 0.001)


def drifts(level: float, rng_seed: int) -> np.ndarray:
    return level + noise(rng_seed, 0.02)  # a relative drift is never below 0


# --- faster convergence: steps to the target, BN / vanilla -------------------------------------------------------

VANILLA_REACHES = [1000, 1200, 800, 1000, 1400, 1100]
HALF_AS_MANY = [500, 620, 390, 480, 710, 560]  # each within a few per cent of half vanilla's


def test_bn_reaching_the_target_in_half_the_steps_holds():
    claim = faster_convergence(trained(VANILLA_REACHES), trained(HALF_AS_MANY), TARGET, CONFIDENCE)
    assert claim.verdict == "holds"
    assert claim.scale == "ratio"
    assert claim.estimate.effect == pytest.approx(0.5, rel=0.03)
    assert claim.estimate.effect == pytest.approx(stats.paired_ratio(HALF_AS_MANY, VANILLA_REACHES, CONFIDENCE).effect)
    assert claim.estimate.n == len(SEEDS)
    assert claim.note == ""


@pytest.mark.parametrize(
    ("vanilla_reaches", "bn_reaches"),
    [
        pytest.param(VANILLA_REACHES, VANILLA_REACHES, id="identical"),
        pytest.param(VANILLA_REACHES, [1100, 1000, 1400, 800, 1200, 1000], id="same-steps-other-seeds"),
        *[
            pytest.param(reaches_around(1000, s), reaches_around(1000, s + 10), id=f"independent-{s}")
            for s in (1, 2, 3)
        ],
    ],
)
def test_bn_converging_like_vanilla_is_not_shown(vanilla_reaches, bn_reaches):
    claim = faster_convergence(trained(vanilla_reaches), trained(bn_reaches), TARGET, CONFIDENCE)
    assert claim.verdict == "not shown"
    assert claim.estimate.ci_low <= 1 <= claim.estimate.ci_high


def test_bn_needing_twice_the_steps_is_contradicted():
    claim = faster_convergence(trained(HALF_AS_MANY), trained(VANILLA_REACHES), TARGET, CONFIDENCE)
    assert claim.verdict == "contradicted"
    assert claim.estimate.effect == pytest.approx(2.0, rel=0.03)


def test_a_seed_that_never_reaches_the_target_counts_at_the_horizon_and_is_noted():
    never = [*VANILLA_REACHES[:5], None]
    claim = faster_convergence(trained(never), trained(HALF_AS_MANY), TARGET, CONFIDENCE)
    at_horizon = [*VANILLA_REACHES[:5], int(STEPS[-1])]
    assert claim.estimate == stats.paired_ratio(HALF_AS_MANY, at_horizon, CONFIDENCE)
    assert claim.estimate.n == len(SEEDS)  # counted, not dropped
    assert claim.note.startswith(f"vanilla seed {SEEDS[-1]} never reached 95%")


def test_a_seed_reaching_the_target_at_the_last_evaluation_is_not_noted_as_never():
    at_end = [*VANILLA_REACHES[:5], int(STEPS[-1])]
    claim = faster_convergence(trained(at_end), trained(HALF_AS_MANY), TARGET, CONFIDENCE)
    assert claim.note == ""


def test_a_seed_at_the_target_from_the_start_counts_as_one_step():
    at_start = [0, *HALF_AS_MANY[1:]]
    claim = faster_convergence(trained(VANILLA_REACHES), trained(at_start), TARGET, CONFIDENCE)
    assert claim.estimate == stats.paired_ratio([1, *HALF_AS_MANY[1:]], VANILLA_REACHES, CONFIDENCE)


# --- higher accuracy: final test accuracy, BN − vanilla ----------------------------------------------------------


def test_bn_one_point_more_accurate_holds():
    vanilla, bn = final_accuracy(0.0, rng_seed=1), final_accuracy(0.01, rng_seed=2)
    claim = higher_accuracy(trained(final_accuracy=vanilla), trained(final_accuracy=bn), CONFIDENCE)
    assert claim.verdict == "holds"
    assert claim.scale == "accuracy"
    assert claim.estimate.effect == pytest.approx(0.01, abs=0.002)
    assert claim.estimate == stats.paired_difference(bn, vanilla, CONFIDENCE)


@pytest.mark.parametrize("rng_seeds", [(1, 1), (1, 2), (3, 4), (5, 6)])  # identical, then independent noise
def test_bn_as_accurate_as_vanilla_is_not_shown(rng_seeds):
    vanilla, bn = final_accuracy(0.0, rng_seeds[0]), final_accuracy(0.0, rng_seeds[1])
    claim = higher_accuracy(trained(final_accuracy=vanilla), trained(final_accuracy=bn), CONFIDENCE)
    assert claim.verdict == "not shown"
    assert claim.estimate.effect == pytest.approx(0.0, abs=0.002)


def test_bn_one_point_less_accurate_is_contradicted():
    vanilla, bn = final_accuracy(0.0, rng_seed=1), final_accuracy(-0.01, rng_seed=2)
    claim = higher_accuracy(trained(final_accuracy=vanilla), trained(final_accuracy=bn), CONFIDENCE)
    assert claim.verdict == "contradicted"
    assert claim.estimate.effect == pytest.approx(-0.01, abs=0.002)


# --- stable sigmoid inputs: relative drift, BN − vanilla (lower is BN's side) ------------------------------------


def test_bn_drifting_less_holds():
    vanilla, bn = drifts(0.6, rng_seed=1), drifts(0.1, rng_seed=2)
    claim = stable_sigmoid_inputs(trained(drift=vanilla), trained(drift=bn), CONFIDENCE)
    assert claim.verdict == "holds"
    assert claim.scale == "plain"
    assert claim.estimate.effect == pytest.approx(-0.5, abs=0.05)
    assert claim.note == ""


@pytest.mark.parametrize("rng_seeds", [(1, 1), (1, 2), (3, 4), (5, 6)])  # identical, then independent noise
def test_bn_drifting_as_much_as_vanilla_is_not_shown(rng_seeds):
    vanilla, bn = drifts(0.4, rng_seeds[0]), drifts(0.4, rng_seeds[1])
    claim = stable_sigmoid_inputs(trained(drift=vanilla), trained(drift=bn), CONFIDENCE)
    assert claim.verdict == "not shown"


def test_bn_drifting_more_is_contradicted():
    vanilla, bn = drifts(0.1, rng_seed=1), drifts(0.6, rng_seed=2)
    claim = stable_sigmoid_inputs(trained(drift=vanilla), trained(drift=bn), CONFIDENCE)
    assert claim.verdict == "contradicted"
    assert claim.estimate.effect == pytest.approx(0.5, abs=0.05)


def test_seeds_without_a_finite_drift_are_left_out_and_noted():
    vanilla_drift, bn_drift = drifts(0.6, rng_seed=1), drifts(0.1, rng_seed=2)
    bn_drift[1], vanilla_drift[4] = math.inf, math.nan
    vanilla, bn = trained(drift=vanilla_drift), trained(drift=bn_drift)
    claim = stable_sigmoid_inputs(vanilla, bn, CONFIDENCE)
    kept = [0, 2, 3, 5]
    assert bn.drift[kept] == pytest.approx(bn_drift[kept]) and vanilla.drift[kept] == pytest.approx(vanilla_drift[kept])
    assert claim.estimate == stats.paired_difference(bn.drift[kept], vanilla.drift[kept], CONFIDENCE)
    assert claim.estimate.n == 4
    assert claim.verdict == "holds"
    assert "2 seed(s) left out" in claim.note


def test_with_no_finite_drift_at_all_nothing_is_shown():
    claim = stable_sigmoid_inputs(trained(drift=np.full(6, math.inf)), trained(drift=drifts(0.1, 2)), CONFIDENCE)
    assert claim.verdict == "not shown"
    assert claim.estimate.n == 0
    assert "6 seed(s) left out" in claim.note


# --- higher usable learning rate: the largest rate that trains, BN / vanilla ---------------------------------------

VANILLA_TOPS = [2, 3, 2, 2, 3, 2]  # rate indices: 0.04 or 0.08
BN_TOPS = [4, 6, 4, 5, 6, 4]  # 2, 3, 2, 3, 3, 2 doublings higher


def _usable_rate_claim(vanilla_tops: list[int], bn_tops: list[int]) -> Claim:
    return higher_usable_learning_rate(trains_up_to(vanilla_tops), trains_up_to(bn_tops), INIT_STD, USABLE, CONFIDENCE)


def test_bn_training_at_rates_four_to_eight_times_higher_holds():
    claim = _usable_rate_claim(VANILLA_TOPS, BN_TOPS)
    assert claim.verdict == "holds"
    assert claim.scale == "ratio"
    assert claim.estimate.effect == pytest.approx(2**2.5)  # the geometric mean of 4, 8, 4, 8, 8, 4
    assert claim.note == ""


@pytest.mark.parametrize("bn_tops", [VANILLA_TOPS, [3, 2, 2, 3, 2, 2]])  # identical; the same, other seeds
def test_bn_training_at_the_same_rates_is_not_shown(bn_tops):
    claim = _usable_rate_claim(VANILLA_TOPS, bn_tops)
    assert claim.verdict == "not shown"
    assert claim.estimate.ci_low <= 1 <= claim.estimate.ci_high


def test_bn_training_only_at_lower_rates_is_contradicted():
    claim = _usable_rate_claim(BN_TOPS, VANILLA_TOPS)
    assert claim.verdict == "contradicted"
    assert claim.estimate.effect == pytest.approx(2**-2.5)


def test_bn_training_at_the_largest_swept_rate_is_noted_as_a_lower_bound():
    top = len(LEARNING_RATES) - 1
    claim = _usable_rate_claim(VANILLA_TOPS, [4, top, 4, 5, top, 4])
    assert claim.verdict == "holds"
    assert "largest rate swept in 2 of 6 seeds" in claim.note
    assert "lower bound" in claim.note


# --- robust to initialisation: accuracy under the worst init std, BN − vanilla -------------------------------------


def test_bn_barely_hurt_by_a_bad_init_holds():
    vanilla, bn = accuracy_by_init([0.3, 0.0, 0.1], rng_seed=1), accuracy_by_init([0.02, 0.0, 0.01], rng_seed=2)
    claim = robust_to_initialisation(vanilla, bn, CONFIDENCE)
    assert claim.verdict == "holds"
    assert claim.scale == "accuracy"
    assert claim.estimate.effect == pytest.approx(0.28, abs=0.005)


@pytest.mark.parametrize("rng_seeds", [(1, 1), (1, 2), (3, 4), (5, 6)])  # identical, then independent noise
def test_bn_hurt_by_a_bad_init_as_much_as_vanilla_is_not_shown(rng_seeds):
    penalty = [0.3, 0.0, 0.1]
    vanilla, bn = accuracy_by_init(penalty, rng_seeds[0]), accuracy_by_init(penalty, rng_seeds[1])
    claim = robust_to_initialisation(vanilla, bn, CONFIDENCE)
    assert claim.verdict == "not shown"


def test_bn_hurt_more_by_a_bad_init_is_contradicted():
    vanilla, bn = accuracy_by_init([0.02, 0.0, 0.01], rng_seed=1), accuracy_by_init([0.3, 0.0, 0.1], rng_seed=2)
    claim = robust_to_initialisation(vanilla, bn, CONFIDENCE)
    assert claim.verdict == "contradicted"
    assert claim.estimate.effect == pytest.approx(-0.28, abs=0.005)


# --- the claims together ------------------------------------------------------------------------------------------


def test_all_claims_are_the_five_in_report_order_each_decided_on_its_own_inputs():
    vanilla_trained = trained(VANILLA_REACHES, final_accuracy(0.0, 1), drifts(0.6, 1))
    bn_trained = trained(HALF_AS_MANY, final_accuracy(0.01, 2), drifts(0.1, 2))
    vanilla_swept, bn_swept = trains_up_to(VANILLA_TOPS), trains_up_to(BN_TOPS)
    claims = all_claims(
        {"vanilla": vanilla_trained, "bn": bn_trained},
        {"vanilla": vanilla_swept, "bn": bn_swept},
        convergence_target=TARGET,
        usable_accuracy=USABLE,
        init_std=INIT_STD,
        confidence=CONFIDENCE,
    )
    assert [claim.key for claim in claims] == [
        "faster_convergence",
        "higher_accuracy",
        "higher_usable_lr",
        "stable_sigmoid_inputs",
        "robust_to_init",
    ]
    assert claims[0] == faster_convergence(vanilla_trained, bn_trained, TARGET, CONFIDENCE)
    assert claims[2] == higher_usable_learning_rate(vanilla_swept, bn_swept, INIT_STD, USABLE, CONFIDENCE)
    assert [claim.verdict for claim in claims] == ["holds"] * 4 + ["not shown"]  # neither sweep trains at a bad init


# --- the robustness map: every cell of the sweep, paired by seed --------------------------------------------------

MAP_RATES = [0.1, 1.0, 10.0]
MAP_INITS = [0.01, 0.1]


def test_each_map_cell_carries_both_means_and_the_paired_difference():
    rng = np.random.default_rng(0)
    # seeds differ a lot (easy and hard seeds, shared by both variants); BN gains 0.01 × (cell number)
    vanilla = 0.9 + rng.normal(0, 0.03, (4, 1, 1)) + rng.normal(0, 0.001, (4, 2, 3))
    gain = 0.01 * np.arange(1, 7).reshape(1, 2, 3)
    bn = vanilla + gain + rng.normal(0, 0.001, (4, 2, 3))
    cells = robustness_map(
        synthetic_results.swept(vanilla, MAP_RATES, MAP_INITS), synthetic_results.swept(bn, MAP_RATES, MAP_INITS),
        CONFIDENCE,
    )  # fmt: skip
    assert [(cell.init_std, cell.learning_rate) for cell in cells] == [(i, r) for i in MAP_INITS for r in MAP_RATES]
    for cell, (i, j) in zip(cells, [(i, j) for i in range(2) for j in range(3)], strict=True):
        assert cell.vanilla == pytest.approx(vanilla[:, i, j].mean())
        assert cell.bn == pytest.approx(bn[:, i, j].mean())
        assert cell.difference == stats.paired_difference(bn[:, i, j], vanilla[:, i, j], CONFIDENCE)
        assert cell.difference.effect == pytest.approx(gain[0, i, j], abs=0.002)
        assert cell.side == "above"  # paired, the seed-to-seed spread of 0.03 does not hide a 0.01 gain


@pytest.mark.parametrize(
    ("low", "high", "side"),
    [(0.01, 0.02, "above"), (-0.02, -0.01, "below"), (-0.01, 0.01, None), (0.0, 0.02, None), (None, None, None)],
    ids=["above", "below", "across", "touching", "no-interval"],
)
def test_a_map_cell_is_on_a_side_only_when_its_interval_excludes_no_difference(low, high, side):
    cell = MapCell(0.1, 1.0, 0.9, 0.9, stats.Estimate(0.01, low, high, 3))
    assert cell.side == side


# --- the horizon check: is the tuned rate still the best after the sweep's longer training? ----------------------

HORIZON_RATES = [0.01, 0.1, 1.0, 10.0]
AT_0_1 = 1  # the row of init std 0.1 in MAP_INITS


def horizon_sweep(at_init_0_1: list[list[float]]) -> SweepResults:
    """Final accuracies (seeds, rates) at init std 0.1; at init std 0.01 the best rate would be 10."""
    at_init = np.asarray(at_init_0_1)
    other = np.tile([0.1, 0.2, 0.3, 0.99], (at_init.shape[0], 1))
    return synthetic_results.swept(np.stack([other, at_init], axis=1), HORIZON_RATES, MAP_INITS)


CLEARLY_BEST_AT_0_1 = [
    [0.90, 0.990, 0.950, 0.1],
    [0.85, 0.970, 0.930, 0.1],
    [0.88, 0.985, 0.944, 0.1],
    [0.91, 0.992, 0.953, 0.1],
]


@pytest.mark.parametrize(
    ("tuned_lr", "nearest"),
    [(0.25, 0.1), (0.35, 1.0), (0.4, 1.0), (0.001, 0.01), (50.0, 10.0), (1.0, 1.0)],
)
def test_the_nearest_swept_rate_is_nearest_on_a_log_scale(tuned_lr, nearest):
    # 0.35 and 0.4 are nearer 0.1 than 1.0 on a linear scale, nearer 1.0 on a log scale (the midpoint is 0.316)
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1), tuned_lr, AT_0_1, CONFIDENCE)
    assert (check.tuned_lr, check.nearest_swept_lr) == (tuned_lr, nearest)


def test_a_clearly_better_swept_rate_is_not_within_seed_noise():
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1), 0.4, AT_0_1, CONFIDENCE)
    at_init = np.asarray(CLEARLY_BEST_AT_0_1)
    assert (check.nearest_swept_lr, check.best_swept_lr) == (1.0, 0.1)
    assert check.shortfall == stats.paired_difference(at_init[:, 1], at_init[:, 2], CONFIDENCE)
    assert check.shortfall.ci_low > 0
    assert not check.within_seed_noise


def test_a_best_rate_better_only_within_seed_noise_is_within_seed_noise():
    at_init = [  # 0.1 has the higher mean (0.9540 against 0.95125), but the per-seed differences change sign
        [0.90, 0.958, 0.950, 0.1],
        [0.90, 0.952, 0.960, 0.1],
        [0.90, 0.949, 0.940, 0.1],
        [0.90, 0.957, 0.955, 0.1],
    ]
    check = horizon_check(horizon_sweep(at_init), 0.4, AT_0_1, CONFIDENCE)
    assert (check.nearest_swept_lr, check.best_swept_lr) == (1.0, 0.1)
    assert check.shortfall.effect == pytest.approx(0.00275)
    assert check.shortfall.ci_low < 0 < check.shortfall.ci_high
    assert check.within_seed_noise


def test_a_tuned_rate_nearest_the_best_has_no_shortfall():
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1), 0.12, AT_0_1, CONFIDENCE)
    assert check.nearest_swept_lr == check.best_swept_lr == 0.1
    assert (check.shortfall.effect, check.shortfall.ci_low, check.shortfall.ci_high) == (0.0, 0.0, 0.0)
    assert check.within_seed_noise


def test_the_horizon_check_reads_the_named_init_std():
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1), 0.4, 0, CONFIDENCE)  # init std 0.01
    assert check.best_swept_lr == 10.0


def test_with_one_seed_a_shortfall_cannot_be_told_from_noise():
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1[:1]), 0.4, AT_0_1, CONFIDENCE)
    assert check.shortfall.effect == pytest.approx(0.04)
    assert check.shortfall.ci_low is None
    assert check.within_seed_noise
