"""The evaluate stage: real scores of saved models, metrics with a fixed schema, and the stage end to end."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from pipeline import evaluate as stage
from src.cli import UsageError, report_user_errors
from src.config import VARIANTS, parse_params
from src.data import load_split
from src.evaluate import build_metrics, load_variant, read_history, read_trials, score
from src.models import build_model
from tests import synthetic, synthetic_results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY_KEYS = {"mean", "std", "ci_low", "ci_high"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory, repo_root) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("repo")
    return root, synthetic_results.write_results_tree(root, repo_root)


@pytest.fixture(scope="module")
def results(tree):
    root, raw = tree
    params = parse_params(raw)
    test = load_split(root / "data" / "processed", "test", torch.device("cpu"), binarize=True)
    train = load_split(root / "data" / "processed", "train", torch.device("cpu"), binarize=True)
    return {variant: load_variant(root, variant, params.model, test, train) for variant in VARIANTS}


@pytest.fixture(scope="module")
def metrics(results, tree):
    evaluate = parse_params(tree[1]).evaluate
    return build_metrics(results, evaluate.accuracy_targets, evaluate.confidence)


def test_a_model_is_scored_by_its_argmax_and_mean_cross_entropy(repo_root):
    from src.config import load_params

    model = build_model(load_params(repo_root / "params.yaml").model, "bn", [3], "cpu").eval()
    split = synthetic.split(120, seed=4)
    scores = score(model, split)
    with torch.no_grad():
        logits = model(split.images)[0]
    assert scores.accuracy == pytest.approx((logits.argmax(1) == split.labels).float().mean().item())
    assert scores.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, split.labels).item(), rel=1e-5)
    assert scores.confusion.sum() == 120
    assert scores.confusion.sum(axis=1).tolist() == torch.bincount(split.labels, minlength=10).tolist()
    assert np.nansum(scores.per_class_accuracy * scores.confusion.sum(axis=1)) == pytest.approx(
        np.trace(scores.confusion)
    )


def test_every_saved_seed_is_scored_on_both_splits(results):
    for result in results.values():
        assert sorted(result.test) == sorted(result.train) == synthetic_results.SEEDS
        assert all(scores.confusion.sum() == 200 for scores in result.test.values())
        assert all(scores.confusion.sum() == 300 for scores in result.train.values())


def test_history_is_read_into_one_curve_per_seed(results):
    curves = results["bn"].curves
    assert curves.seeds == synthetic_results.SEEDS
    assert curves.steps.tolist() == synthetic_results.STEPS.tolist()
    assert curves.accuracy[1] == pytest.approx(synthetic_results.accuracy_curve("bn", 1))


def test_the_metrics_have_a_fixed_schema_of_plain_numbers(metrics):
    variant_keys = {
        "lr", "n_seeds", "n_diverged", "test_accuracy", "test_loss_mean", "train_accuracy_mean", "train_loss_mean",
        "train_test_gap", "accuracy_auc", "steps_to_90", "steps_to_95", "steps_to_99", "sigmoid_input", "lr_search",
    }  # fmt: skip
    assert set(metrics) == {"vanilla", "bn", "comparison"}
    for variant in VARIANTS:
        section = metrics[variant]
        assert set(section) == variant_keys
        assert set(section["test_accuracy"]) == SUMMARY_KEYS
        assert set(section["steps_to_95"]) == {"median", "n_reached"}
        assert set(section["sigmoid_input"]) == {
            "reference_step", "median_shift_abs", "median_shift_relative", "spread_change_relative"
        }  # fmt: skip
        assert set(section["lr_search"]) == {
            "best_lr", "best_value", "max_usable_lr", "min_diverged_lr", "n_trials", "n_diverged"
        }  # fmt: skip
        assert isinstance(section["n_seeds"], int) and isinstance(section["steps_to_95"]["n_reached"], int)
    assert set(metrics["comparison"]) == {"steps_ratio_90", "steps_ratio_95", "steps_ratio_99", "accuracy_difference"}
    assert set(metrics["comparison"]["accuracy_difference"]) == {"mean", "ci_low", "ci_high", "p_value"}
    for leaf in _leaves(metrics):
        assert leaf is None or type(leaf) in (int, float)
    json.dumps(metrics, allow_nan=False)  # strict JSON: no NaN or Infinity


def test_the_metrics_follow_the_known_synthetic_outcome(metrics, results):
    vanilla, bn, comparison = metrics["vanilla"], metrics["bn"], metrics["comparison"]
    assert bn["steps_to_95"] == {"median": 300.0, "n_reached": 3}
    assert vanilla["steps_to_95"] == {"median": 800.0, "n_reached": 3}
    assert comparison["steps_ratio_95"] == pytest.approx(800 / 300)
    assert bn["steps_to_99"] == {"median": None, "n_reached": 0} and comparison["steps_ratio_99"] is None
    assert bn["accuracy_auc"] > vanilla["accuracy_auc"]
    assert vanilla["sigmoid_input"]["median_shift_abs"] > 0 == bn["sigmoid_input"]["median_shift_abs"]
    assert (vanilla["lr"], bn["lr"]) == (
        synthetic_results.LEARNING_RATES["vanilla"],
        synthetic_results.LEARNING_RATES["bn"],
    )
    assert vanilla["lr_search"] | {"best_value": None} == {
        "best_lr": 0.5, "best_value": None, "max_usable_lr": 0.5, "min_diverged_lr": 5.0, "n_trials": 6, "n_diverged": 3
    }  # fmt: skip
    assert (bn["lr_search"]["max_usable_lr"], bn["lr_search"]["min_diverged_lr"]) == (20.0, 50.0)
    # the final numbers are the saved models' own scores
    test_accuracies = [scores.accuracy for scores in results["bn"].test.values()]
    assert bn["test_accuracy"]["mean"] == pytest.approx(np.mean(test_accuracies))
    train_accuracy = np.mean([scores.accuracy for scores in results["bn"].train.values()])
    assert bn["train_test_gap"] == pytest.approx(train_accuracy - np.mean(test_accuracies))


def test_models_and_history_with_different_seeds_are_refused(tree, tmp_path):
    root, raw = tree
    history = read_history(root / "results" / "train" / "bn" / "history.csv")
    assert history.seeds == [0, 1, 2]
    models = tmp_path / "models" / "bn"
    models.mkdir(parents=True)
    for seed in (0, 1):
        (models / f"seed_{seed}.pt").write_bytes((root / "models" / "bn" / f"seed_{seed}.pt").read_bytes())
    (tmp_path / "results").symlink_to(root / "results")
    split = synthetic.split(20)
    with pytest.raises(UsageError, match=r"models/bn holds seeds \[0, 1\] but its history has seeds \[0, 1, 2\]"):
        load_variant(tmp_path, "bn", parse_params(raw).model, split, split)


def test_a_missing_input_is_named(tree, tmp_path):
    split = synthetic.split(20)
    with pytest.raises(UsageError, match=r"results/train/bn/history\.csv: no such file"):
        load_variant(tmp_path, "bn", parse_params(tree[1]).model, split, split)


def test_the_stage_writes_every_declared_output_and_one_mlflow_run(tmp_path, monkeypatch, repo_root, mlflow_store):
    synthetic_results.write_results_tree(tmp_path, repo_root)
    monkeypatch.chdir(tmp_path)
    stage.main([])

    metrics = json.loads(Path("results/metrics.json").read_text())
    assert set(metrics) == {"vanilla", "bn", "comparison"}
    for quantity in ("accuracy", "loss"):
        with open(f"results/plots/{quantity}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["step", "vanilla", "bn"]
        assert [int(row["step"]) for row in rows] == synthetic_results.STEPS.tolist()

    figures = sorted(Path("reports/figures").glob("*.png"))
    assert [path.name for path in figures] == sorted(stage.FIGURE_CAPTIONS)
    for path in figures:
        width, height = _png_size(path)
        assert path.stat().st_size > 10_000 and width >= 600 and height >= 400, path
    report = Path("reports/report.md").read_text()
    for name in stage.FIGURE_CAPTIONS:
        assert f"](figures/{name})" in report
    for claim in ("converges faster", "higher accuracy", "higher learning rate", "sigmoid-input distribution stable"):
        assert claim in report

    runs = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    assert [run.info.run_name for run in runs] == ["evaluate"]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "evaluate"
    assert run.data.metrics["comparison.steps_ratio_95"] == pytest.approx(800 / 300)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "reports")}
    assert {"reports/report.md", "reports/figures"} <= artifacts


def test_the_stage_reports_missing_inputs_in_one_line(tmp_path, monkeypatch, repo_root, capsys):
    (tmp_path / "params.yaml").write_text((repo_root / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_status:
        report_user_errors(lambda: stage.main([]))
    assert exit_status.value.code == 2
    assert capsys.readouterr().err.startswith("error: data/processed/test.npz: no such file")


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE and header[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def _leaves(tree):
    for value in tree.values():
        if isinstance(value, dict):
            yield from _leaves(value)
        else:
            yield value


def test_a_malformed_value_names_the_file(tmp_path):
    path = tmp_path / "trials.csv"
    path.write_text("number,lr,value,state,diverged\n0,fast,0.9,COMPLETE,False\n")
    with pytest.raises(UsageError, match=r"trials\.csv: malformed value \(could not convert string to float: 'fast'\)"):
        read_trials(path)


def test_a_csv_missing_a_column_says_which_and_what_is_expected(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("step,seed,test_accuracy\n0,0,0.1\n")
    with pytest.raises(UsageError, match=r"missing column\(s\) test_loss, diverged; expected step,seed,test_accuracy,"):
        read_history(path)
