"""The evaluate stage end to end on the synthetic tree: every output dvc.yaml declares (results/headline.json the DVC
metrics file, results/metrics.json the whole comparison) and one MLflow run; a missing or mismatched input stops it
with one line, before it writes anything."""

from __future__ import annotations

import csv
import json
import shutil
import struct
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline import evaluate as stage
from src.cli import report_user_errors
from src.config import parse_params
from src.metrics import schema
from src.metrics.build import build
from src.report.figures import FIGURE_NAMES
from tests import synthetic_results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def expected_metrics(tree) -> dict:
    """metrics.json as the comparison of the tree builds it."""
    return build(synthetic_results.comparison_of(tree[0])).model_dump()


@pytest.fixture
def project(tree, tmp_path, monkeypatch, mlflow_store) -> Path:
    """A private copy of the tree, as the working directory, with its own MLflow store: a test may spoil it."""
    shutil.copytree(tree[0], tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_stage_writes_every_declared_output_and_one_mlflow_run(project, expected_metrics, repo_root, capsys):
    stage.main([])

    declared = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]["evaluate"]
    for output in (*declared["metrics"], *declared["outs"]):
        path = Path(next(iter(output)) if isinstance(output, dict) else output)
        assert path.is_file() or (path.is_dir() and any(path.iterdir())), f"dvc.yaml declares {path}: not written"
    # strict JSON (no NaN), and the comparison's metrics as built; the headline is theirs, in a few keys
    assert json.loads(Path("results/metrics.json").read_text(), parse_constant=pytest.fail) == expected_metrics
    headline = json.loads(Path("results/headline.json").read_text(), parse_constant=pytest.fail)
    assert headline == schema.Metrics.model_validate(expected_metrics).headline()
    assert [path["results/headline.json"] for path in declared["metrics"]] == [{"cache": False}]
    plots = {}
    for quantity in ("accuracy", "loss"):
        with open(f"results/plots/{quantity}.csv", newline="") as handle:
            plots[quantity] = rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["step", "vanilla", "bn"]
        assert [int(row["step"]) for row in rows] == synthetic_results.STEPS.tolist()
        assert all(row["vanilla"] and row["bn"] for row in rows)
    # the mean over seeds: the last accuracy point is BN's final accuracy under its moving averages
    last = float(plots["accuracy"][-1]["bn"])
    assert last == pytest.approx(expected_metrics["bn"]["test_accuracy_moving_average"], abs=1e-5)

    drawn = sorted(Path("reports/figures").glob("*"))
    assert [path.name for path in drawn] == sorted(f"{name}.png" for name in FIGURE_NAMES)
    for path in drawn:
        width, height = _png_size(path)
        assert path.stat().st_size > 10_000 and width >= 600 and height >= 400, path
    report = Path("reports/report.md").read_text()
    for name in FIGURE_NAMES:
        assert f"](figures/{name}.png)" in report

    runs = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    assert [run.info.run_name for run in runs] == ["evaluate"]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "evaluate"
    logged = run.data.metrics
    usable = expected_metrics["claims"]["higher_usable_lr_shared"]
    assert logged["claims.higher_usable_lr_shared.effect"] == pytest.approx(usable["effect"])
    assert logged["claims.higher_usable_lr_shared.p_adjusted"] == pytest.approx(usable["p_adjusted"])
    assert logged["robustness_map.grid.init_std_1.lr_10.did_not_train_bn"] == 1.0
    assert logged["robustness_map.better"] == 4 and logged["bn.steps_to_95.median"] == 300.0  # named as in the file
    assert "horizon.bn.within_seed_noise" not in logged  # a flag, not a number
    assert not [name for name in logged if name.endswith(".verdict") or name.startswith("specifications")]
    assert "evaluate_wall_time_s" in logged
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "reports")}
    assert {"reports/report.md", "reports/figures"} <= artifacts
    printed = capsys.readouterr().out
    verdicts = ", ".join(f"{key}: holds" for key in expected_metrics["claims"])
    assert printed.startswith(f"evaluate: {verdicts}; wrote results/metrics.json, reports/report.md")


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


def test_a_sweep_that_does_not_match_the_grid_of_params_stops_the_stage_with_one_line(
    project, tree, mlflow_store, capsys
):
    raw = tree[1]
    fewer_seeds = parse_params({**raw, "sweep": {**raw["sweep"], "seeds": 2}})
    shutil.rmtree(project / "results" / "sweep" / "bn")
    synthetic_results.write_sweep(project / "results" / "sweep" / "bn", fewer_seeds, "bn")
    _assert_stops_with_one_line(
        capsys, "error: results/sweep/bn/final.csv: no row for {'seed': 2, 'init_std': 0.1, 'lr': 0.1}; re-run"
    )
    _assert_nothing_written(project, mlflow_store)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (
            "results/train/vanilla/predictions.npz",
            "results/train/vanilla/predictions.npz: no such file (run `dvc repro train@vanilla` first)",
        ),
        (
            "results/sweep/bn/predictions.npz",
            "results/sweep/bn/predictions.npz: no such file (run `dvc repro sweep@bn` first)",
        ),
        ("results/edge/bn/final.csv", "results/edge/bn/final.csv: no such file (run the stage that writes it first"),
    ],
    ids=["train predictions", "sweep predictions", "edge results"],
)
def test_a_missing_prediction_or_edge_file_stops_the_stage_with_one_line_naming_it(
    project, mlflow_store, capsys, path, error
):
    (project / path).unlink()
    _assert_stops_with_one_line(capsys, f"error: {error}")
    _assert_nothing_written(project, mlflow_store)


def test_edge_results_for_other_members_than_the_sweep_calls_for_stop_the_stage_with_one_line(
    project, mlflow_store, capsys
):
    final = project / "results" / "edge" / "vanilla" / "final.csv"
    header, *rows = final.read_text().splitlines()
    final.write_text("\n".join([header, *rows[:-1]]) + "\n")  # one refined member short
    _assert_stops_with_one_line(
        capsys,
        "error: results/edge/vanilla/final.csv: not the members the sweep's results call for; re-run "
        "`dvc repro edge@vanilla`",
    )
    _assert_nothing_written(project, mlflow_store)


def _assert_stops_with_one_line(capsys, start: str) -> None:
    with pytest.raises(SystemExit) as exit_status:
        report_user_errors(lambda: stage.main([]))
    err = capsys.readouterr().err
    assert exit_status.value.code == 2
    assert err.startswith(start) and err.count("\n") == 1, err


def _assert_nothing_written(project: Path, mlflow_store: str) -> None:
    assert not (project / "results" / "metrics.json").exists() and not (project / "reports").exists()
    assert not (project / "results" / "headline.json").exists()
    assert not (project / "results" / "plots").exists()
    assert not mlflow.MlflowClient(mlflow_store).search_experiments(filter_string="name = 'bn-mnist'")


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE and header[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])
