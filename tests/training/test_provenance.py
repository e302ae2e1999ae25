"""What decides a training stage's results: its deciding params (tests/test_config.py), with the resolved device and
digests of its data and the training code; and the one line that names what changed between two of them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from src.config import load_params
from src.errors import StudyError
from src.training import provenance
from src.training.provenance import differences, stage_identity
from tests import synthetic

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def params(repo_root):
    return load_params(repo_root / "params.yaml")


@pytest.fixture
def processed(tmp_path, monkeypatch) -> Path:
    """data/processed with synthetic splits, under a scratch working directory."""
    monkeypatch.chdir(tmp_path)
    return synthetic.write_processed(tmp_path / "data" / "processed")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_stage_identity_is_its_deciding_params_the_device_and_digests_of_its_splits_and_the_training_code(
    params, processed
):
    assert stage_identity(params.train_run, "bn", CPU, ("train", "test")) == {
        "stage": "train",
        "variant": "bn",
        "device": "cpu",
        "params": params.train_run.deciding,
        "data_sha256": {split: _sha256(processed / f"{split}.npz") for split in ("train", "test")},
        "code_sha256": {
            f"src/{path.relative_to(provenance.SOURCE)}": _sha256(path) for path in provenance.TRAINING_CODE
        },
    }


def test_a_stage_identity_changes_with_the_data_the_code_and_the_device(params, processed, tmp_path, monkeypatch):
    source = tmp_path / "src" / "engine" / "trainer.py"
    source.parent.mkdir(parents=True)
    source.write_text("STEP = 1\n")
    monkeypatch.setattr(provenance, "SOURCE", tmp_path / "src")
    monkeypatch.setattr(provenance, "TRAINING_CODE", (source,))

    def identity(device: torch.device = CPU) -> dict:
        return stage_identity(params.tune_run, "bn", device, ("train", "val"))

    before = identity()
    assert identity() == before
    assert differences(before, identity(torch.device("cuda"))) == "device: cpu -> cuda"
    images, labels = synthetic.images_and_labels(200, seed=9)
    np.savez(processed / "val.npz", images=images, labels=labels)
    assert differences(before, identity()).startswith("data_sha256.val: ")
    moved_on = identity()
    source.write_text("STEP = 2\n")
    assert differences(moved_on, identity()).startswith("code_sha256.src/engine/trainer.py: ")


def test_a_split_the_identity_needs_but_that_is_missing_says_which_stage_makes_it(params, processed):
    (processed / "val.npz").unlink()
    with pytest.raises(StudyError, match=r"data/processed/val\.npz: no such file \(run `dvc repro preprocess` first\)"):
        stage_identity(params.tune_run, "bn", CPU, ("train", "val"))


def test_differences_name_each_changed_leaf_by_its_path_in_sorted_order():
    saved = {"params": {"train": {"steps": 50000, "batch_size": 60}}, "device": "cpu", "gone": 1, "same": [1, 2]}
    current = {"params": {"train": {"steps": 20000, "batch_size": 60}}, "device": "cuda", "new": 2, "same": [1, 2]}
    assert differences(saved, current) == (
        "device: cpu -> cuda, gone: 1 -> None, new: None -> 2, params.train.steps: 50000 -> 20000"
    )
    assert differences(saved, saved) == ""
    assert differences({"a": {"b": 1}}, {"a": 2}) == "a: {'b': 1} -> 2"


def test_differences_shorten_a_value_longer_than_sixteen_characters():
    assert differences({"code": "0" * 64}, {"code": "abcdef" * 10}) == "code: 000000000000… -> abcdefabcdef…"
    assert differences({"a": "x" * 16}, {"a": "y" * 17}) == "a: xxxxxxxxxxxxxxxx -> yyyyyyyyyyyy…"
