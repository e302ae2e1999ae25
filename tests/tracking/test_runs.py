"""The MLflow conventions every stage shares: every run lands in the project's one store (also from DVC's temporary
experiment workspaces), tagged with its DVC experiment; an unreachable tracking server is one line within seconds; the
experiment opens in the model-training view, workers may start together into one fresh store, and the commit tag says
whether the code and params differ from the commit, not whether DVC is rewriting its outputs."""

from __future__ import annotations

import subprocess

import pytest

from src.tracking import runs as tracking


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository shaped like this one, everything committed."""
    for path in (
        "src/engine/trainer.py",
        "pipeline/train.py",
        "params.yaml",
        "dvc.lock",
        "results/metrics.json",
        "README.md",
    ):
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


@pytest.mark.parametrize("change", ["src/engine/trainer.py", "pipeline/train.py", "params.yaml", "src/new_module.py"])
def test_a_change_to_code_or_params_marks_the_commit_dirty(repo, change):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (repo / change).write_text("v2\n")
    assert tracking.git_commit() == f"{head}-dirty"


def test_outside_git_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.git_commit() == "unknown"
