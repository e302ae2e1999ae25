"""The comparison assembled from tune@, train@ and sweep@ (tests/synthetic_results.py): the claims, the robustness
map, the horizon check and the example sigmoid follow the tree's known outcome, and each is computed once, by
`compare`; the metrics, figures and report are built from what it returns."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from src import claims, data, figures, metrics, outcomes, report, results
from src import comparison as comparison_module
from src.config import VARIANTS
from tests import synthetic_results
from tests.synthetic_results import SEEDS, SWEEP_INIT_STDS, SWEEP_RATES

CLAIM_KEYS = ["faster_convergence", "higher_accuracy", "higher_usable_lr", "stable_sigmoid_inputs", "robust_to_init"]


@pytest.fixture(scope="module")
def comparison(tree):
    return synthetic_results.comparison_of(tree[0])


def _claim(comparison, key: str):
    return next(claim for claim in comparison.claims if claim.key == key)


# --- the known outcome ---------------------------------------------------------------------------------------


def test_the_five_claims_are_decided_in_the_reports_order_and_all_hold_on_the_synthetic_outcome(comparison):
    assert [claim.key for claim in comparison.claims] == CLAIM_KEYS
    assert {claim.key: claim.verdict for claim in comparison.claims} == dict.fromkeys(CLAIM_KEYS, "holds")


def test_bn_reaches_the_convergence_target_in_fewer_steps(comparison):
    # 97 %: BN first at step 400, vanilla at 900, in every seed: a ratio of 4/9 with no spread
    claim = _claim(comparison, "faster_convergence")
    assert claim.scale == "ratio" and claim.estimate.n == len(SEEDS)
    assert claim.estimate.effect == pytest.approx(400 / 900)
    assert claim.estimate.ci_high == pytest.approx(400 / 900) and claim.estimate.ci_high < 1
    assert claim.note == ""  # every seed of both variants reached the target


def test_bn_scores_higher_with_the_saved_models_paired_by_seed(comparison):
    claim = _claim(comparison, "higher_accuracy")
    tuned = comparison.tuned
    differences = [tuned["bn"].test[seed].accuracy - tuned["vanilla"].test[seed].accuracy for seed in SEEDS]
    assert claim.estimate.effect == pytest.approx(np.mean(differences))
    assert claim.estimate.ci_low > 0.5  # BN learnt the prototypes in MODEL_STEPS steps, vanilla did not


def test_bn_trains_at_a_ten_times_larger_swept_rate_and_the_ratio_is_flagged_as_a_lower_bound(comparison):
    # at init std 0.1 vanilla trains up to rate 1 and diverges at 10; BN trains at 10, the top of the grid
    claim = _claim(comparison, "higher_usable_lr")
    assert (claim.estimate.effect, claim.estimate.ci_low, claim.estimate.ci_high) == pytest.approx((10, 10, 10))
    assert claim.note == "BN trained at the largest rate swept in 3 of 3 seeds: the ratio is a lower bound"


def test_bn_sigmoid_inputs_drift_less(comparison):
    claim = _claim(comparison, "stable_sigmoid_inputs")
    assert claim.scale == "plain" and claim.estimate.ci_high < 0
    # BN's synthetic inputs do not move at all, so the difference is minus vanilla's drift
    assert not comparison.tuned["bn"].drift.any()
    assert claim.estimate.effect == pytest.approx(-comparison.tuned["vanilla"].drift.mean())


def test_bn_keeps_its_accuracy_under_the_worst_init(comparison):
    # worst init std 1.0: BN 0.96 averaged over the rates, vanilla (0.10 + 0.10 + 0.098) / 3
    claim = _claim(comparison, "robust_to_init")
    assert claim.scale == "accuracy"
    assert claim.estimate.effect == pytest.approx(0.96 - 0.298 / 3)
    assert claim.estimate.ci_low > 0.8


def test_both_sweeps_are_read_on_the_grid_of_params(comparison):
    for variant, sweep in comparison.sweeps.items():
        assert sweep.learning_rates.tolist() == list(SWEEP_RATES)
        assert sweep.init_stds.tolist() == list(SWEEP_INIT_STDS) and sweep.seeds == SEEDS
        assert sweep.final_accuracy == pytest.approx(synthetic_results.sweep_final_accuracy(variant))
        assert (sweep.diverged == synthetic_results.sweep_diverged(variant)[None]).all()


def test_the_map_has_bn_better_where_vanilla_fails_worse_at_vanillas_best_cell_and_neither_at_a_tie(comparison):
    cells = comparison.cells
    assert [(cell.init_std, cell.learning_rate) for cell in cells] == [
        (init_std, lr) for init_std in SWEEP_INIT_STDS for lr in SWEEP_RATES
    ]
    assert Counter(cell.side for cell in cells) == {"above": 4, "below": 1, None: 1}
    by_cell = {(cell.init_std, cell.learning_rate): cell for cell in cells}
    assert by_cell[(0.1, 1.0)].side == "below"  # vanilla's best cell: 0.985 against BN's 0.975
    assert by_cell[(0.1, 0.1)].side is None  # a tie up to seed noise


def test_the_horizon_check_compares_each_tuned_rate_with_the_best_swept_rate_at_the_papers_init(comparison):
    horizons = comparison.horizons
    assert list(horizons) == list(VARIANTS)
    # vanilla, tuned at 0.5: the nearest swept rate (1) is its best one
    vanilla = horizons["vanilla"]
    assert (vanilla.tuned_lr, vanilla.nearest_swept_lr, vanilla.best_swept_lr) == (0.5, 1.0, 1.0)
    assert vanilla.within_seed_noise
    # BN, tuned at 5: the nearest swept rate is 10 (0.965), its best is 1 (0.975) in every seed; at init std 1.0
    # its best would be 1 as well, so the shortfall says which init was read
    bn = horizons["bn"]
    assert (bn.tuned_lr, bn.nearest_swept_lr, bn.best_swept_lr) == (5.0, 10.0, 1.0)
    assert bn.shortfall.effect == pytest.approx(0.975 - 0.965) and not bn.within_seed_noise


def test_the_example_sigmoid_is_seed_0s_first_unit_still_in_bn_and_sliding_in_vanilla(comparison):
    example = comparison.example
    assert (example.seed, example.unit) == (0, 0)
    assert example.drift["bn"].relative_drift == 0 < example.drift["vanilla"].relative_drift
    # vanilla's median input slides from −0.2 at step 100 (a tenth of training) to −2 at the end
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

    for name in ("load_split", "read_trained", "read_trials", "tuned_outcome", "check_same_seeds", "read_sweep",
                 "all_claims", "horizon_check", "robustness_map", "example_unit"):  # fmt: skip
        count(comparison_module, name)
    count(outcomes, "score")
    synthetic_results.comparison_of(tree[0])
    assert calls == {
        "load_split": 2,  # the test and training splits
        "read_trained": 2, "read_trials": 2, "tuned_outcome": 2, "read_sweep": 2,  # one per variant
        "score": 2 * len(SEEDS) * 2,  # every saved model of both variants on both splits
        "check_same_seeds": 1, "all_claims": 1, "robustness_map": 1, "example_unit": 1,
        "horizon_check": 2,  # one per variant
    }  # fmt: skip


def test_the_metrics_figures_and_report_are_built_from_the_comparison_without_reading_or_deciding_again(
    comparison, monkeypatch
):
    def refuse(name: str):
        def refused(*args, **kwargs):
            raise AssertionError(f"{name} was called after compare")

        return refused

    again = {"compare", "load_split", "read_trained", "read_trials", "read_history", "read_sigmoid_inputs",
             "read_sweep", "read_table", "score", "tuned_outcome", "all_claims", "horizon_check", "robustness_map",
             "example_unit"}  # fmt: skip
    for module in (data, results, outcomes, claims, comparison_module, metrics, report, figures):
        for name in again & set(vars(module)):
            monkeypatch.setattr(module, name, refuse(name))
    numbers = metrics.build(comparison)
    drawn = figures.report_figures(comparison)
    assert report.render(comparison, numbers, list(drawn)).startswith("# Batch Normalization on MNIST")
