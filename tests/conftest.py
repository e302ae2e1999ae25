"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests import synthetic_results

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
def one_torch_thread():
    """One intra-op thread for in-process training: on a shared 2-core machine a second one only spins."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
