"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The directory holding the four real MNIST files (MNIST_MIRROR, else ../shared/mnist)."""
    mirror = Path(os.environ.get("MNIST_MIRROR", REPO_ROOT.parent / "shared" / "mnist"))
    if not mirror.is_absolute():
        mirror = (REPO_ROOT / mirror).resolve()
    if not (mirror / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"real MNIST not found in {mirror}: set MNIST_MIRROR to a directory holding the four files")
    return mirror
