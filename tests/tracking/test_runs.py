"""The runs every stage makes: the commit tag says whether the code and params differ from the commit, not whether
DVC is rewriting its outputs; a member run has the context tags MLflow gives a run it starts, and may live in another
experiment than its stage run; a stage run logs MLflow's system metrics when asked."""

from __future__ import annotations

import subprocess
import sys
import time

import mlflow
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from src.tracking import runs as tracking
from src.tracking import store
from tests.processes import stage_env


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


# A stage as `python -m pipeline.<stage>` runs it: MLflow reads the source and the git commit off the main file
STAGE = """
from src.tracking import runs, store
store.configure("bn-mnist")
with runs.parent_run("train-bn", tags={"stage": "train"}, params={}):
    runs.MemberRuns([runs.Member("train-bn-seed0", {"seed": "0"}, {"seed": 0})])
"""


def test_a_member_run_has_the_context_tags_mlflow_gives_its_stage_run_and_the_projects_own(repo, mlflow_store):
    (repo / "stage.py").write_text(STAGE)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "stage.py"], cwd=repo, env=stage_env(), check=True, capture_output=True)

    client = mlflow.MlflowClient(mlflow_store)
    (parent, member) = sorted(
        client.search_runs([client.get_experiment_by_name("bn-mnist").experiment_id]),
        key=lambda run: MLFLOW_PARENT_RUN_ID in run.data.tags,
    )
    context = {key for key in parent.data.tags if key.startswith("mlflow.source.") or key == "mlflow.user"}
    assert {"mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit", "mlflow.user"} <= context
    assert {key: member.data.tags.get(key) for key in context} == {key: parent.data.tags[key] for key in context}
    assert member.data.tags["mlflow.source.git.commit"] == member.data.tags["git_commit"] == head
    for own in ("host", "pid", tracking.EXPERIMENT_NAME_TAG, "seed"):
        assert member.data.tags[own] == {"seed": "0"}.get(own, parent.data.tags.get(own)), own
    assert member.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id


def test_member_runs_in_an_experiment_of_their_own_stay_children_of_the_stage_run_which_names_it(mlflow_store):
    main = store.configure("bn-mnist")
    apart = store.members_experiment("bn-mnist", "sweep")
    members = [tracking.Member(f"sweep-bn-seed{seed}", {"seed": str(seed)}, {"seed": seed}) for seed in (0, 1)]
    with tracking.parent_run("sweep-bn", tags={"stage": "sweep"}, params={}) as parent:
        made = tracking.MemberRuns(members, experiment_id=apart)

    client = mlflow.MlflowClient()
    assert [run.info.run_id for run in client.search_runs([main])] == [parent]
    children = client.search_runs([apart])
    assert sorted(run.info.run_id for run in children) == sorted(made.run_ids)
    assert {run.data.tags[MLFLOW_PARENT_RUN_ID] for run in children} == {parent}
    assert client.get_run(parent).data.tags[tracking.MEMBERS_EXPERIMENT_TAG] == "bn-mnist-sweep"


def test_a_stage_run_logs_mlflows_system_metrics_only_when_asked_and_resumes_their_steps(
    mlflow_store, monkeypatch, capfd
):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    store.configure("bn-mnist")
    logged = {}
    for system_metrics in (True, False):
        with tracking.parent_run("train-bn", tags={}, params={}, system_metrics=system_metrics) as run_id:
            time.sleep(0.5)
        logged[system_metrics] = run_id
    with tracking.parent_run("train-bn", tags={}, params={}, run_id=logged[True], system_metrics=True):
        time.sleep(0.5)

    client = mlflow.MlflowClient()
    on, off = (client.get_run(logged[flag]).data.metrics for flag in (True, False))
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(on)
    assert not [name for name in off if name.startswith("system/")]
    steps = [point.step for point in client.get_metric_history(logged[True], "system/cpu_utilization_percentage")]
    assert steps == list(range(len(steps))) and len(steps) >= 2, "the resumed run continues the steps"
    assert "mlflow.system_metrics" not in capfd.readouterr().err, "MLflow's start and stop lines reach stderr"
