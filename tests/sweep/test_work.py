"""The sweep stage and `python -m src.sweep --worker` processes share its units through a real PostgreSQL server:
the outputs are byte for byte those of the stage alone, each member's MLflow run is made once and ends FINISHED, a
worker killed mid-unit has its unit finished by another, and a worker of another checkout is refused in one line.

Every process runs as `dvc repro` would run it, in a scratch project of 6 units (2 seeds × 3 rates, 2 init stds each)
with heartbeats every second.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from src.config import load_params
from src.stores.optuna_storage import open_storage
from src.sweep.plan import SweepPlan
from src.sweep.work import status
from src.training.members import MemberTable
from tests import synthetic
from tests.processes import run, start, write_params
from tests.small_sweep import MEMBERS, STEPS, UNITS, copy_mlflow_store, outputs, small, write_project

PASSWORD = "s3cret-in-params"


@pytest.fixture
def shared(tmp_path, _migrated_mlflow_store, new_postgres_database) -> tuple[Path, str, str]:
    """A project whose units queue in a fresh PostgreSQL database: (project, storage URL, MLflow store)."""
    storage = new_postgres_database(f"sweep_{tmp_path.name[-24:].lower()}")
    # the server trusts 127.0.0.1 and ignores the password: it is there to show that no output or log shows it
    in_params = storage.replace("://optuna@", f"://optuna:{PASSWORD}@")
    return write_project(tmp_path / "project", in_params), storage, copy_mlflow_store(tmp_path, _migrated_mlflow_store)


def _stage_and_workers(project: Path, storage: str, store: str) -> list:
    """The stage and two workers started at once (one given the storage on its command line, one from params.yaml)."""
    return [
        start("pipeline.sweep", "--variant", "bn", cwd=project, MLFLOW_TRACKING_URI=store),
        start("src.sweep", "--worker", "--variant", "bn", "--wait", "60", cwd=project, MLFLOW_TRACKING_URI=store),
        start("src.sweep", "--worker", "--variant", "bn", "--storage", storage, cwd=project, MLFLOW_TRACKING_URI=store),
    ]


def _runs(store: str) -> list:
    """The stage's run and its members' (in an experiment of their own)."""
    client = mlflow.MlflowClient(store)
    return client.search_runs(
        [client.get_experiment_by_name(name).experiment_id for name in ("bn-mnist", "bn-mnist-sweep")]
    )


def _assert_each_member_run_made_once_and_finished(store: str) -> None:
    runs = _runs(store)
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1 == MEMBERS
    assert set(Counter(run.info.run_name for run in children).values()) == {1}, "a member's run made twice"
    assert Counter(run.info.status for run in runs) == {"FINISHED": MEMBERS + 1}, "a run left unfinished"


def _finish(processes: list) -> list[str]:
    """What each process printed (stdout and stderr), once it ended well."""
    ended = [process.communicate(timeout=300) for process in processes]
    for process, (_, err) in zip(processes, ended, strict=True):
        assert process.returncode in (0, -signal.SIGKILL), err
    return [out + err for out, err in ended]


def test_two_workers_beside_the_stage_write_what_the_stage_alone_writes(one_process_sweep, shared):
    project, storage, store = shared

    said = _finish(_stage_and_workers(project, storage, store))

    assert outputs(project) == one_process_sweep
    _assert_each_member_run_made_once_and_finished(store)
    parent = next(run for run in _runs(store) if "mlflow.parentRunId" not in run.data.tags)
    assert parent.data.params["sweep.storage"] == storage.replace("://optuna@", "://optuna:***@")
    assert not any(PASSWORD in text for text in said), "a password in a message"
    (name,) = optuna.get_all_study_names(storage)
    done = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.COMPLETE,))
    assert sorted(trial.user_attrs["unit"] for trial in done) == list(range(UNITS))
    assert len({trial.user_attrs["pid"] for trial in done}) >= 2, "the workers took no unit"


def _a_worker_mid_unit(project: Path, storage: str, workers: list) -> tuple[int, str, int]:
    """Wait until one of `workers` trains a unit past its first checkpoint: its trial number, unit name and pid."""
    members = MemberTable.grid(load_params(project / "params.yaml").sweep)
    names = [f"sweep-bn{members.unit_name(unit)}" for unit in members.units({"seed_and_rates": 1})]
    pids = {worker.pid for worker in workers}
    # one storage for the whole poll: a URL per call opens a connection pool per call, and a slow machine's poll
    # would use up the server's connections
    polled = RDBStorage(storage)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            for name in optuna.get_all_study_names(polled):
                study = optuna.load_study(study_name=name, storage=polled)
                for trial in study.get_trials(states=(TrialState.RUNNING,)):
                    worker, unit = trial.user_attrs.get("worker", {}), trial.user_attrs["unit"]
                    checkpoint = project / ".checkpoints" / f"{names[unit]}.pt"
                    if worker.get("pid") in pids and worker.get("trial") == trial.number and checkpoint.exists():
                        return trial.number, names[unit], worker["pid"]
            time.sleep(0.05)
    finally:
        polled.engine.dispose()
    raise AssertionError("no worker was caught training a unit past a checkpoint")


def test_a_worker_killed_mid_unit_has_its_unit_finished_by_another_from_its_checkpoint(one_process_sweep, shared):
    project, storage, store = shared
    processes = _stage_and_workers(project, storage, store)
    number, unit_name, pid = _a_worker_mid_unit(project, storage, processes[1:])
    killed = next(process for process in processes if process.pid == pid)
    killed.send_signal(signal.SIGKILL)

    errors = _finish(processes)

    assert killed.returncode == -signal.SIGKILL
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    assert study.trials[number].state == TrialState.FAIL, "killed after its unit had finished: catch it earlier"
    (retry,) = [trial for trial in study.trials if trial.system_attrs.get("failed_trial") == number]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["pid"] != killed.pid
    assert any(f"{unit_name}: resumed from step" in err for err in errors), "the retry did not use the checkpoint"
    assert outputs(project) == one_process_sweep
    _assert_each_member_run_made_once_and_finished(store)


def test_a_worker_of_another_checkout_is_refused_in_one_line(shared, monkeypatch):
    project, storage, store = shared
    monkeypatch.chdir(project)
    plan = SweepPlan.of(
        load_params().sweep_run, load_params().sweep, "bn"
    )  # the stage's study, its units queued and waiting
    queue = plan.queue(open_storage(storage, heartbeat_s=1), create=True)
    queue.enqueue_missing()
    queue.record_runs("parent-run", [f"member-run-{k}" for k in range(MEMBERS)])  # what makes it a worker's to join
    queue.record_runs("parent-run", ["member-run"] * MEMBERS)
    write_params(project, small(storage, steps=STEPS // 2))

    refused = run("src.sweep", "--worker", "--variant", "bn", cwd=project, MLFLOW_TRACKING_URI=store)

    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    (line,) = refused.stderr.splitlines()
    study = queue.study.study_name
    assert line.startswith(f"error: sweep@bn: this checkout differs from the one the study {study} in postgresql://")
    assert line.endswith(
        f"trains (params.sweep.steps: {STEPS} -> {STEPS // 2}): check out the stage's commit, params.yaml and data to "
        "join it"
    )
    assert queue.progress().waiting == UNITS, "a refused worker takes nothing"


def _connections(admin_url: str, database: str, allowed: bool) -> None:
    """Open or shut `database` on the server of `admin_url`; shutting it also ends every session it has."""
    server = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sqlalchemy.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            connection.execute(
                sqlalchemy.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": database},
            )
    server.dispose()


def test_a_storage_that_goes_away_mid_unit_stops_the_stage_at_a_checkpoint_and_a_rerun_loses_nothing(
    one_process_sweep, shared, postgres_url
):
    project, storage, store = shared
    stage = start("pipeline.sweep", "--variant", "bn", cwd=project, MLFLOW_TRACKING_URI=store)
    _, unit_name, _ = _a_worker_mid_unit(project, storage, [stage])
    database = storage.rsplit("/", 1)[1]
    _connections(postgres_url, database, allowed=False)
    try:
        _, err = stage.communicate(timeout=120)
    finally:
        _connections(postgres_url, database, allowed=True)

    assert stage.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: storage {storage.replace('://optuna@', '://optuna:***@')} stopped answering (")
    assert f", checkpointed in .checkpoints/{unit_name}.pt; run the same command again once it answers" in last
    rerun = run("pipeline.sweep", "--variant", "bn", cwd=project, MLFLOW_TRACKING_URI=store)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{unit_name}: resumed from step" in rerun.stderr
    assert outputs(project) == one_process_sweep
    _assert_each_member_run_made_once_and_finished(store)


def test_status_says_per_variant_how_far_its_sweep_is(tmp_path, monkeypatch, repo_root):
    monkeypatch.chdir(tmp_path)
    synthetic.write_processed(tmp_path / "data" / "processed")
    write_params(tmp_path, small(f"sqlite:///{tmp_path / 'optuna.db'}"))
    params = load_params()
    storage = open_storage(params.sweep.storage, params.sweep.heartbeat_s)
    plans = [SweepPlan.of(params.sweep_run, params.sweep, variant) for variant in ("vanilla", "bn")]
    assert status(plans, storage) == [f"sweep@{v}: not started in {params.sweep.storage}" for v in ("vanilla", "bn")]
    queue = plans[1].queue(storage, create=True)
    queue.enqueue_missing()
    queue.record_runs("parent-run", [f"member-run-{k}" for k in range(MEMBERS)])  # what makes it a worker's to join
    assert status(plans, storage)[1] == (
        f"sweep@bn: study {queue.study.study_name}: 0 of {UNITS} units done, 0 running, {UNITS} waiting"
    )
