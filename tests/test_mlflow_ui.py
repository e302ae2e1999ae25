"""What a user sees in `mlflow ui`: the stages' runs, rendered by a real MLflow server in a real headless Chromium."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest

from pipeline import train as train_stage
from tests import synthetic

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# what the machine's closed network needs: no background connections, no sandbox as root, a fresh profile
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def served(tmp_path, repo_root, monkeypatch, mlflow_store, one_torch_thread):
    """A tiny train@bn run in a fresh store, and an `mlflow server` on 127.0.0.1 over it; yields (url, experiment)."""
    synthetic.write_train_project(tmp_path, repo_root, seeds=2, population_batches=2)
    monkeypatch.chdir(tmp_path)
    train_stage.main(["--variant", "bn"])
    experiment = mlflow.MlflowClient().get_experiment_by_name("bn-mnist")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
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
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, server)
        yield url, experiment
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_healthy(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health") as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail("mlflow server did not answer /health within 120 s")
        time.sleep(0.5)


def rendered(url: str, profile) -> str:
    """The page's DOM after its scripts ran (Chromium's virtual time lets the app fetch and draw its data)."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (.ci/run does)")
    completed = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_the_runs_page_shows_the_stage_run_and_a_seed_run_shows_its_model(served, tmp_path):
    url, experiment = served
    experiment_page = f"{url}/#/experiments/{experiment.experiment_id}"
    runs_page = rendered(f"{experiment_page}?workflowType=machine_learning", tmp_path / "a")
    assert ">train-bn<" in runs_page, "the stage's run is not in the runs table"
    assert "Model training" in runs_page and ">Runs<" in runs_page

    (seed_run,) = mlflow.search_runs([experiment.experiment_id], "tags.seed = '1'", output_format="list")
    (logged,) = seed_run.outputs.model_outputs
    seed_page = rendered(f"{experiment_page}/runs/{seed_run.info.run_id}", tmp_path / "b")
    assert "train-bn-seed1" in seed_page, "the seed's run page does not show the run"
    assert "final_test_accuracy" in seed_page and "final_val_accuracy" in seed_page
    assert f'models/{logged.model_id}">model</a>' in seed_page, "the seed's logged model is not linked"

    registry_page = rendered(f"{url}/#/models/bn-mnist-bn", tmp_path / "c")
    assert '"#/models/bn-mnist-bn/versions/1">Version 1<' in registry_page
    assert "@&nbsp;champion" in registry_page, "the champion alias is not shown on the registered model"
