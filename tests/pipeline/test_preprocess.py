"""End to end on the real MNIST files: `dvc repro preprocess` in a fresh clone builds the splits once, and
a damaged mirror file is refused with one clear line."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from src.data.splits import read_split_arrays

pytestmark = pytest.mark.e2e

# ../shared/mnist/README.md
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_FILES = [f"{part}-{kind}-ubyte.gz" for part in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `command` in `cwd` with this interpreter's environment first on PATH (so dvc's `python` is ours)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        command, cwd=cwd, env={**os.environ, "PATH": path, **env}, capture_output=True, text=True, timeout=300
    )


def modification_times(root: Path, paths: list[str]) -> dict[str, int]:
    files = [file for path in paths for file in sorted((root / path).rglob("*")) or [root / path]]
    return {str(file.relative_to(root)): file.stat().st_mtime_ns for file in files if file.is_file()}


@pytest.fixture(scope="module")
def clone(tmp_path_factory, repo_root) -> Path:
    """The repository's committed HEAD, cloned: what a new user gets."""
    target = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(repo_root), str(target)], check=True)
    return target


def test_dvc_repro_preprocess_builds_the_splits_and_a_second_run_changes_nothing(clone, real_mnist):
    built = run([sys.executable, "-m", "dvc", "repro", "preprocess"], clone, MNIST_MIRROR=str(real_mnist))
    assert built.returncode == 0, built.stdout + built.stderr

    splits = {name: read_split_arrays(clone / "data" / "processed", name) for name in ("train", "val", "test")}
    sizes = {name: len(labels) for name, (_, labels) in splits.items()}
    assert sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    summary = json.loads((clone / "results" / "data_summary.json").read_text())
    assert summary["test"]["per_class"] == TEST_COUNTS
    train_and_val = np.add(summary["train"]["per_class"], summary["val"]["per_class"])
    assert train_and_val.tolist() == TRAIN_COUNTS
    assert np.all(np.abs(np.array(summary["val"]["per_class"]) - np.array(TRAIN_COUNTS) / 6) < 1)
    assert summary["val"]["per_class"] == np.bincount(splits["val"][1], minlength=10).tolist()

    outputs = ["data/raw", "data/processed", "results/data_summary.json"]
    before = modification_times(clone, outputs)
    again = run([sys.executable, "-m", "dvc", "repro", "preprocess"], clone, MNIST_MIRROR=str(real_mnist))

    assert again.returncode == 0, again.stdout + again.stderr
    assert "didn't change" in again.stdout and "up to date" in again.stdout, again.stdout
    assert modification_times(clone, outputs) == before
    assert len(before) == 1 + len(MNIST_FILES) + 3


def test_a_corrupted_mirror_file_is_refused_with_one_clear_line(clone, real_mnist, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in MNIST_FILES[:-1]:
        (mirror / name).symlink_to(real_mnist / name)
    labels = bytearray(gzip.decompress((real_mnist / MNIST_FILES[-1]).read_bytes()))
    labels[-1] = (labels[-1] + 1) % 10  # one wrong label: still a well-formed gzip of a well-formed IDX file
    (mirror / MNIST_FILES[-1]).write_bytes(gzip.compress(bytes(labels)))
    work = tmp_path / "work"
    work.mkdir()
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["data"]["mirrors"] = [str(tmp_path / "no-such-mirror")]  # no internet in a test
    (work / "params.yaml").write_text(yaml.safe_dump(params))

    result = run([sys.executable, "-m", "pipeline.download"], work, MNIST_MIRROR=str(mirror), PYTHONPATH=str(clone))

    assert result.returncode == 2
    error = result.stderr.strip()
    assert "\n" not in error and "Traceback" not in error
    assert error.startswith(f"error: no source served {MNIST_FILES[-1]} intact, tried: ")
    assert f"{mirror / MNIST_FILES[-1]} (checksum mismatch: decompressed SHA-256" in error
    assert f"{tmp_path / 'no-such-mirror' / MNIST_FILES[-1]} (not found)" in error
    # the three good files landed; nothing of the bad one, not even a temporary file
    assert sorted(path.name for path in (work / "data" / "raw").iterdir()) == sorted(MNIST_FILES[:-1])
