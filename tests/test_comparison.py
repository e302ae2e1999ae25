"""The comparison assembled from train@, tune@ and sweep@: the claims, the robustness map and the horizon check follow
the known outcome of the synthetic tree (tests/synthetic_results.py), and a sweep that cannot be paired is refused."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from src.config import VARIANTS, parse_params
from src.errors import StudyError
from src.report import map_summary
from src.robustness import check_paired, load_sweep
from tests import synthetic_results
from tests.synthetic_results import SEEDS, SWEEP_INIT_STDS, SWEEP_RATES

CLAIM_KEYS = ["faster_convergence", "higher_accuracy", "higher_usable_lr", "stable_sigmoid_inputs", "robust_to_init"]


@pytest.fixture(scope="module")
def comparison(tree):
    return synthetic_results.comparison_of(tree[0])


@pytest.fixture
def project(tree, tmp_path, monkeypatch) -> Path:
    """A private copy of the tree, as the working directory: a test may spoil it."""
    shutil.copytree(tree[0], tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


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
    results = comparison.results
    differences = [results["bn"].test[seed].accuracy - results["vanilla"].test[seed].accuracy for seed in SEEDS]
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
    assert claim.estimate.effect == pytest.approx(-comparison.metrics["vanilla"]["sigmoid_input_drift"]["relative"])


def test_bn_keeps_its_accuracy_under_the_worst_init(comparison):
    # worst init std 1.0: BN 0.96 averaged over the rates, vanilla (0.10 + 0.10 + 0.098) / 3
    claim = _claim(comparison, "robust_to_init")
    assert claim.scale == "accuracy"
    assert claim.estimate.effect == pytest.approx(0.96 - 0.298 / 3)
    assert claim.estimate.ci_low > 0.8


def test_each_claim_in_the_metrics_is_its_verdict_statistic_scale_effect_interval_and_pairs(comparison):
    assert list(comparison.metrics["claims"]) == CLAIM_KEYS
    for claim in comparison.claims:
        estimate = claim.estimate
        assert comparison.metrics["claims"][claim.key] == {
            "verdict": claim.verdict,
            "statistic": claim.statistic,
            "scale": claim.scale,
            "effect": estimate.effect,
            "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high,
            "n": len(SEEDS),
        }


def test_the_robustness_map_has_one_entry_per_cell_with_both_means_and_the_paired_difference(comparison):
    grid = comparison.metrics["robustness_map"]
    assert list(grid) == ["init_std_0.1", "init_std_1"]
    for init_std in SWEEP_INIT_STDS:
        row = grid[f"init_std_{init_std:g}"]
        assert list(row) == ["lr_0.1", "lr_1", "lr_10"]
        for j, lr in enumerate(SWEEP_RATES):
            cell = row[f"lr_{lr:g}"]
            means = {
                v: synthetic_results.sweep_final_accuracy(v)[:, SWEEP_INIT_STDS.index(init_std), j] for v in VARIANTS
            }
            assert cell["vanilla"] == pytest.approx(means["vanilla"].mean())
            assert cell["bn"] == pytest.approx(means["bn"].mean())
            assert cell["difference"] == pytest.approx(cell["bn"] - cell["vanilla"])
            assert cell["ci_low"] <= cell["difference"] <= cell["ci_high"]
    assert len(comparison.cells) == len(SWEEP_INIT_STDS) * len(SWEEP_RATES)


def test_the_map_counts_bn_better_where_vanilla_fails_worse_at_vanillas_best_cell_and_neither_at_a_tie(comparison):
    assert map_summary(comparison.cells, comparison.confidence) == {"cells": 6, "better": 4, "worse": 1}
    by_cell = {(cell.init_std, cell.learning_rate): cell for cell in comparison.cells}
    assert by_cell[(0.1, 1.0)].difference.ci_high < 0  # vanilla's best cell: 0.985 against BN's 0.975
    tie = by_cell[(0.1, 0.1)].difference
    assert tie.ci_low < 0 < tie.ci_high


def test_the_horizon_check_compares_each_tuned_rate_with_the_best_swept_rate(comparison):
    horizon = comparison.metrics["horizon"]
    assert set(horizon) == set(VARIANTS)
    # vanilla, tuned at 0.5: the nearest swept rate (1) is its best one
    assert horizon["vanilla"] == {
        "tuned_lr": 0.5, "nearest_swept_lr": 1.0, "best_swept_lr": 1.0, "shortfall": 0.0, "ci_low": 0.0,
        "ci_high": 0.0, "within_seed_noise": True,
    }  # fmt: skip
    # BN, tuned at 5: the nearest swept rate is 10 (0.965), its best is 1 (0.975) in every seed
    bn = horizon["bn"]
    assert (bn["tuned_lr"], bn["nearest_swept_lr"], bn["best_swept_lr"]) == (5.0, 10.0, 1.0)
    assert (bn["shortfall"], bn["ci_low"]) == pytest.approx((0.01, 0.01))
    assert bn["within_seed_noise"] is False


def test_the_sweep_is_read_back_into_the_grid_it_was_written_from_whatever_the_row_order(project):
    for variant in VARIANTS:
        directory = project / "results" / "sweep" / variant
        for name in ("final.csv", "history.csv", "sigmoid_inputs.csv"):
            _shuffle_rows(directory / name)
        sweep = load_sweep(directory)
        assert sweep.learning_rates.tolist() == list(SWEEP_RATES)
        assert sweep.init_stds.tolist() == list(SWEEP_INIT_STDS) and sweep.seeds == SEEDS
        assert sweep.final_accuracy == pytest.approx(synthetic_results.sweep_final_accuracy(variant))
        assert (sweep.diverged == synthetic_results.sweep_diverged(variant)[None]).all()
        assert sweep.steps.tolist() == [0, 50, 100, 150, 200]
        assert sweep.accuracy.shape == (3, 2, 3, 5) and not np.isnan(sweep.accuracy).any()
        assert sweep.percentiles.shape == (3, 2, 3, synthetic_results.UNITS, 3, 5)
        assert not np.isnan(sweep.percentiles).any()


@pytest.mark.parametrize("name", ["final.csv", "history.csv", "sigmoid_inputs.csv"])
def test_a_missing_sweep_file_is_one_usage_error_naming_it(project, name):
    (project / "results" / "sweep" / "bn" / name).unlink()
    with pytest.raises(StudyError, match=rf"^results/sweep/bn/{name}: no such file \(run the stage that writes it"):
        load_sweep(Path("results/sweep/bn"))


def test_a_sweep_missing_a_cell_is_refused(project):
    final = project / "results" / "sweep" / "vanilla" / "final.csv"
    lines = final.read_text().splitlines(keepends=True)
    final.write_text("".join(lines[:-1]))
    with pytest.raises(StudyError, match=r"results/sweep/vanilla/final\.csv: not every grid cell has a result"):
        load_sweep(final.parent)


@pytest.mark.parametrize(
    "change",
    [{"seeds": 2}, {"lr_max": 1.0}, {"init_stds": [0.1]}],
    ids=["fewer seeds", "fewer rates", "fewer init stds"],
)
def test_sweeps_over_different_grids_cannot_be_paired(project, tree, change):
    raw = tree[1]
    other = parse_params(
        {**raw, "sweep": {**raw["sweep"], **change}, "evaluate": {**raw["evaluate"], "figure1_lrs": [0.1]}}
    )
    shutil.rmtree(project / "results" / "sweep" / "bn")
    synthetic_results.write_sweep(project / "results" / "sweep" / "bn", other, "bn")
    vanilla, bn = (load_sweep(project / "results" / "sweep" / variant) for variant in VARIANTS)
    with pytest.raises(StudyError, match=r"the vanilla and BN sweeps cover different grids or seeds"):
        check_paired(vanilla, bn)
    check_paired(vanilla, vanilla)


def _claim(comparison, key: str):
    return next(claim for claim in comparison.claims if claim.key == key)


def _shuffle_rows(path: Path) -> None:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows, header = list(reader), reader.fieldnames
    random.Random(0).shuffle(rows)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)
