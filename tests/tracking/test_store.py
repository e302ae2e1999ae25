"""The MLflow conventions every stage shares: every run lands in the project's one store (also from DVC's temporary
experiment workspaces), tagged with its DVC experiment; an unreachable tracking server is one line within seconds; the
experiment opens in the model-training view, workers may start together into one fresh store, and the commit tag says
whether the code and params differ from the commit, not whether DVC is rewriting its outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pytest

from src import paths
from src.errors import StudyError
from src.tracking import runs as tracking
from src.tracking.store import HTTP_BOUNDS, configure, members_experiment
from tests import synthetic
from tests.processes import free_port, stage_env, write_params


def test_the_experiment_is_tagged_for_mlflows_model_training_view(mlflow_store):
    experiment_id = configure("some-study")
    tags = mlflow.MlflowClient().get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


BASELINE = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def temporary_workspace(tmp_path, monkeypatch, _migrated_mlflow_store) -> tuple[Path, Path]:
    """A project with a store, and a stage running as `dvc exp run --temp` runs it: in a copy of the project under
    .dvc/tmp/exps/, with DVC's variables set and no MLFLOW_TRACKING_URI; (project root, copy)."""
    root, copy = tmp_path / "project", tmp_path / "project" / ".dvc" / "tmp" / "exps" / "tmpk2x9"
    copy.mkdir(parents=True)
    shutil.copyfile(_migrated_mlflow_store, root / paths.MLFLOW_STORE)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name, value in {"DVC_ROOT": str(root), "DVC_EXP_NAME": "quick-fox", "DVC_EXP_BASELINE_REV": BASELINE}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(copy)
    return root, copy


def test_a_stage_in_a_temporary_experiment_workspace_logs_into_the_projects_store(temporary_workspace):
    root, copy = temporary_workspace
    experiment_id = configure("bn-mnist")
    (copy / "model.pt").write_text("weights")
    with tracking.parent_run("train-bn", tags={"stage": "train"}, params={"train": {"steps": 5}}):
        children = tracking.MemberRuns([tracking.Member("train-bn-seed0", {"seed": "0"}, {"seed": 0})])
        tracking.log_artifact(children.run_ids[0], copy / "model.pt")

    store = mlflow.MlflowClient(f"sqlite:///{root / paths.MLFLOW_STORE}")
    runs = store.search_runs([experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["train-bn", "train-bn-seed0"]
    for run in runs:
        assert run.data.tags[tracking.EXPERIMENT_NAME_TAG] == "quick-fox"
        assert run.data.tags[tracking.EXPERIMENT_BASELINE_TAG] == BASELINE
    # MLflow's layout at the root: mlruns/<experiment id>/<run id>/artifacts
    assert store.get_experiment(experiment_id).artifact_location == str(root / "mlruns" / experiment_id)
    assert (root / "mlruns" / experiment_id / children.run_ids[0] / "artifacts" / "model.pt").read_text() == "weights"
    assert sorted(path.name for path in copy.iterdir()) == ["model.pt"], "nothing of the store in the copy"


def test_the_member_runs_of_tune_sweep_and_edge_get_an_experiment_each_beside_the_studys(temporary_workspace):
    root, _ = temporary_workspace
    main = configure("bn-mnist")
    made = {stage: members_experiment("bn-mnist", stage) for stage in ("tune", "train", "sweep", "edge")}

    assert made["train"] == main, "train@'s seed runs, with their models, stay beside their stage run"
    client = mlflow.MlflowClient()
    for stage in ("tune", "sweep", "edge"):
        experiment = client.get_experiment(made[stage])
        assert experiment.name == f"bn-mnist-{stage}"
        assert experiment.artifact_location == str(root / "mlruns" / made[stage])
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert members_experiment("bn-mnist", "sweep") == made["sweep"], "made once"


def test_configure_closes_the_member_runs_a_dead_process_left_running_in_their_own_experiment(mlflow_store):
    configure("bn-mnist")
    sweep = members_experiment("bn-mnist", "sweep")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    client = mlflow.MlflowClient()
    left = client.create_run(sweep, tags={**tracking.process_tags(), "pid": dead.stdout.strip()}).info.run_id
    alive = client.create_run(sweep, tags=tracking.process_tags()).info.run_id

    configure("bn-mnist")
    assert client.get_run(left).info.status == "KILLED"
    assert client.get_run(alive).info.status == "RUNNING", "a live process's run is left alone"


def test_outside_an_experiment_the_runs_say_workspace_and_the_store_is_the_working_directorys(
    tmp_path, monkeypatch, _migrated_mlflow_store
):
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(name, raising=False)
    shutil.copyfile(_migrated_mlflow_store, tmp_path / paths.MLFLOW_STORE)
    monkeypatch.chdir(tmp_path)
    configure("bn-mnist")
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / paths.MLFLOW_STORE}"
    assert tracking.experiment_tags() == {tracking.EXPERIMENT_NAME_TAG: "workspace"}


def test_mlflow_tracking_uri_still_chooses_the_store(temporary_workspace, tmp_path, monkeypatch, mlflow_store):
    root, _ = temporary_workspace
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    configure("bn-mnist")
    assert mlflow.get_tracking_uri() == mlflow_store
    assert not (root / "mlruns").exists()


def test_an_unreachable_tracking_server_is_one_line_within_seconds_with_its_password_hidden(tmp_path, repo_root):
    synthetic.write_processed(tmp_path / "data" / "processed", {"train": 600, "val": 200})
    write_params(tmp_path, lambda raw: raw["tune"].update(storage="sqlite:///optuna.db"))
    address = f"127.0.0.1:{free_port()}"
    uri = f"http://user:s3cret@{address}"
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "src.tune", "--variant", "bn", "--trials", "2", "--steps", "50"],
        cwd=tmp_path,
        env=stage_env(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - started

    assert completed.returncode == 2, completed.stderr[-2000:]
    assert completed.stderr.strip().splitlines() == [
        f"error: tracking server http://user:***@{address}: cannot connect ([Errno 111] Connection refused)"
    ]
    assert seconds < 30, f"{seconds:.0f} s: MLflow's own retries were not cut short"


class _NotMlflow(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def test_a_web_server_that_is_not_mlflow_is_refused_in_one_line_and_mlflows_retries_are_bounded(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_port}/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # a user's own setting stays
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    try:
        with pytest.raises(StudyError) as refused:
            configure("bn-mnist")
    finally:
        server.shutdown()
        server.server_close()
    assert str(refused.value) == f"tracking server {uri}: not an MLflow server (GET /mlflow/health: HTTP 404)"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == HTTP_BOUNDS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


# Each starter imports everything, then waits for the go file: they call `configure` within milliseconds of each other
STARTER = """
import pathlib, sys, time
from src.tracking.store import configure
pathlib.Path(sys.argv[1] + ".ready").touch()
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.001)
print(configure("race"))
"""


STARTERS = 3


def start_together(tracking_uri: str, directory: Path) -> list[subprocess.CompletedProcess]:
    """STARTERS processes calling `configure` at the same moment on `tracking_uri`; their results."""
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
