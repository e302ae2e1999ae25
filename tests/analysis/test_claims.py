"""The primary claims decided as one family: each topic's primary specification at its design, its p-value corrected
with the other primaries' (Holm or Benjamini–Hochberg, as params says), its verdict from the corrected p-value and
the side of its effect, how many of its design's specifications agree, and how many seeds would decide it where it is
not shown. Then the sweep's map, one family of cell tests with its own correction and the shares that did not train,
and the horizon check of each tuned rate.

The claims are decided here on specification curves made up for each test (src/analysis/specifications.py, tested in
test_specifications.py, computes the real ones), so every p-value is known."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from src.analysis import claims, specifications, stats
from src.analysis.claims import PRIMARY, TOPICS, decide_claims, horizon_check, robustness_map
from src.analysis.outcomes import Evidence
from src.analysis.specifications import Specification
from src.config import parse_params, with_overrides
from tests import synthetic_results
from tests.synthetic_results import SEEDS

ALPHA = 0.05
KEYS = [f"{topic}_{design}" for topic, design in PRIMARY]


@pytest.fixture(scope="module")
def params(repo_root):
    return parse_params(synthetic_results.tiny_params(repo_root))  # Holm for the claims, BH for the map


def _estimate(effect: float, p_value: float | None, spread: float = 0.05) -> stats.Estimate:
    if p_value is None:
        return stats.Estimate(effect, None, None, n=len(SEEDS))
    return stats.Estimate(effect, effect - 0.01, effect + 0.01, len(SEEDS), p_value, "sign_flip", "BCa", spread)


def _on_bns_side(topic: str, size: float = 0.5) -> float:
    """An effect of the given size on the side the topic claims for BN."""
    topic = TOPICS[topic]
    sign = 1 if topic.bn_favoured == "higher" else -1
    return math.exp(sign * size) if topic.scale == "ratio" else sign * size


def _curves_with(monkeypatch, primary_p: list[float | None], others: dict[str, list[stats.Estimate]] | None = None):
    """Each topic's curve made up: its primary specification at each of its designs (PRIMARY), with the p-values
    `primary_p` in PRIMARY's order and effects on BN's side, then `others` (not primary) for the topic."""
    curves: dict[str, list[Specification]] = {topic: [] for topic in TOPICS}
    for (topic, design), p in zip(PRIMARY, primary_p, strict=True):
        estimate = _estimate(_on_bns_side(topic), p)
        curves[topic].append(
            Specification(topic, design, 0.1 if design == "shared" else None, "primary", estimate, True)
        )
    for topic, estimates in (others or {}).items():
        curves[topic] += [Specification(topic, "shared", 1.0, f"other {k}", e) for k, e in enumerate(estimates)]
    for topic, curve in curves.items():
        monkeypatch.setitem(claims.CURVES, topic, lambda outcomes, curve=curve: curve)
    return curves


def _outcomes(params) -> Evidence:
    return Evidence({}, {}, params.evaluate, params.sweep, params.model.init_std)


# --- the family of primary claims ---------------------------------------------------------------------------------

FAMILY_P = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.03, 0.3]


def test_the_primary_claims_are_those_of_primary_in_order_each_its_topics_primary_at_its_design(params, monkeypatch):
    curves = _curves_with(monkeypatch, FAMILY_P)
    decided = decide_claims(_outcomes(params))
    assert [claim.key for claim in decided] == KEYS
    assert len(PRIMARY) == 8 and {claim.family for claim in decided} == {8}
    for claim, (topic, design) in zip(decided, PRIMARY, strict=True):
        assert claim.topic is TOPICS[topic] and claim.primary.design == design and claim.primary.primary
        assert claim.curve == curves[topic] and claim.estimate is claim.primary.estimate
        assert claim.scale == TOPICS[topic].scale and claim.alpha == ALPHA


def test_the_paper_claims_are_section_4_1s_and_the_two_extensions_are_section_3_3s():
    assert {key: topic.section for key, topic in TOPICS.items()} == {
        "faster_convergence": "4.1",
        "higher_accuracy": "4.1",
        "stable_sigmoid_inputs": "4.1",
        "higher_usable_lr": "3.3",
        "robust_to_init": "3.3",
    }
    assert {key: (topic.scale, topic.no_effect, topic.bn_favoured) for key, topic in TOPICS.items()} == {
        "faster_convergence": ("ratio", 1.0, "lower"),
        "higher_accuracy": ("accuracy", 0.0, "higher"),
        "stable_sigmoid_inputs": ("plain", 0.0, "lower"),
        "higher_usable_lr": ("ratio", 1.0, "higher"),
        "robust_to_init": ("accuracy", 0.0, "higher"),
    }


def test_the_primary_p_values_are_corrected_as_one_family_by_holm(params, monkeypatch):
    _curves_with(monkeypatch, FAMILY_P)
    decided = decide_claims(_outcomes(params))
    assert [claim.adjusted_p for claim in decided] == pytest.approx(stats.holm(FAMILY_P))
    # 0.03 is significant on its own, not as the seventh of eight: Holm multiplies it by 2
    assert [claim.verdict for claim in decided] == ["holds"] * 6 + ["not shown"] * 2
    assert decided[6].primary.verdict(ALPHA, decided[6].topic.bn_favoured, decided[6].topic.no_effect) == "holds"


def test_benjamini_hochberg_corrects_the_family_when_params_says_so(params, monkeypatch):
    _curves_with(monkeypatch, FAMILY_P)
    decided = decide_claims(_outcomes(with_overrides(params, {"evaluate.correction": "bh"})))
    assert [claim.adjusted_p for claim in decided] == pytest.approx(stats.benjamini_hochberg(FAMILY_P))
    assert [claim.verdict for claim in decided] == ["holds"] * 7 + ["not shown"]  # 0.03 · 8 / 7 = 0.034


def test_a_not_estimable_primary_is_left_out_of_the_family_the_others_corrected_among_themselves(params, monkeypatch):
    ps = [0.001, None, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008]
    _curves_with(monkeypatch, ps)
    decided = decide_claims(_outcomes(params))
    assert decided[1].verdict == "not estimable" and decided[1].adjusted_p is None
    assert [claim.adjusted_p for claim in decided] == pytest.approx(stats.holm(ps))
    assert decided[0].adjusted_p == pytest.approx(0.001 * 7)  # a family of seven


def test_a_significant_effect_on_vanillas_side_is_contradicted(params, monkeypatch):
    curves = _curves_with(monkeypatch, FAMILY_P)
    convergence = curves["faster_convergence"][0]
    slower = Specification(convergence.topic, "shared", 0.1, "primary", _estimate(1.6, 0.001), True)
    curves["faster_convergence"][0] = slower  # BN needs 1.6 times vanilla's steps
    accuracy = curves["higher_accuracy"][0]
    curves["higher_accuracy"][0] = Specification(
        accuracy.topic, "shared", 0.1, "primary", _estimate(-0.01, 0.001), True
    )
    decided = decide_claims(_outcomes(params))
    assert decided[0].verdict == decided[2].verdict == "contradicted"


# --- how its design's specifications agree, and how many seeds would decide it ------------------------------------


def test_the_agreement_counts_every_specification_of_the_claims_design_each_decided_on_its_own(params, monkeypatch):
    against = _on_bns_side("higher_accuracy", -0.01)
    others = {
        "higher_accuracy": [
            _estimate(0.01, 0.01),
            _estimate(0.01, 0.2),
            _estimate(against, 0.01),
            _estimate(math.nan, None),
            _estimate(0.01, 0.04),
        ]
    }
    _curves_with(monkeypatch, FAMILY_P, others)
    decided = {claim.key: claim for claim in decide_claims(_outcomes(params))}
    shared, tuned = decided["higher_accuracy_shared"], decided["higher_accuracy_tuned"]
    # the shared primary (p 0.003) and two others hold; one is not shown, one contradicted, one not estimable: all
    # five others are shared specifications, so the tuned claim has its primary (p 0.004) alone
    assert shared.agreement == {"holds": 3, "not shown": 1, "contradicted": 1, "not estimable": 1}
    assert (len(shared.design_curve), shared.agreeing) == (6, 3)
    assert (tuned.agreement, len(tuned.design_curve), tuned.agreeing) == ({"holds": 1}, 1, 1)
    # the topic's whole curve is still every specification of both designs, each decided on its own
    assert shared.curve == tuned.curve and len(shared.spec_verdicts()) == 7


def test_a_claim_not_shown_after_the_correction_counts_the_specifications_not_shown_as_agreeing(params, monkeypatch):
    # the seventh primary (the usable rate; p 0.03) holds on its own, but not after Holm
    _curves_with(monkeypatch, FAMILY_P, {"higher_usable_lr": [_estimate(1.2, 0.5), _estimate(2.0, 0.01)]})
    claim = decide_claims(_outcomes(params))[6]
    assert (claim.key, claim.verdict) == ("higher_usable_lr_shared", "not shown")
    assert claim.agreement == {"holds": 2, "not shown": 1} and claim.agreeing == 1


def test_seeds_needed_is_given_only_where_a_claim_is_not_shown_at_the_familys_level(params, monkeypatch):
    _curves_with(monkeypatch, [0.001, 0.002, 0.003, 0.004, 0.005, None, 0.03, 0.3])
    decided = decide_claims(_outcomes(params))
    assert [claim.verdict for claim in decided] == ["holds"] * 5 + ["not estimable"] + ["not shown"] * 2
    assert [claim.seeds_needed for claim in decided[:6]] == [None] * 6
    usable, robust = decided[6], decided[7]
    assert usable.seeds_needed == stats.seeds_needed(usable.estimate, ALPHA / 8, log_scale=True)  # a ratio
    assert robust.seeds_needed == stats.seeds_needed(robust.estimate, ALPHA / 8, log_scale=False)
    assert usable.seeds_needed != stats.seeds_needed(usable.estimate, ALPHA, log_scale=True)  # the family's level


def test_the_real_curves_decide_the_claims(tree):
    outcomes = synthetic_results.comparison_of(tree[0]).evidence
    decided = decide_claims(outcomes)
    # repr: a specification that is not estimable has a NaN effect, never equal to itself
    assert repr(decided[0].curve) == repr(specifications.convergence(outcomes))
    assert repr(decided[-1].curve) == repr(specifications.init_robustness(outcomes))
    assert [claim.adjusted_p for claim in decided] == stats.holm([claim.estimate.p_value for claim in decided])


# --- the robustness map: every cell of the sweep, paired by seed, corrected as one family ----------------------------

RATES, INITS = synthetic_results.SWEEP_RATES, synthetic_results.SWEEP_INIT_STDS


def _map_outcomes(params, vanilla: np.ndarray, bn: np.ndarray) -> Evidence:
    sweeps = {"vanilla": synthetic_results.swept(vanilla), "bn": synthetic_results.swept(bn)}
    shared = {v: synthetic_results.shared(v, sweep) for v, sweep in sweeps.items()}
    return Evidence({}, shared, params.evaluate, params.sweep, params.model.init_std)


def test_each_map_cell_carries_both_means_and_the_paired_difference(params):
    rng = np.random.default_rng(0)
    # seeds differ a lot (easy and hard seeds, shared by both variants); BN gains 0.01 × (cell number)
    vanilla = 0.9 + rng.normal(0, 0.03, (10, 1, 1)) + rng.normal(0, 0.001, (10, 2, 3))
    gain = 0.01 * np.arange(1, 7).reshape(1, 2, 3)
    bn = vanilla + gain + rng.normal(0, 0.001, (10, 2, 3))
    outcomes = _map_outcomes(params, vanilla, bn)
    cells = robustness_map(outcomes)
    assert [(cell.init_std, cell.learning_rate) for cell in cells] == [(i, r) for i in INITS for r in RATES]
    for cell, (i, j) in zip(cells, [(i, j) for i in range(2) for j in range(3)], strict=True):
        assert cell.vanilla == pytest.approx(vanilla[:, i, j].mean()) and cell.bn == pytest.approx(bn[:, i, j].mean())
        expected = stats.paired_difference_test(bn[:, i, j], vanilla[:, i, j], outcomes.inference, bounds=(-1.0, 1.0))
        assert cell.difference == expected
        assert cell.difference.effect == pytest.approx(gain[0, i, j], abs=0.002)
        assert cell.side == cell.side_uncorrected == "above"  # paired, the seeds' spread of 0.03 hides no 0.01 gain
        assert cell.alpha == ALPHA


def _differences(kind: str) -> np.ndarray:
    """Ten per-seed BN − vanilla differences: all on BN's side (p 2/1024), all but one (p 22/1024), or a tie."""
    if kind == "all":
        return 0.01 * (1 + 0.1 * np.arange(10))
    if kind == "one against":
        return np.array([0.01] * 9 + [-0.01])
    return 0.01 * np.array([1, -1] * 5)


MAP_PATTERN = [["all", "all", "one against"], ["all", "one against", "tie"]]  # init std × rate


def _patterned() -> tuple[np.ndarray, np.ndarray]:
    vanilla = np.full((10, 2, 3), 0.9)
    differences = np.array([[_differences(kind) for kind in row] for row in MAP_PATTERN])  # (inits, rates, seeds)
    return vanilla, vanilla + np.moveaxis(differences, -1, 0)


def test_the_map_is_one_family_corrected_by_benjamini_hochberg_or_holm_as_params_says(params):
    cells = robustness_map(_map_outcomes(params, *_patterned()))
    raw = [cell.difference.p_value for cell in cells]
    assert raw == pytest.approx([2 / 1024, 2 / 1024, 22 / 1024, 2 / 1024, 22 / 1024, 1.0])
    assert [cell.adjusted_p for cell in cells] == pytest.approx(stats.benjamini_hochberg(raw))
    # BH (params' map_correction) keeps the two cells where one seed goes against BN (22/1024 · 6/5 = 0.026); Holm
    # does not (22/1024 · 3 = 0.064)
    assert [cell.side for cell in cells] == ["above"] * 5 + [None]
    assert [cell.side_uncorrected for cell in cells] == ["above"] * 5 + [None]
    holm = robustness_map(_map_outcomes(with_overrides(params, {"evaluate.map_correction": "holm"}), *_patterned()))
    assert [cell.adjusted_p for cell in holm] == pytest.approx(stats.holm(raw))
    assert [cell.side for cell in holm] == ["above", "above", None, "above", None, None]
    assert [cell.side_uncorrected for cell in holm] == ["above"] * 5 + [None]


def test_a_map_cell_below_is_bn_significantly_lower_and_a_cell_without_an_interval_is_on_no_side(params):
    vanilla = np.full((10, 2, 3), 0.9)
    bn = vanilla - 0.01 * (1 + 0.1 * np.arange(10))[:, None, None]
    bn[:, 1, 2] = 0.9  # no seed differs: not estimable
    cells = robustness_map(_map_outcomes(params, vanilla, bn))
    assert [cell.side for cell in cells] == ["below"] * 5 + [None]
    assert not cells[-1].difference.estimable and cells[-1].adjusted_p is None


def test_a_map_cell_where_every_seed_differs_alike_is_in_the_family_with_its_exact_p(params):
    vanilla = np.full((10, 2, 3), 0.9)
    bn = vanilla - 0.01 * (1 + 0.1 * np.arange(10))[:, None, None]
    bn[:, 1, 2] = 0.95  # every seed the same difference: the most extreme of the 2^10 sign patterns
    cells = robustness_map(_map_outcomes(params, vanilla, bn))
    assert [cell.side for cell in cells] == ["below"] * 5 + ["above"]
    assert cells[-1].difference.p_value == 2 / 2**10 and cells[-1].adjusted_p is not None


def test_each_cell_gives_the_share_of_each_variants_seeds_that_ended_below_the_did_not_train_cut(params):
    vanilla = np.full((10, 2, 3), 0.95)
    vanilla[:3, 0, 0] = 0.1  # three seeds at chance
    vanilla[3, 0, 0] = 0.2  # at the cut, not below it: trained, if badly
    bn = vanilla.copy() + 0.01
    bn[:, 1, 2] = 0.1
    cells = robustness_map(_map_outcomes(params, vanilla, bn))
    assert params.evaluate.did_not_train_below == 0.2
    assert cells[0].did_not_train == {"vanilla": pytest.approx(0.3), "bn": pytest.approx(0.3)}
    assert cells[-1].did_not_train == {"vanilla": 0.0, "bn": 1.0}
    assert Counter(round(cell.did_not_train["vanilla"], 6) for cell in cells) == {0.0: 5, 0.3: 1}


def test_a_cell_where_no_seed_of_either_net_trained_is_flagged_on_either_side(params):
    vanilla = np.full((10, 2, 3), 0.95)
    bn = vanilla + 0.01 * (1 + 0.1 * np.arange(10))[:, None, None]
    vanilla[:, 0, 0], bn[:, 0, 0] = 0.1, 0.4  # BN higher, both failed
    vanilla[:, 0, 1], bn[:, 0, 1] = 0.4, 0.1  # BN lower, both failed
    vanilla[:, 0, 2], bn[:, 0, 2] = 0.1, 0.5
    bn[0, 0, 2] = 0.95  # one seed of BN trained: not two failures
    vanilla[:, 1, 0], bn[:, 1, 0] = 0.1, 0.15
    bn[0, 1, 0] = 0.5  # nine seeds of BN at chance, one above it yet short of the usable cut: failed all the same
    cells = robustness_map(_map_outcomes(params, vanilla, bn))
    assert params.evaluate.usable_accuracy == 0.9
    assert [cell.side for cell in cells] == ["above", "below", "above", "above", "above", "above"]
    assert [cell.both_failed for cell in cells] == [True, True, False, True, False, False]
    assert cells[3].did_not_train == {"vanilla": 1.0, "bn": pytest.approx(0.9)}
    assert cells[2].trained == {"vanilla": 0.0, "bn": pytest.approx(0.1)} and cells[4].trained == {
        "vanilla": 1.0,
        "bn": 1.0,
    }


# --- the horizon check: is the tuned rate still the best after the sweep's longer training? ------------------------

CLEARLY_BEST_AT_0_1 = [[0.990, 0.950, 0.1], [0.970, 0.930, 0.1], [0.985, 0.944, 0.1], [0.992, 0.953, 0.1]] * 2 + [
    [0.980, 0.945, 0.1],
    [0.975, 0.949, 0.1],
]


def _horizon_outcomes(params, tuned_lr: float, at_paper_init: list[list[float]]) -> Evidence:
    """BN tuned at `tuned_lr`; its final accuracies (seeds, rates) at init std 0.1, the paper's; at init std 1.0 the
    best rate would be 10."""
    at_init = np.asarray(at_paper_init)
    other = np.tile([0.1, 0.2, 0.99], (at_init.shape[0], 1))
    sweep = synthetic_results.swept(np.stack([at_init, other], axis=1))
    steps = np.array([0, 100])
    tuned = synthetic_results.outcome(
        steps, np.zeros((len(at_init), 2)), [0.9] * len(at_init), [0.0] * len(at_init), lr=tuned_lr
    )
    return Evidence(
        {"bn": tuned},
        {"bn": synthetic_results.shared("bn", sweep)},
        params.evaluate,
        params.sweep,
        params.model.init_std,
    )


@pytest.mark.parametrize(
    ("tuned_lr", "nearest"), [(0.25, 0.1), (0.35, 1.0), (0.001, 0.1), (50.0, 10.0), (1.0, 1.0), (3.0, 1.0), (3.5, 10.0)]
)
def test_the_nearest_swept_rate_is_nearest_on_a_log_scale(params, tuned_lr, nearest):
    # 0.35 is nearer 0.1 than 1 on a linear scale, nearer 1 on a log scale (the midpoint is 0.316); 3.5 nearer 10
    check = horizon_check(_horizon_outcomes(params, tuned_lr, CLEARLY_BEST_AT_0_1), "bn")
    assert (check.tuned_lr, check.nearest_swept_lr) == (tuned_lr, nearest)


def test_a_clearly_better_swept_rate_is_not_within_seed_noise(params):
    outcomes = _horizon_outcomes(params, 0.4, CLEARLY_BEST_AT_0_1)
    check = horizon_check(outcomes, "bn")
    at_init = np.asarray(CLEARLY_BEST_AT_0_1)
    assert (check.nearest_swept_lr, check.best_swept_lr) == (1.0, 0.1)
    assert check.shortfall == stats.paired_difference_test(
        at_init[:, 0], at_init[:, 1], outcomes.inference, (-1.0, 1.0)
    )
    assert check.shortfall.ci_low > 0 and not check.within_seed_noise


def test_a_best_rate_better_only_within_seed_noise_is_within_seed_noise(params):
    # 0.1 has the higher mean, but the per-seed differences change sign
    at_init = [[0.958, 0.950, 0.1], [0.952, 0.960, 0.1], [0.949, 0.940, 0.1], [0.957, 0.955, 0.1]] * 2 + [
        [0.950, 0.951, 0.1],
        [0.953, 0.954, 0.1],
    ]
    check = horizon_check(_horizon_outcomes(params, 0.4, at_init), "bn")
    assert (check.nearest_swept_lr, check.best_swept_lr) == (1.0, 0.1)
    assert check.shortfall.estimable and check.shortfall.p_value > ALPHA
    assert check.within_seed_noise


def test_a_tuned_rate_nearest_the_best_has_no_shortfall_to_estimate(params):
    check = horizon_check(_horizon_outcomes(params, 0.12, CLEARLY_BEST_AT_0_1), "bn")
    assert check.nearest_swept_lr == check.best_swept_lr == 0.1
    assert check.shortfall.effect == 0.0 and not check.shortfall.estimable
    assert check.within_seed_noise


def test_the_horizon_check_reads_the_papers_init_std(params):
    moved = with_overrides(params, {"model.init_std": 1.0, "edge.init_stds": [1.0]})
    check = horizon_check(_horizon_outcomes(moved, 0.4, CLEARLY_BEST_AT_0_1), "bn")
    assert check.best_swept_lr == 10.0


def test_with_one_seed_a_shortfall_cannot_be_told_from_noise(params):
    check = horizon_check(_horizon_outcomes(params, 0.4, CLEARLY_BEST_AT_0_1[:1]), "bn")
    assert check.shortfall.effect == pytest.approx(0.04)
    assert check.shortfall.ci_low is None and check.within_seed_noise
