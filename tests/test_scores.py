"""The evaluate stage: real scores of saved models, metrics with a fixed schema, and the stage end to end."""

from __future__ import annotations

import csv
import json
import math
import shutil
import struct
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from pipeline import evaluate as stage
from src.cli import report_user_errors
from src.comparison import FIGURE_NAMES
from src.config import VARIANTS, load_params, parse_params
from src.data import load_split
from src.errors import StudyError
from src.models import build_model
from src.results import read_history, read_trials
from src.scores import finite_or_none, load_variant, score
from tests import synthetic, synthetic_results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY_KEYS = {"mean", "std", "ci_low", "ci_high"}
CLAIM_KEYS = {"faster_convergence", "higher_accuracy", "higher_usable_lr", "stable_sigmoid_inputs", "robust_to_init"}


@pytest.fixture(scope="module")
def results(tree):
    root, raw = tree
    params = parse_params(raw)
    test = load_split(root / "data" / "processed", "test", torch.device("cpu"), binarize=True)
    train = load_split(root / "data" / "processed", "train", torch.device("cpu"), binarize=True)
    return {variant: load_variant(root, variant, params.model, test, train) for variant in VARIANTS}


@pytest.fixture(scope="module")
def metrics(tree) -> dict:
    return synthetic_results.comparison_of(tree[0]).metrics


@pytest.fixture
def project(tree, tmp_path, monkeypatch, mlflow_store) -> Path:
    """A private copy of the tree, as the working directory, with its own MLflow store: a test may spoil it."""
    shutil.copytree(tree[0], tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_model_is_scored_by_its_argmax_and_mean_cross_entropy(repo_root):
    model = build_model(load_params(repo_root / "params.yaml").model, "bn", [3], "cpu").eval()
    split = synthetic.split(120, seed=4)
    scores = score(model, split)
    with torch.no_grad():
        logits = model(split.images)[0]
    assert scores.accuracy == pytest.approx((logits.argmax(1) == split.labels).float().mean().item())
    assert scores.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, split.labels).item(), rel=1e-5)
    assert scores.confusion.sum() == 120
    assert scores.confusion.sum(axis=1).tolist() == torch.bincount(split.labels, minlength=10).tolist()
    assert np.trace(scores.confusion) == round(scores.accuracy * 120)


def test_every_saved_seed_is_scored_on_both_splits(results):
    for result in results.values():
        assert sorted(result.test) == sorted(result.train) == synthetic_results.SEEDS
        assert all(scores.confusion.sum() == 200 for scores in result.test.values())
        assert all(scores.confusion.sum() == 300 for scores in result.train.values())


def test_the_saved_models_are_scored_as_training_left_them(results, tree):
    # train@'s summary holds the trainer's own final test scores (BN under Algorithm 2): scoring the saved
    # models again must give the same numbers
    for variant, result in results.items():
        summary = json.loads((tree[0] / "results" / "train" / variant / "summary.json").read_text())
        scored = [result.test[seed].accuracy for seed in synthetic_results.SEEDS]
        assert scored == pytest.approx(summary["final_test_accuracy"], abs=1e-6)


def test_history_is_read_into_one_curve_per_seed(results):
    curves = results["bn"].curves
    assert curves.seeds == synthetic_results.SEEDS
    assert curves.steps.tolist() == synthetic_results.STEPS.tolist()
    assert curves.accuracy[1] == pytest.approx(synthetic_results.accuracy_curve("bn", 1))
    assert not curves.diverged.any()


def test_the_metrics_have_a_fixed_schema_of_plain_json_values(metrics):
    variant_keys = {
        "lr", "n_seeds", "n_diverged", "test_accuracy", "test_accuracy_moving_average", "test_loss_mean",
        "train_accuracy_mean", "train_loss_mean", "train_test_gap", "accuracy_auc", "steps_to_90", "steps_to_95",
        "steps_to_99", "sigmoid_input_drift", "lr_search",
    }  # fmt: skip
    assert list(metrics) == ["claims", "vanilla", "bn", "horizon", "robustness_map"]
    assert set(metrics["claims"]) == CLAIM_KEYS
    for claim in metrics["claims"].values():
        assert set(claim) == {"verdict", "statistic", "scale", "effect", "ci_low", "ci_high", "n"}
        assert claim["scale"] in {"ratio", "accuracy", "plain"}
        assert claim["verdict"] in {"holds", "contradicted", "not shown"} and isinstance(claim["n"], int)
    for variant in VARIANTS:
        section = metrics[variant]
        assert set(section) == variant_keys
        assert set(section["test_accuracy"]) == SUMMARY_KEYS
        assert set(section["steps_to_95"]) == {"median", "n_reached"}
        assert set(section["sigmoid_input_drift"]) == {"reference_step", "relative", "median_shift_abs"}
        assert set(section["lr_search"]) == {"best_lr", "best_value", "n_trials", "n_diverged"}
        assert isinstance(section["n_seeds"], int) and isinstance(section["steps_to_95"]["n_reached"], int)
    for check in metrics["horizon"].values():
        assert set(check) == {
            "tuned_lr", "nearest_swept_lr", "best_swept_lr", "shortfall", "ci_low", "ci_high", "within_seed_noise"
        }  # fmt: skip
    for leaf in _leaves(metrics):
        assert leaf is None or type(leaf) in (int, float, bool, str), leaf
    json.dumps(metrics, allow_nan=False)  # strict JSON: no NaN or Infinity


def test_a_number_json_cannot_spell_becomes_none_and_numpy_scalars_become_python_numbers():
    tree = {"a": math.nan, "b": {"c": np.float64(np.inf), "d": np.float32(0.5), "e": np.int64(3)}, "f": "holds"}
    assert finite_or_none(tree) == {"a": None, "b": {"c": None, "d": 0.5, "e": 3}, "f": "holds"}
    assert type(finite_or_none(tree)["b"]["e"]) is int and type(finite_or_none(tree)["b"]["d"]) is float


def test_the_variant_metrics_follow_the_known_synthetic_outcome(metrics):
    vanilla, bn = metrics["vanilla"], metrics["bn"]
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
    assert (vanilla["n_diverged"], bn["n_diverged"]) == (0, 0)


def test_bns_final_accuracy_is_given_under_both_inference_rules(metrics, results):
    for variant, result in results.items():
        section = metrics[variant]
        # Algorithm 2: the saved models' own scores
        test_accuracies = [scores.accuracy for scores in result.test.values()]
        assert section["test_accuracy"]["mean"] == pytest.approx(np.mean(test_accuracies))
        train_accuracy = np.mean([scores.accuracy for scores in result.train.values()])
        assert section["train_test_gap"] == pytest.approx(train_accuracy - np.mean(test_accuracies))
        # moving averages: the history's last evaluation
        last = [synthetic_results.accuracy_curve(variant, seed)[-1] for seed in synthetic_results.SEEDS]
        assert section["test_accuracy_moving_average"] == pytest.approx(np.mean(last))
    # the synthetic histories and models disagree on purpose, so mixing the two up cannot pass
    assert metrics["bn"]["test_accuracy_moving_average"] != pytest.approx(metrics["bn"]["test_accuracy"]["mean"])


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
    with pytest.raises(StudyError, match=r"models/bn holds seeds \[0, 1\] but its history has seeds \[0, 1, 2\]"):
        load_variant(tmp_path, "bn", parse_params(raw).model, split, split)


def test_a_missing_input_is_named(tree, tmp_path):
    split = synthetic.split(20)
    with pytest.raises(StudyError, match=r"results/train/bn/history\.csv: no such file"):
        load_variant(tmp_path, "bn", parse_params(tree[1]).model, split, split)


def test_a_malformed_value_names_the_file(tmp_path):
    path = tmp_path / "trials.csv"
    path.write_text("number,lr,value,state,diverged\n0,fast,0.9,COMPLETE,False\n")
    with pytest.raises(StudyError, match=r"trials\.csv: malformed value \(could not convert string to float: 'fast'\)"):
        read_trials(path)


def test_a_csv_missing_a_column_says_which_and_what_is_expected(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("step,seed,test_accuracy\n0,0,0.1\n")
    with pytest.raises(StudyError, match=r"missing column\(s\) test_loss, diverged; expected step,seed,test_accuracy,"):
        read_history(path)


def test_the_stage_writes_every_declared_output_and_one_mlflow_run(project, metrics, repo_root, capsys):
    stage.main([])

    declared = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]["evaluate"]
    for output in (*declared["metrics"], *declared["outs"]):
        path = Path(next(iter(output)) if isinstance(output, dict) else output)
        assert path.is_file() or (path.is_dir() and any(path.iterdir())), f"dvc.yaml declares {path}: not written"
    # strict JSON (no NaN), and the comparison's metrics as computed
    assert json.loads(Path("results/metrics.json").read_text(), parse_constant=pytest.fail) == metrics
    plots = {}
    for quantity in ("accuracy", "loss"):
        with open(f"results/plots/{quantity}.csv", newline="") as handle:
            plots[quantity] = rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["step", "vanilla", "bn"]
        assert [int(row["step"]) for row in rows] == synthetic_results.STEPS.tolist()
        assert all(row["vanilla"] and row["bn"] for row in rows)
    # the mean over seeds: the last accuracy point is BN's final accuracy under its moving averages
    last = float(plots["accuracy"][-1]["bn"])
    assert last == pytest.approx(metrics["bn"]["test_accuracy_moving_average"], abs=1e-5)

    figures = sorted(Path("reports/figures").glob("*"))
    assert [path.name for path in figures] == sorted(f"{name}.png" for name in FIGURE_NAMES)
    assert set(FIGURE_NAMES) == {
        "test_accuracy", "sigmoid_inputs", "robustness_map", "shared_rates", "lr_search", "confusion"
    }  # fmt: skip
    for path in figures:
        width, height = _png_size(path)
        assert path.stat().st_size > 10_000 and width >= 600 and height >= 400, path
    report = Path("reports/report.md").read_text()
    for name in FIGURE_NAMES:
        assert f"](figures/{name}.png)" in report

    runs = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    assert [run.info.run_name for run in runs] == ["evaluate"]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "evaluate"
    assert run.data.metrics["claims.higher_usable_lr.effect"] == pytest.approx(10)
    assert run.data.metrics["robustness_map.init_std_1.lr_10.bn"] == pytest.approx(0.955)
    assert "horizon.bn.within_seed_noise" not in run.data.metrics  # a flag, not a number
    assert "claims.faster_convergence.verdict" not in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "reports")}
    assert {"reports/report.md", "reports/figures"} <= artifacts
    printed = capsys.readouterr().out
    assert "evaluate: faster_convergence: holds, higher_accuracy: holds, higher_usable_lr: holds" in printed


def test_the_stage_reports_missing_inputs_in_one_line(tmp_path, monkeypatch, repo_root, capsys):
    (tmp_path / "params.yaml").write_text((repo_root / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_status:
        report_user_errors(lambda: stage.main([]))
    assert exit_status.value.code == 2
    assert capsys.readouterr().err.startswith("error: data/processed/test.npz: no such file")


def test_a_missing_sweep_file_stops_the_stage_with_one_line_naming_it(project, mlflow_store, capsys):
    (project / "results" / "sweep" / "vanilla" / "history.csv").unlink()
    _assert_stops_with_one_line(capsys, "error: results/sweep/vanilla/history.csv: no such file (run the stage")
    _assert_nothing_written(project, mlflow_store)


def test_sweeps_over_different_grids_stop_the_stage_with_one_line(project, tree, mlflow_store, capsys):
    raw = tree[1]
    fewer_seeds = parse_params({**raw, "sweep": {**raw["sweep"], "seeds": 2}})
    shutil.rmtree(project / "results" / "sweep" / "bn")
    synthetic_results.write_sweep(project / "results" / "sweep" / "bn", fewer_seeds, "bn")
    _assert_stops_with_one_line(capsys, "error: the vanilla and BN sweeps cover different grids or seeds")
    _assert_nothing_written(project, mlflow_store)


def _assert_stops_with_one_line(capsys, start: str) -> None:
    with pytest.raises(SystemExit) as exit_status:
        report_user_errors(lambda: stage.main([]))
    err = capsys.readouterr().err
    assert exit_status.value.code == 2
    assert err.startswith(start) and err.count("\n") == 1, err


def _assert_nothing_written(project: Path, mlflow_store: str) -> None:
    assert not (project / "results" / "metrics.json").exists() and not (project / "reports").exists()
    assert not mlflow.MlflowClient(mlflow_store).search_experiments(filter_string="name = 'bn-mnist'")


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
