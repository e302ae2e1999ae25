"""Stage train@variant writes loadable models, histories and metrics, and every seed is a run in MLflow."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest
import torch
import yaml

from pipeline import train as train_stage
from src.config import load_params
from src.data.splits import load_split
from src.engine.network import load_member
from src.engine.scoring import score_members
from src.errors import StudyError
from src.tracking.store import check_server
from tests import synthetic
from tests.processes import free_port

STEPS, EVAL_EVERY, SEEDS, UNITS = 100, 50, 2, 2


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch, mlflow_store):
    """A tiny project in tmp_path: the repository's params with a short schedule, synthetic processed data."""
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["train"].update(
        steps=STEPS,
        eval_every=EVAL_EVERY,
        evals_per_decade=0,
        seeds=SEEDS,
        tracked_units=UNITS,
        percentile_examples=50,
        device="cpu",
    )
    raw["model"]["population_batches"] = 5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    synthetic.write_processed(tmp_path / "data" / "processed")
    synthetic.write_tuned(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_the_stage_writes_every_declared_output(project, variant):
    train_stage.main(["--variant", variant])

    params = load_params(project / "params.yaml")
    for seed in range(SEEDS):
        model = load_member(project / "models" / variant / f"seed_{seed}.pt", params.model, variant, "cpu")
        assert model.members == 1
    history = _rows(project / "results" / "train" / variant / "history.csv")
    assert len(history) == 3 * SEEDS  # steps 0, 50, 100 for each seed
    assert {row["step"] for row in history} == {"0", "50", "100"}
    sigmoid_inputs = _rows(project / "results" / "train" / variant / "sigmoid_inputs.csv")
    assert len(sigmoid_inputs) == 3 * SEEDS * UNITS
    assert list(sigmoid_inputs[0]) == ["step", "seed", "unit", "p15", "p50", "p85"]
    summary = json.loads((project / "results" / "train" / variant / "summary.json").read_text())
    assert summary["lr_source"] == "tune" and summary["lr"] == {"vanilla": 0.5, "bn": 2.0}[variant]
    # the final accuracy is the saved model's (BN: Algorithm 2), the history's last point BN's moving averages
    for seed, accuracy in zip(range(SEEDS), summary["final_test_accuracy"], strict=True):
        model = load_member(project / "models" / variant / f"seed_{seed}.pt", params.model, variant, "cpu")
        test = load_split(project / "data" / "processed", "test", torch.device("cpu"), params.data.binarize)
        assert accuracy == pytest.approx(score_members(model, test)[0].item(), abs=1e-6)
    last = [float(row["test_accuracy"]) for row in history if row["step"] == str(STEPS)]
    assert summary["final_test_accuracy_mean"] == pytest.approx(sum(summary["final_test_accuracy"]) / SEEDS)
    assert summary["final_test_accuracy_mean"] > 0.5 and min(last) > 0.5  # chance is 0.1
    assert "wall_time_s" not in summary, "the summary is an output that must reproduce bit for bit"


def test_the_stage_trains_at_the_tuned_learning_rate(project):
    synthetic.write_tuned(project, {"bn": 0.75})
    train_stage.main(["--variant", "bn"])
    summary = json.loads((project / "results" / "train" / "bn" / "summary.json").read_text())
    assert (summary["lr"], summary["lr_source"]) == (0.75, "tune")


def test_without_a_tuning_result_the_stage_says_which_stage_to_run(project):
    (project / "results" / "tune" / "bn" / "best.json").unlink()
    with pytest.raises(StudyError, match=r"results/tune/bn/best.json: no such file \(run `dvc repro tune@bn` first\)"):
        train_stage.main(["--variant", "bn"])
    assert not (project / "models").exists()


def test_every_seed_is_an_mlflow_run_under_one_parent(project):
    train_stage.main(["--variant", "bn"])

    runs = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == SEEDS
    assert parents[0].data.params["train.steps"] == str(STEPS)
    for child in children:
        assert child.info.status == "FINISHED"
        tags = child.data.tags
        assert tags["variant"] == "bn" and tags["stage"] == "train" and tags["device"] == "cpu"
        assert tags["git_commit"] and tags["seed"] in {"0", "1"}
        assert child.data.params["lr"] == "2.0" and child.data.params["seed"] == tags["seed"]
        history = mlflow.MlflowClient().get_metric_history(child.info.run_id, "test_accuracy")
        assert [metric.step for metric in history] == [0, 50, 100]
        assert "sigmoid_input_unit1_p85" in child.data.metrics
        assert [artifact.path for artifact in mlflow.MlflowClient().list_artifacts(child.info.run_id)] == [
            f"seed_{tags['seed']}.pt"
        ]
    (dataset_input,) = mlflow.get_run(parents[0].info.run_id).inputs.dataset_inputs
    assert dataset_input.dataset.name == "mnist-train" and dataset_input.dataset.digest


def test_mlflow_server_shows_the_runs_through_its_rest_api(project, mlflow_store):
    train_stage.main(["--variant", "vanilla"])
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            mlflow_store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/experiments/get-by-name?experiment_name=bn-mnist") as reply:
                    experiment = json.load(reply)["experiment"]
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not answer within 90 s")
                time.sleep(0.5)
        check_server(f"http://127.0.0.1:{port}")  # the probe `configure` makes of a tracking server passes
        request = urllib.request.Request(
            f"{base}/runs/search",
            data=json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as reply:
            runs = json.load(reply)["runs"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = sorted(run["info"]["run_name"] for run in runs)
    assert names == ["train-vanilla", "train-vanilla-seed0", "train-vanilla-seed1"]
    assert all(run["info"]["status"] == "FINISHED" for run in runs)


def test_an_unavailable_device_is_one_clear_error(project):
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["train"]["device"] = "mps" if torch.cuda.is_available() else "cuda"
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--variant", "bn"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(train_stage.__file__).rsplit("/pipeline/", 1)[0], "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("error: train.device: ")
    assert "is not available on this machine" in completed.stderr and "\n" not in completed.stderr.strip()
    assert not (project / "models").exists()


def test_with_no_terminal_the_stage_logs_its_progress_and_no_warning_a_user_cannot_act_on(project, repo_root):
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--variant", "vanilla"],
        cwd=project,
        capture_output=True,  # stderr is a pipe, as under `dvc repro > log`, CI, SLURM or nohup
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo_root), "PROGRESS_QUIET_S": "0"},  # it trains in seconds
        check=True,
    )
    lines = [line for line in completed.stderr.splitlines() if line.startswith("train@vanilla: ")]
    assert lines and lines[-1].startswith(f"train@vanilla: {STEPS} of {STEPS} steps (100%), ")
    assert all(re.search(r" member-steps/s, .*(left|unknown yet)", line) for line in lines), lines
    assert "interpreted in multiple ways" not in completed.stderr
    assert "\r" not in completed.stderr  # no bar drawn into a log
