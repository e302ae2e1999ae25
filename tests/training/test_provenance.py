"""What decides a stage's results: the params it reads (as dvc.yaml lists them), less those that only change when or
where it ends, with the resolved device and digests of its data and the training code; and the one line that names
what changed between two of them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from src.config import NOT_DECIDING, STAGE_PARAMS, load_params, with_overrides
from src.errors import StudyError
from src.training import provenance
from src.training.provenance import deciding_params, differences, stage_identity, stage_params
from tests import synthetic

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def params(repo_root):
    return load_params(repo_root / "params.yaml")


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """Dotted path -> value of every leaf of a nested dict (a list is a leaf)."""
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _under(path: str, paths: tuple[str, ...]) -> bool:
    """Whether `path` is one of `paths` or inside one of them ("train.steps" is inside "train")."""
    return any(path == top or path.startswith(f"{top}.") for top in paths)


def test_stage_params_keep_the_listed_sections_whole_and_the_listed_keys_alone(params):
    everything = params.model_dump()
    assert stage_params(params, "tune") == {
        "data": {"binarize": everything["data"]["binarize"]},
        "model": everything["model"],
        "tune": everything["tune"],
        "train": {key: everything["train"][key] for key in ("batch_size", "momentum", "device")},
        "tracking": everything["tracking"],
    }


@pytest.mark.parametrize("stage", STAGE_PARAMS)
def test_stage_params_are_every_param_the_stage_lists_and_no_other(params, stage):
    everything = _leaves(params.model_dump())
    listed = {path: value for path, value in everything.items() if _under(path, STAGE_PARAMS[stage])}
    assert _leaves(stage_params(params, stage)) == listed


@pytest.mark.parametrize("stage", STAGE_PARAMS)
def test_the_deciding_params_are_the_stages_params_less_those_that_do_not_change_its_numbers(params, stage):
    read = _leaves(stage_params(params, stage))
    deciding = deciding_params(params, stage)
    expected = {path: value for path, value in read.items() if not _under(path, NOT_DECIDING.get(stage, ()))}
    assert _leaves(deciding) == expected
    assert all(section != {} for section in deciding.values()), "a section emptied by the dropping is dropped too"


def test_only_what_a_stage_reads_can_be_declared_not_deciding():
    assert set(NOT_DECIDING) <= set(STAGE_PARAMS)
    for stage, paths in NOT_DECIDING.items():
        assert all(_under(path, STAGE_PARAMS[stage]) for path in paths), stage


def test_a_studys_budget_storage_and_device_setting_do_not_decide_its_numbers_and_its_steps_do(params):
    deciding = deciding_params(params, "tune")
    assert "tracking" not in deciding and "device" not in deciding["train"]
    ends_otherwise = {"tune.trials": 99, "tune.storage": "postgresql://db-host/optuna", "train.device": "cpu"}
    assert deciding_params(with_overrides(params, ends_otherwise), "tune") == deciding
    assert deciding_params(with_overrides(params, {"tune.steps": 999}), "tune") != deciding


def test_edges_numbers_are_decided_by_the_sweeps_schedule_its_own_rates_and_the_usable_cut_not_its_checkpoints(params):
    deciding = deciding_params(params, "edge")
    assert list(deciding) == ["data", "model", "sweep", "edge", "evaluate", "train", "tracking"]
    assert deciding["evaluate"] == {"usable_accuracy": params.evaluate.usable_accuracy}  # which swept rates trained
    assert "checkpoint_every" not in deciding["sweep"] and "checkpoint_every" not in deciding["edge"]
    assert "device" not in deciding["train"]
    ends_otherwise = {
        "edge.checkpoint_every": 7,
        "sweep.checkpoint_every": 7,
        "train.device": "cpu",
        "evaluate.confidence": 0.99,
        "evaluate.correction": "bh",
    }
    assert deciding_params(with_overrides(params, ends_otherwise), "edge") == deciding
    for decides in ({"edge.rates_between": 9}, {"evaluate.usable_accuracy": 0.8}, {"sweep.steps": 999}):
        assert deciding_params(with_overrides(params, decides), "edge") != deciding, decides
    # the sweep's own numbers do not depend on the usable cut or on edge@'s settings
    assert deciding_params(
        with_overrides(params, {"evaluate.usable_accuracy": 0.8, "edge.rates_between": 9}), "sweep"
    ) == deciding_params(params, "sweep")


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
        "params": deciding_params(params, "train"),
        "data_sha256": {split: _sha256(processed / f"{split}.npz") for split in ("train", "test")},
        "code_sha256": {module.__name__: _sha256(Path(module.__file__)) for module in provenance.TRAINING_CODE},
    }


def test_a_stage_identity_changes_with_the_data_the_code_and_the_device(params, processed, tmp_path, monkeypatch):
    source = tmp_path / "engine.py"
    source.write_text("STEP = 1\n")
    monkeypatch.setattr(provenance, "TRAINING_CODE", (SimpleNamespace(__name__="src.engine", __file__=str(source)),))

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
    assert differences(moved_on, identity()).startswith("code_sha256.src.engine: ")


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
