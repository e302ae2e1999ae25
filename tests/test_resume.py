"""A training stage killed with SIGKILL resumes from its last checkpoint and ends bit for bit where an uninterrupted
run ends, with every step in MLflow exactly once; a checkpoint of other settings or a damaged one is refused."""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import time
from pathlib import Path

import mlflow
import pytest
import torch

from src import paths
from src.engine.schedule import eval_schedule
from tests import synthetic
from tests.processes import run, start, write_params

STEPS, CHECKPOINT_EVERY, EVAL_EVERY = 1500, 250, 250
SWEEP_STEPS, SWEEP_EVERY = 600, 100


def _small(raw: dict) -> None:
    raw["model"].update(population_batches=5)
    raw["train"].update(
        steps=STEPS,
        eval_every=EVAL_EVERY,
        evals_per_decade=5,
        checkpoint_every=CHECKPOINT_EVERY,
        seeds=2,
        tracked_units=2,
        percentile_examples=50,
        device="cpu",
    )
    raw["sweep"].update(
        lr_min=0.1,
        lr_max=10.0,
        lrs_per_decade=1,
        init_stds=[0.1, 1.0],
        seeds=2,
        steps=SWEEP_STEPS,
        eval_every=SWEEP_EVERY,
        evals_per_decade=5,
        checkpoint_every=SWEEP_EVERY,
    )
    raw["evaluate"]["figure1_lrs"] = [1.0]
    raw["edge"]["init_stds"] = [0.1]


def _project(directory: Path) -> Path:
    synthetic.write_processed(directory / "data" / "processed")
    synthetic.write_tuned(directory)
    write_params(directory, _small)
    return directory


def _outputs(project: Path, stage: str, variant: str) -> dict[str, str]:
    """SHA-256 of every file the stage writes."""
    tops = [project / "results" / stage / variant] + ([project / "models" / variant] if stage == "train" else [])
    files = sorted(path for top in tops for path in top.rglob("*") if path.is_file())
    assert files, f"{stage}@{variant} wrote nothing"
    return {str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def _kill_after_a_checkpoint(project: Path, module: str, variant: str, store: str) -> float:
    """Start the stage, SIGKILL it at a random moment after its first checkpoint; return that moment's delay."""
    checkpoint = project / paths.CHECKPOINTS / f"{module.split('.')[-1]}-{variant}.pt"
    process = start(module, "--variant", variant, cwd=project, MLFLOW_TRACKING_URI=store)
    deadline = time.monotonic() + 180
    while not checkpoint.exists():
        assert process.poll() is None, f"the stage ended before its first checkpoint: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.05)
    delay = random.uniform(0.0, 1.5)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the stage finished before it could be killed: lower the delay"
    return delay


def _steps_logged(store: str, stage: str) -> dict[str, list[int]]:
    """Child run name -> the steps of its test_accuracy history, as MLflow holds them (duplicates kept)."""
    client = mlflow.MlflowClient(store)
    runs = client.search_runs(_study_experiments(client), f"tags.stage = '{stage}'")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return {
        r.info.run_name: sorted(m.step for m in client.get_metric_history(r.info.run_id, "test_accuracy"))
        for r in children
    }


def _study_experiments(client: mlflow.MlflowClient) -> list[str]:
    """bn-mnist and the experiments of the member runs kept apart from it (bn-mnist-sweep, ...)."""
    return [experiment.experiment_id for experiment in client.search_experiments(filter_string="name LIKE 'bn-mnist%'")]


@pytest.mark.parametrize(("module", "stage"), [("pipeline.train", "train"), ("pipeline.sweep", "sweep")])
def test_a_stage_killed_after_a_checkpoint_resumes_bit_for_bit(tmp_path, _migrated_mlflow_store, module, stage):
    stores = {}
    for name in ("whole", "killed"):
        stores[name] = tmp_path / f"{name}.db"
        stores[name].write_bytes(_migrated_mlflow_store.read_bytes())
    whole, killed = _project(tmp_path / "whole"), _project(tmp_path / "killed")
    whole_store, killed_store = (f"sqlite:///{stores[name]}" for name in ("whole", "killed"))

    uninterrupted = run(module, "--variant", "bn", cwd=whole, MLFLOW_TRACKING_URI=whole_store)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    delay = _kill_after_a_checkpoint(killed, module, "bn", killed_store)
    resumed = run(module, "--variant", "bn", cwd=killed, MLFLOW_TRACKING_URI=killed_store)

    assert resumed.returncode == 0, resumed.stderr
    assert f"{stage}-bn: resumed from step" in resumed.stderr, f"killed {delay:.2f} s after the first checkpoint"
    assert _outputs(killed, stage, "bn") == _outputs(whole, stage, "bn"), f"killed {delay:.2f} s after a checkpoint"
    assert not (killed / paths.CHECKPOINTS / f"{stage}-bn.pt").exists(), "the checkpoint outlived the outputs"
    steps = list(
        eval_schedule(STEPS, EVAL_EVERY, 5) if stage == "train" else eval_schedule(SWEEP_STEPS, SWEEP_EVERY, 5)
    )
    logged = _steps_logged(killed_store, stage)
    assert logged and all(member_steps == steps for member_steps in logged.values()), "a step lost or logged twice"
    client = mlflow.MlflowClient(killed_store)
    statuses = [r.info.status for r in client.search_runs(_study_experiments(client))]
    assert statuses.count("FINISHED") == len(statuses), "the killed attempt left a run that is not FINISHED"
    assert len(statuses) == 1 + len(logged), "the resumed stage continued the killed attempt's runs, made no new ones"


@pytest.fixture(scope="module")
def killed_once(tmp_path_factory, _migrated_mlflow_store) -> tuple[Path, Path]:
    """A project whose train@bn was killed after it wrote a checkpoint, and its MLflow store."""
    root = tmp_path_factory.mktemp("killed-once")
    store = root / "mlflow.db"
    shutil.copyfile(_migrated_mlflow_store, store)
    project = _project(root / "project")
    _kill_after_a_checkpoint(project, "pipeline.train", "bn", f"sqlite:///{store}")
    return project, store


@pytest.fixture
def checkpointed(killed_once, tmp_path, monkeypatch) -> Path:
    """A private copy of `killed_once`, its store as MLFLOW_TRACKING_URI."""
    project, store = killed_once
    shutil.copyfile(store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return Path(shutil.copytree(project, tmp_path / "project"))


def _longer(raw: dict) -> None:
    _small(raw)
    raw["train"]["steps"] = STEPS + 500


def test_a_checkpoint_made_under_other_params_is_refused_with_the_reason(checkpointed):
    write_params(checkpointed, _longer)

    again = run("pipeline.train", "--variant", "bn", cwd=checkpointed)

    assert again.returncode == 0, again.stderr
    assert (
        f"checkpoint .checkpoints/train-bn.pt ignored: it was made under other settings "
        f"(params.train.steps: {STEPS} -> {STEPS + 500}); starting from step 0"
    ) in again.stderr
    assert "resumed" not in again.stderr


def test_a_checkpoint_made_by_other_code_is_refused_with_the_reason(checkpointed):
    path = checkpointed / paths.CHECKPOINTS / "train-bn.pt"
    saved = torch.load(path, weights_only=True)
    saved["identity"]["code_sha256"]["src/engine/trainer.py"] = "0" * 64  # as if it had changed since
    torch.save(saved, path)

    again = run("pipeline.train", "--variant", "bn", cwd=checkpointed)

    assert again.returncode == 0, again.stderr
    changed = "code_sha256.src/engine/trainer.py: 000000000000… ->"
    assert f"ignored: it was made under other settings ({changed}" in again.stderr
    assert "resumed" not in again.stderr


def test_a_checkpoint_whose_mlflow_runs_are_gone_is_refused(checkpointed, mlflow_store):
    # mlflow_store: a fresh, empty store in place of the one the killed attempt logged to
    again = run("pipeline.train", "--variant", "bn", cwd=checkpointed, MLFLOW_TRACKING_URI=mlflow_store)

    assert again.returncode == 0, again.stderr
    assert "ignored: its MLflow runs are not in this tracking store; starting from step 0" in again.stderr


def test_a_truncated_checkpoint_is_refused_without_a_traceback(checkpointed):
    path = checkpointed / paths.CHECKPOINTS / "train-bn.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    again = run("pipeline.train", "--variant", "bn", cwd=checkpointed)

    assert again.returncode == 0, again.stderr
    assert "checkpoint .checkpoints/train-bn.pt ignored: it cannot be read (" in again.stderr
    assert "Traceback" not in again.stderr and "resumed" not in again.stderr
    assert (checkpointed / "results" / "train" / "bn" / "summary.json").exists()
