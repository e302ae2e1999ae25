"""results/metrics.json: built from the comparison with a fixed schema of plain JSON values, written and read back
as it was built, and printed for a person (`python -m src.metrics`) within 120 columns, every claim and every cell."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from src import formats, metrics, stats
from src.claims import Claim
from src.config import VARIANTS
from src.metrics import MapCellMetrics, Metrics
from tests import synthetic_results
from tests.synthetic_results import SEEDS, SWEEP_INIT_STDS, SWEEP_RATES

CLAIM_KEYS = ["faster_convergence", "higher_accuracy", "higher_usable_lr", "stable_sigmoid_inputs", "robust_to_init"]


@pytest.fixture(scope="module")
def comparison(tree):
    return synthetic_results.comparison_of(tree[0])


@pytest.fixture(scope="module")
def built(comparison) -> Metrics:
    return metrics.build(comparison)


@pytest.fixture(scope="module")
def content(built) -> dict:
    """The metrics as results/metrics.json holds them."""
    return built.model_dump()


@pytest.fixture(scope="module")
def metrics_file(tree, built):
    """The metrics.json the evaluate stage would write for the synthetic results tree."""
    path = tree[0] / "metrics.json"
    built.write(path)
    return path


# --- built from the comparison -------------------------------------------------------------------------------


def test_the_metrics_have_a_fixed_schema_of_plain_json_values(content):
    variant_keys = [
        "lr", "n_seeds", "n_diverged", "test_accuracy", "test_accuracy_moving_average", "test_loss_mean",
        "train_accuracy_mean", "train_loss_mean", "train_test_gap", "accuracy_auc", "steps_to_90", "steps_to_95",
        "steps_to_99", "sigmoid_input_drift", "lr_search",
    ]  # fmt: skip
    assert list(content) == ["claims", "vanilla", "bn", "horizon", "robustness_map"]
    for claim in content["claims"].values():
        assert list(claim) == ["verdict", "statistic", "scale", "effect", "ci_low", "ci_high", "n"]
        assert claim["scale"] in {"ratio", "accuracy", "plain"}
        assert claim["verdict"] in {"holds", "contradicted", "not shown"} and isinstance(claim["n"], int)
    for variant in VARIANTS:
        section = content[variant]
        assert list(section) == variant_keys
        assert list(section["test_accuracy"]) == ["mean", "std", "ci_low", "ci_high"]
        assert list(section["steps_to_95"]) == ["median", "n_reached"]
        assert list(section["sigmoid_input_drift"]) == ["reference_step", "relative", "median_shift_abs"]
        assert list(section["lr_search"]) == ["best_lr", "best_value", "n_trials", "n_diverged"]
        assert isinstance(section["n_seeds"], int) and isinstance(section["steps_to_95"]["n_reached"], int)
    for check in content["horizon"].values():
        assert list(check) == [
            "tuned_lr", "nearest_swept_lr", "best_swept_lr", "shortfall", "ci_low", "ci_high", "within_seed_noise"
        ]  # fmt: skip
    for row in content["robustness_map"].values():
        for cell in row.values():
            assert list(cell) == ["vanilla", "bn", "difference", "ci_low", "ci_high"]
    for leaf in _leaves(content):
        assert leaf is None or type(leaf) in (int, float, bool, str), leaf
    json.dumps(content, allow_nan=False)  # strict JSON: no NaN or Infinity


def test_each_claim_is_its_verdict_statistic_scale_effect_interval_and_pairs(comparison, content):
    assert list(content["claims"]) == [claim.key for claim in comparison.claims] == CLAIM_KEYS
    for claim in comparison.claims:
        estimate = claim.estimate
        assert content["claims"][claim.key] == {
            "verdict": claim.verdict,
            "statistic": claim.statistic,
            "scale": claim.scale,
            "effect": estimate.effect,
            "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high,
            "n": len(SEEDS),
        }


@pytest.mark.parametrize("missing", [math.nan, math.inf, np.float64(-np.inf)])
def test_a_number_json_cannot_spell_is_written_as_null(missing):
    claim = Claim("k", "title", "design", "statistic", "plain", stats.Estimate(missing, None, None, 0), "lower")
    written = metrics.claim_metrics(claim)
    assert (written.effect, written.ci_low, written.ci_high, written.n) == (None, None, None, 0)
    assert math.isnan(written.estimate.effect)  # a number again where the printer reads it
    json.dumps(written.model_dump(), allow_nan=False)


def test_numpy_numbers_are_written_as_python_numbers():
    estimate = stats.Estimate(np.float64(0.5), np.float64(0.25), np.float64(0.75), 3)
    written = metrics.claim_metrics(Claim("k", "title", "design", "statistic", "ratio", estimate, "higher"))
    assert [type(value) for value in (written.effect, written.ci_low, written.ci_high)] == [float] * 3


def test_the_variant_metrics_follow_the_known_synthetic_outcome(content):
    vanilla, bn = content["vanilla"], content["bn"]
    assert bn["steps_to_95"] == {"median": 300.0, "n_reached": 3}
    assert vanilla["steps_to_95"] == {"median": 800.0, "n_reached": 3}
    assert bn["steps_to_99"] == vanilla["steps_to_99"] == {"median": None, "n_reached": 0}
    assert bn["accuracy_auc"] > vanilla["accuracy_auc"]
    assert vanilla["sigmoid_input_drift"]["relative"] > 0 == bn["sigmoid_input_drift"]["relative"]
    assert vanilla["sigmoid_input_drift"]["median_shift_abs"] > 0 == bn["sigmoid_input_drift"]["median_shift_abs"]
    assert vanilla["sigmoid_input_drift"]["reference_step"] == 100  # 10 % of 1,000 steps
    assert (vanilla["lr"], bn["lr"]) == (0.5, 5.0)
    assert vanilla["lr_search"] == {"best_lr": 0.5, "best_value": 0.93, "n_trials": 6, "n_diverged": 3}
    assert bn["lr_search"]["n_diverged"] == 1
    assert (vanilla["n_seeds"], vanilla["n_diverged"], bn["n_diverged"]) == (3, 0, 0)


def test_bns_final_accuracy_is_given_under_both_inference_rules(comparison, content):
    for variant, outcome in comparison.tuned.items():
        section = content[variant]
        # Algorithm 2: the saved models' own scores
        test_accuracies = [scores.accuracy for scores in outcome.test.values()]
        assert section["test_accuracy"]["mean"] == pytest.approx(np.mean(test_accuracies))
        train_accuracy = np.mean([scores.accuracy for scores in outcome.train.values()])
        assert section["train_test_gap"] == pytest.approx(train_accuracy - np.mean(test_accuracies))
        # moving averages: the history's last evaluation
        last = [synthetic_results.accuracy_curve(variant, seed)[-1] for seed in SEEDS]
        assert section["test_accuracy_moving_average"] == pytest.approx(np.mean(last))
    # the synthetic histories and models disagree on purpose, so mixing the two up cannot pass
    assert content["bn"]["test_accuracy_moving_average"] != pytest.approx(content["bn"]["test_accuracy"]["mean"])


def test_the_robustness_map_has_one_entry_per_cell_with_both_means_and_the_paired_difference(comparison, content):
    grid = content["robustness_map"]
    assert list(grid) == ["init_std_0.1", "init_std_1"]
    for i, init_std in enumerate(SWEEP_INIT_STDS):
        row = grid[f"init_std_{init_std:g}"]
        assert list(row) == ["lr_0.1", "lr_1", "lr_10"]
        for j, lr in enumerate(SWEEP_RATES):
            cell = row[f"lr_{lr:g}"]
            means = {v: synthetic_results.sweep_final_accuracy(v)[:, i, j] for v in VARIANTS}
            assert cell["vanilla"] == pytest.approx(means["vanilla"].mean())
            assert cell["bn"] == pytest.approx(means["bn"].mean())
            assert cell["difference"] == pytest.approx(cell["bn"] - cell["vanilla"])
            assert cell["ci_low"] <= cell["difference"] <= cell["ci_high"]
            difference = comparison.cells[i * len(SWEEP_RATES) + j].difference
            assert (cell["difference"], cell["ci_low"], cell["ci_high"]) == (
                difference.effect, difference.ci_low, difference.ci_high
            )  # fmt: skip


def test_the_horizon_check_compares_each_tuned_rate_with_the_best_swept_rate(content):
    horizon = content["horizon"]
    assert list(horizon) == list(VARIANTS)
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


# --- written and read back -----------------------------------------------------------------------------------


def test_the_file_reads_back_as_it_was_built(built, metrics_file):
    assert Metrics.read(metrics_file) == built
    assert json.loads(metrics_file.read_text(), parse_constant=pytest.fail) == built.model_dump()


def test_each_accuracy_target_is_its_own_key_in_the_file_and_one_mapping_in_code(built, metrics_file):
    written = json.loads(metrics_file.read_text())["bn"]
    assert [key for key in written if key.startswith("steps_to")] == ["steps_to_90", "steps_to_95", "steps_to_99"]
    steps_to = Metrics.read(metrics_file).bn.steps_to
    assert list(steps_to) == ["90", "95", "99"]
    assert steps_to["95"].model_dump() == written["steps_to_95"] == built.bn.steps_to["95"].model_dump()


# --- printed for a person ------------------------------------------------------------------------------------


def _printed(path) -> list[str]:
    completed = subprocess.run([sys.executable, "-m", "src.metrics", str(path)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def test_every_line_fits_120_columns_and_every_claim_and_cell_is_there(metrics_file):
    lines = _printed(metrics_file)
    assert max(len(line) for line in lines) <= metrics.WIDTH
    content = json.loads(metrics_file.read_text())
    for key, claim in content["claims"].items():
        (line,) = [line for line in lines if line.startswith(key)]
        assert claim["verdict"] in line
    header = next(index for index, line in enumerate(lines) if line.startswith("init std / lr"))
    map_rows = [line.split() for line in lines[header + 1 :]]
    assert [row[0] for row in map_rows] == [key.removeprefix("init_std_") for key in content["robustness_map"]]
    assert [len(row) - 1 for row in map_rows] == [len(cells) for cells in content["robustness_map"].values()]


def test_the_terminal_writes_each_effect_and_interval_as_the_report_does(built, comparison):
    lines = metrics.claims_table(built.claims)
    for claim in comparison.claims:
        (line,) = [line for line in lines if line.startswith(claim.key)]
        effect, interval = formats.FILTERS["effect"](claim), formats.FILTERS["interval"](claim)
        assert line.endswith(f" {effect}  {interval}") and f" {claim.verdict} " in line


def test_the_variants_table_writes_every_target_and_a_missing_number_as_n_a(built):
    rows = {row[:44].strip(): row[44:].split() for row in metrics.variants_table(built)[2:]}
    assert rows["steps to 99 % (median of seeds)"] == ["not", "reached", "not", "reached"]
    assert rows["steps to 95 % (median of seeds)"] == ["800", "300"]
    assert rows["learning rate (tuned)"] == ["0.5", "5"]
    no_loss = built.model_copy(update={"bn": built.bn.model_copy(update={"test_loss_mean": None})})
    rows = {row[:44].strip(): row[44:].split() for row in metrics.variants_table(no_loss)[2:]}
    assert rows["final test loss"][1] == "n/a"


def test_a_cell_is_starred_only_when_its_interval_excludes_zero():
    def cell(difference, low, high):
        return MapCellMetrics(vanilla=0.9, bn=0.9 + difference, difference=difference, ci_low=low, ci_high=high)

    grid = {"init_std_0.1": {"lr_1": cell(0.02, 0.01, 0.03), "lr_10": cell(0.02, -0.01, 0.05),
                             "lr_100": cell(-0.04, -0.06, -0.02), "lr_1000": cell(0.01, None, None)}}  # fmt: skip
    (row,) = metrics.map_table(grid)[2:]
    assert row.split() == ["0.1", "+2.0*", "+2.0", "-4.0*", "+1.0"]


def user_error(path) -> str:
    """The one line `python -m src.metrics path` prints for a bad metrics file, with exit status 2 and no output."""
    completed = subprocess.run([sys.executable, "-m", "src.metrics", str(path)], capture_output=True, text=True)
    assert completed.returncode == 2 and completed.stdout == "", completed.stderr
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), completed.stderr
    return lines[0]


def test_a_metrics_file_of_another_shape_is_one_line_naming_what_is_missing(tmp_path):
    old = {"claims": {"higher_accuracy": {"verdict": "holds", "effect": 0.002, "ci_low": 0.001, "ci_high": 0.003}}}
    (tmp_path / "metrics.json").write_text(json.dumps(old))  # as written before claims carried their scale
    line = user_error(tmp_path / "metrics.json")
    assert "missing key 'claims.higher_accuracy.scale'" in line and "missing key 'vanilla'" in line
    assert line.endswith("re-run `dvc repro evaluate` to rewrite it")


def test_a_missing_file_is_one_line(tmp_path):
    assert "no such file (run `dvc repro evaluate` first)" in user_error(tmp_path / "none.json")


@pytest.mark.parametrize("content", ["{not json", ""])
def test_a_file_that_is_not_json_is_one_line(tmp_path, content):
    (tmp_path / "metrics.json").write_text(content)
    assert "not valid JSON" in user_error(tmp_path / "metrics.json")


def test_json_that_is_not_a_mapping_is_one_line(tmp_path):
    (tmp_path / "metrics.json").write_text("[1, 2]")
    assert "Input should be a valid dictionary" in user_error(tmp_path / "metrics.json")


def _leaves(tree):
    for value in tree.values():
        if isinstance(value, dict):
            yield from _leaves(value)
        else:
            yield value


def test_a_directory_in_place_of_the_file_is_one_line(tmp_path):
    assert "cannot be read (Is a directory)" in user_error(tmp_path)
