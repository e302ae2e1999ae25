"""The comparison assembled from tune@, train@, sweep@ and edge@ (tests/synthetic_results.py): the claims, their
specification curves, the robustness map, the horizon check and the example sigmoid follow the tree's known outcome,
and each is computed once, by `compare`; the metrics, figures and report are built from what it returns."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from src.analysis import claims, outcomes, specifications
from src.analysis import comparison as comparison_module
from src.analysis.claims import PRIMARY
from src.config import VARIANTS
from src.data import splits
from src.metrics import schema
from src.metrics.build import build
from src.report import figures, markdown
from src.results import files
from tests import synthetic_results
from tests.synthetic_results import EDGE_TRAINS, SEEDS, SWEEP_INIT_STDS, SWEEP_RATES, sweep_final_accuracy

KEYS = [f"{topic}_{design}" for topic, design in PRIMARY]


@pytest.fixture(scope="module")
def comparison(tree):
    return synthetic_results.comparison_of(tree[0])


def _claim(comparison, key: str):
    return next(claim for claim in comparison.claims if claim.key == key)


# --- the known outcome ---------------------------------------------------------------------------------------


def test_every_primary_claim_holds_at_both_designs_after_the_familys_correction(comparison):
    assert [claim.key for claim in comparison.claims] == KEYS
    assert {claim.key: claim.verdict for claim in comparison.claims} == dict.fromkeys(KEYS, "holds")
    assert all(claim.adjusted_p <= 0.05 and claim.seeds_needed is None for claim in comparison.claims)


def test_every_specification_that_can_be_estimated_agrees_and_only_init_std_1s_shared_ones_cannot(comparison):
    agreement = {claim.key: claim.agreement for claim in comparison.claims}
    assert agreement == {  # each claim counts its own design's specifications
        "faster_convergence_shared": {"holds": 5, "not estimable": 5},  # 5 climbs × (init 0.1, init 1.0)
        "faster_convergence_tuned": {"holds": 5},
        "higher_accuracy_shared": {"holds": 3, "not estimable": 3},
        "higher_accuracy_tuned": {"holds": 3},
        "stable_sigmoid_inputs_shared": {"holds": 4, "not estimable": 4},
        "stable_sigmoid_inputs_tuned": {"holds": 4},
        "higher_usable_lr_shared": {"holds": 3},  # the grid alone: 10× (100×) in every seed, the exact p 2 / 2^10
        "robust_to_init_shared": {"holds": 4},
    }
    for claim in comparison.claims:
        for spec, verdict in zip(claim.curve, claim.spec_verdicts(), strict=True):
            if verdict == "not estimable":
                assert (spec.design, spec.init_std, spec.note) == ("shared", 1.0, "no swept rate where both nets train")


def test_bn_reaches_the_climbs_target_in_fewer_steps_at_both_designs(comparison):
    for design in ("shared", "tuned"):
        estimate = _claim(comparison, f"faster_convergence_{design}").estimate
        assert estimate.n == len(SEEDS) and estimate.ci_high < 0.5  # time constants 25 vs 60, 100 vs 250
    assert _claim(comparison, "faster_convergence_shared").primary.note == "rates 0.1, 1"


def test_bn_is_more_accurate_image_by_image_with_its_saved_models_and_on_average_at_the_shared_rates(comparison):
    tuned = comparison.tuned
    estimate = _claim(comparison, "higher_accuracy_tuned").estimate
    assert estimate.test == "sign_flip"  # params' accuracy_test: seeds
    assert estimate.effect == pytest.approx(np.mean(tuned["bn"].final_accuracy - tuned["vanilla"].final_accuracy))
    assert estimate.ci_low > 0.5  # BN learnt the prototypes in MODEL_STEPS steps, vanilla did not
    shared = _claim(comparison, "higher_accuracy_shared").estimate
    bn, vanilla = (sweep_final_accuracy(v)[:, 0, :2] for v in ("bn", "vanilla"))  # init 0.1, rates 0.1 and 1
    assert shared.effect == pytest.approx(np.mean(bn - vanilla)) and shared.effect == pytest.approx(0.0225, abs=0.005)
    assert shared.ci_low > 0


def test_bns_sigmoid_inputs_drift_less_at_both_designs(comparison):
    tuned = _claim(comparison, "stable_sigmoid_inputs_tuned").estimate
    vanilla, bn = comparison.tuned["vanilla"].drift(0.01), comparison.tuned["bn"].drift(0.01)
    assert tuned.effect == pytest.approx(np.mean(bn - vanilla)) and tuned.ci_high < 0
    assert _claim(comparison, "stable_sigmoid_inputs_shared").estimate.ci_high < 0


def test_bns_refined_edge_is_higher_in_every_seed_and_a_lower_bound_in_one(comparison):
    claim = _claim(comparison, "higher_usable_lr_shared")
    step = 10 ** (1 / 6)  # five refined rates in a step of 10; BN's bracket is 10 to 100, vanilla's 1 to 10
    per_seed = 10 * step ** (np.array(EDGE_TRAINS["bn"]) - np.array(EDGE_TRAINS["vanilla"]))
    assert claim.estimate.effect == pytest.approx(math.exp(np.mean(np.log(per_seed))))
    assert claim.estimate.ci_low > 1
    assert claim.primary.note == "BN's edge is a lower bound in 1 seed(s): it trained at every rate tried"
    edges = {v: shared.edges for v, shared in comparison.shared.items()}
    assert edges["bn"].refined_inits == [0.1] and np.isinf(edges["bn"].resolution[3, 0])
    assert edges["vanilla"].coarse[:, 0].tolist() == [1.0] * len(SEEDS)


def test_bn_keeps_its_accuracy_under_the_worst_init_at_the_rates_where_both_train(comparison):
    claim = _claim(comparison, "robust_to_init_shared")
    bn, vanilla = (sweep_final_accuracy(v)[:, :, :2].min(axis=1).mean(axis=1) for v in ("bn", "vanilla"))
    assert claim.estimate.effect == pytest.approx(np.mean(bn - vanilla)) and claim.estimate.ci_low > 0.8


def test_both_sweeps_are_read_on_the_grid_of_params_with_their_predictions(comparison):
    for variant, shared in comparison.shared.items():
        sweep = shared.sweep
        assert sweep.learning_rates.tolist() == list(SWEEP_RATES)
        assert sweep.init_stds.tolist() == list(SWEEP_INIT_STDS) and sweep.seeds == SEEDS
        assert sweep.final_accuracy == pytest.approx(sweep_final_accuracy(variant))
        assert (sweep.diverged == synthetic_results.sweep_diverged(variant)[None]).all()
        np.testing.assert_allclose(shared.correct.mean(axis=-1), sweep.final_accuracy)


def test_the_map_has_bn_better_where_vanilla_fails_worse_at_vanillas_best_cell_and_neither_at_a_tie(comparison):
    cells = comparison.cells
    assert [(cell.init_std, cell.learning_rate) for cell in cells] == [
        (init_std, lr) for init_std in SWEEP_INIT_STDS for lr in SWEEP_RATES
    ]
    assert Counter(cell.side for cell in cells) == Counter(cell.side_uncorrected for cell in cells)
    assert Counter(cell.side for cell in cells) == {"above": 4, "below": 1, None: 1}
    by_cell = {(cell.init_std, cell.learning_rate): cell for cell in cells}
    assert by_cell[(0.1, 0.1)].side == "below"  # 97.5 % against BN's 95 %
    assert by_cell[(1.0, 10.0)].side is None  # both at chance
    assert {key: cell.did_not_train for key, cell in by_cell.items() if any(cell.did_not_train.values())} == {
        (0.1, 10.0): {"vanilla": 1.0, "bn": 0.0},  # diverged
        (1.0, 0.1): {"vanilla": 1.0, "bn": 0.0},
        (1.0, 1.0): {"vanilla": 1.0, "bn": 0.0},
        (1.0, 10.0): {"vanilla": 1.0, "bn": 1.0},
    }


def test_the_horizon_check_compares_each_tuned_rate_with_the_best_swept_rate_at_the_papers_init(comparison):
    horizons = comparison.horizons
    assert list(horizons) == list(VARIANTS)
    # vanilla, tuned at 0.2: the nearest swept rate (0.1) is its best one, so there is no shortfall to estimate
    vanilla = horizons["vanilla"]
    assert (vanilla.tuned_lr, vanilla.nearest_swept_lr, vanilla.best_swept_lr) == (0.2, 0.1, 0.1)
    assert vanilla.shortfall.effect == 0 and vanilla.within_seed_noise
    # BN, tuned at 5: the nearest swept rate is 10 (96.5 %), its best is 1 (99 %), better in every seed; at init std
    # 1.0 its best would be 1 as well, by less, so the shortfall says which init was read
    bn = horizons["bn"]
    assert (bn.tuned_lr, bn.nearest_swept_lr, bn.best_swept_lr) == (5.0, 10.0, 1.0)
    final = sweep_final_accuracy("bn")[:, 0]
    assert bn.shortfall.effect == pytest.approx(np.mean(final[:, 1] - final[:, 2])) and not bn.within_seed_noise


def test_the_example_sigmoid_is_seed_0s_first_unit_still_in_bn_and_sliding_in_vanilla(comparison):
    example = comparison.example
    assert (example.seed, example.unit) == (0, 0)
    assert example.drift["bn"].relative_drift == 0 < example.drift["vanilla"].relative_drift
    # from the reference, 1 % of training (the first evaluation at or after step 10: step 100), to the end
    assert example.drift["vanilla"].reference_step == 100
    assert example.start == {"vanilla": pytest.approx(-0.2), "bn": 0.0}
    assert example.end == {"vanilla": pytest.approx(-2.0), "bn": 0.0}


# --- each thing computed once ----------------------------------------------------------------------------------


def test_compare_reads_scores_and_decides_each_thing_once(tree, monkeypatch):
    calls = Counter()

    def count(module, name: str) -> None:
        original = getattr(module, name)

        def counted(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    for name in (
        "load_split",
        "read_trained",
        "read_trials",
        "read_predictions",
        "read_sweep",
        "read_edge_final",
        "decide_claims",
        "horizon_check",
        "robustness_map",
    ):
        count(comparison_module, name)
    for name in ("tuned_outcome", "check_same_seeds", "example_unit", "edges", "score_members"):
        count(outcomes, name)
    synthetic_results.comparison_of(tree[0])
    assert calls == {
        "load_split": 2,  # the test and training splits
        "read_trained": 2,
        "read_trials": 2,
        "tuned_outcome": 2,
        "read_sweep": 2,
        "read_edge_final": 2,
        "edges": 2,
        "read_predictions": 4,  # train@ and sweep@, one per variant each
        "score_members": 2 * len(SEEDS) * 2,  # every saved model of both variants on both splits
        "check_same_seeds": 1,
        "decide_claims": 1,
        "robustness_map": 1,
        "example_unit": 1,
        "horizon_check": 2,  # one per variant
    }


def test_the_metrics_figures_and_report_are_built_from_the_comparison_without_reading_or_deciding_again(
    comparison, monkeypatch
):
    def refuse(name: str):
        def refused(*args, **kwargs):
            raise AssertionError(f"{name} was called after compare")

        return refused

    again = {
        "compare",
        "load_split",
        "read_trained",
        "read_trials",
        "read_history",
        "read_sigmoid_inputs",
        "read_sweep",
        "read_sweep_final",
        "read_edge_final",
        "read_predictions",
        "read_table",
        "score_members",
        "tuned_outcome",
        "decide_claims",
        "horizon_check",
        "robustness_map",
        "example_unit",
        "convergence",
        "accuracy",
        "stability",
        "usable_rate",
        "init_robustness",
    }
    for module in (splits, files, outcomes, specifications, claims, comparison_module, schema, markdown, figures):
        for name in again & set(vars(module)):
            monkeypatch.setattr(module, name, refuse(name))
    numbers = build(comparison)
    drawn = figures.report_figures(comparison)
    assert markdown.render(comparison, numbers, list(drawn)).startswith("# Batch Normalization on MNIST")
