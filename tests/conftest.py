"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import synthetic_results
from tests.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="module")
def tree(tmp_path_factory, repo_root) -> tuple[Path, dict]:
    """A synthetic results tree as the stages before evaluate leave it, once per test module: (root, raw params)."""
    root = tmp_path_factory.mktemp("repo")
    return root, synthetic_results.write_results_tree(root, repo_root)


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The directory holding the four real MNIST files (MNIST_MIRROR, else ../shared/mnist)."""
    mirror = Path(os.environ.get("MNIST_MIRROR", REPO_ROOT.parent / "shared" / "mnist"))
    if not mirror.is_absolute():
        mirror = (REPO_ROOT / mirror).resolve()
    if not (mirror / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"real MNIST not found in {mirror}: set MNIST_MIRROR to a directory holding the four files")
    return mirror


@pytest.fixture(scope="session")
def _migrated_mlflow_store(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, migrated once per test session (migrations take seconds)."""
    import mlflow

    store = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}").search_experiments()
    return store


@pytest.fixture
def mlflow_store(_migrated_mlflow_store, tmp_path, monkeypatch) -> str:
    """A private, ready MLflow store for one test, set as MLFLOW_TRACKING_URI; returns the URI."""
    store = tmp_path / "mlflow.db"
    shutil.copyfile(_migrated_mlflow_store, store)
    uri = f"sqlite:///{store}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def tune_project(tmp_path, mlflow_store, monkeypatch) -> Path:
    """A small tuning project (tests/tuning.py) as the working directory, with a private MLflow store."""
    from tests.tuning import write_tune_project

    monkeypatch.chdir(tmp_path)
    return write_tune_project(tmp_path)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for in-process training: on a shared 2-core machine a second one only spins."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL server of our own on 127.0.0.1 for the session; its URL (trust authentication)."""
    initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: float(path.parts[-3]))
    if not initdbs:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    bin_dir = initdbs[-1].parent
    # postgres refuses to run as root: run it as the postgres user, in a directory it owns
    # (pytest's tmp_path is private to its owner, so a directory of its own under /tmp)
    as_server = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="tune-postgres-"))
    if as_server:
        shutil.chown(home, "postgres", "postgres")
    data, port = home / "data", free_port()
    subprocess.run(
        [*as_server, bin_dir / "initdb", "-D", data, "-U", "optuna", "--auth=trust", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={home} -c fsync=off"
    pg_ctl = [*as_server, bin_dir / "pg_ctl", "-D", data, "-l", home / "server.log", "-w"]
    subprocess.run([*pg_ctl, "-o", options, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://optuna@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def one_process_sweep(tmp_path_factory, _migrated_mlflow_store) -> dict[str, str]:
    """The small sweep's outputs (tests/small_sweep.py) when its stage trains every unit itself, queued in SQLite:
    what the stage and any workers sharing its units must write, wherever units queue."""
    from tests.processes import run
    from tests.small_sweep import UNITS, copy_mlflow_store, outputs, write_project

    root = tmp_path_factory.mktemp("one-process")
    project = write_project(root / "project", "sqlite:///optuna.db")
    store = copy_mlflow_store(root, _migrated_mlflow_store)
    alone = run("pipeline.sweep", "--variant", "bn", cwd=project, MLFLOW_TRACKING_URI=store)
    assert alone.returncode == 0, alone.stderr
    assert f"{UNITS} trained here" in alone.stdout
    return outputs(project)


@pytest.fixture(scope="session")
def slurm_conf(tmp_path_factory) -> Path:
    """A one-node SLURM cluster of our own on 127.0.0.1 for the session (tests/slurm.py): its slurm.conf, which the
    clients (sbatch, squeue) find through SLURM_CONF."""
    from tests.slurm import one_node_cluster

    with one_node_cluster(tmp_path_factory.mktemp("slurm")) as conf:
        yield conf


@pytest.fixture
def new_postgres_database(postgres_url):
    """A function that creates an empty database on the session's PostgreSQL server and returns its URL."""
    import sqlalchemy

    server = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def create(name: str) -> str:
        with server.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        return postgres_url.rsplit("/", 1)[0] + f"/{name}"

    yield create
    server.dispose()
