"""The MLflow conventions every stage shares: the experiment opens in the model-training view, workers may start
together into one fresh store, and the commit tag says whether the code and params differ from the commit, not
whether DVC is rewriting its outputs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from src import tracking
from tests.processes import stage_env


def test_the_experiment_is_tagged_for_mlflows_model_training_view(mlflow_store):
    experiment_id = tracking.configure("some-study")
    tags = mlflow.MlflowClient().get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository shaped like this one, everything committed."""
    for path in ("src/engine.py", "pipeline/train.py", "params.yaml", "dvc.lock", "results/metrics.json", "README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("v1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_outputs_dvc_rewrites_while_the_stages_run_leave_the_commit_clean(repo):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    for output in ("dvc.lock", "results/metrics.json", "README.md"):
        (repo / output).write_text("v2\n")
    (repo / "results" / "new.csv").write_text("new\n")
    assert tracking.git_commit() == head


@pytest.mark.parametrize("change", ["src/engine.py", "pipeline/train.py", "params.yaml", "src/new_module.py"])
def test_a_change_to_code_or_params_marks_the_commit_dirty(repo, change):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (repo / change).write_text("v2\n")
    assert tracking.git_commit() == f"{head}-dirty"


def test_outside_git_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.git_commit() == "unknown"


# Each starter imports everything, then waits for the go file: they call `configure` within milliseconds of each other
STARTER = """
import pathlib, sys, time
from src import tracking
pathlib.Path(sys.argv[1] + ".ready").touch()
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.001)
print(tracking.configure("race"))
"""
STARTERS = 3


def start_together(tracking_uri: str, directory: Path) -> list[subprocess.CompletedProcess]:
    """STARTERS processes calling `tracking.configure` at the same moment on `tracking_uri`; their results."""
    go = directory / "go"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(directory / f"starter{i}"), str(go)],
            cwd=directory,
            env=stage_env(MLFLOW_TRACKING_URI=tracking_uri),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(STARTERS)
    ]
    deadline = time.monotonic() + 120
    while not all((directory / f"starter{i}.ready").exists() for i in range(STARTERS)):
        assert time.monotonic() < deadline, "the starters did not get ready"
        time.sleep(0.01)
    go.touch()
    return [
        subprocess.CompletedProcess(s.args, s.wait(timeout=120), s.stdout.read(), s.stderr.read()) for s in starters
    ]


# Without the lock every round of three failed here inside MLflow's table creation ("duplicate column name: step",
# alembic's "expected to match one row", "table ... already exists") or on the experiment tag (IntegrityError).
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize("round_", range(4))
def test_workers_started_together_into_a_fresh_store_all_start(tmp_path, database, round_, request):
    if database == "sqlite":
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    else:
        uri = request.getfixturevalue("new_postgres_database")(f"race{round_}")
    finished = start_together(uri, tmp_path)
    failures = [f"exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}" for p in finished if p.returncode]
    assert not failures, failures
    assert len({p.stdout.strip() for p in finished}) == 1, "every starter got the same experiment"
    experiment = mlflow.MlflowClient(tracking_uri=uri).get_experiment_by_name("race")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
