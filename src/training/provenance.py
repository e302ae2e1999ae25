"""What decides a stage's results: the params it reads, the data it trains on and the training code, declared once.

`STAGE_PARAMS` is the list dvc.yaml gives each stage under `params:` (tests/test_pipeline_deps.py holds the two
equal). A checkpoint's identity and a tuning study's identity derive from it, so a stale study or checkpoint is
recognised instead of being resumed into a run of other params, other data or other code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from src.config import Params
from src.data import splits
from src.engine import affine, batchnorm, device, network, schedule, sgd, trainer
from src.errors import StudyError

# every module that decides what training computes
TRAINING_CODE = (splits, batchnorm, affine, sgd, network, schedule, trainer, device)

# The params each stage reads, as dvc.yaml lists them: a change to any of them re-runs the stage.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "download": ("data.mirrors", "data.timeout_s"),
    "preprocess": ("data.val_size", "data.split_seed"),
    "tune": ("data.binarize", "model", "tune", "train.batch_size", "train.momentum", "train.device", "tracking"),
    "train": ("data.binarize", "model", "train", "tracking"),
    "sweep": ("data.binarize", "model", "sweep", "train.batch_size", "train.momentum", "train.device",
              "train.tracked_units", "train.percentile_examples", "tracking"),
    "edge": ("data.binarize", "model", "sweep", "edge", "evaluate.usable_accuracy", "train.batch_size",
             "train.momentum", "train.device", "train.tracked_units", "train.percentile_examples", "tracking"),
    "evaluate": ("data.binarize", "model", "sweep", "edge", "evaluate", "tracking"),
}  # fmt: skip
# Of those, the ones that do not change the numbers a run computes. The device setting is replaced by the device it
# resolves to; how often a run is checkpointed, and a study's budget, storage and deadline, only change when it ends;
# where the sweep's units are queued and how often their workers beat only change where they train. How the sweep is
# cut into units decides the sweep's rounding, not the edge's.
NOT_DECIDING: dict[str, tuple[str, ...]] = {
    "tune": ("train.device", "tune.trials", "tune.trials_per_batch", "tune.storage", "tune.timeout_s", "tracking"),
    "train": ("train.device", "train.checkpoint_every"),
    "sweep": ("train.device", "sweep.checkpoint_every", "sweep.storage", "sweep.heartbeat_s"),
    "edge": ("train.device", "sweep.checkpoint_every", "sweep.storage", "sweep.heartbeat_s", "sweep.unit",
             "edge.checkpoint_every"),
}  # fmt: skip


def stage_params(params: Params, stage: str) -> dict:
    """The nested params `stage` reads (STAGE_PARAMS), e.g. {"data": {"binarize": True}, "model": {...}, ...}."""
    return _select(params.model_dump(), STAGE_PARAMS[stage], keep=True)


def deciding_params(params: Params, stage: str) -> dict:
    """The params that decide `stage`'s numbers: what it reads less what only changes when or where it ends."""
    return _select(stage_params(params, stage), NOT_DECIDING.get(stage, ()), keep=False)


def stage_identity(params: Params, stage: str, variant: str, device: torch.device, splits: Sequence[str]) -> dict:
    """Everything that decides a training stage's outputs: its deciding params, the resolved device, the data it
    reads and the code that trains."""
    return {
        "stage": stage,
        "variant": variant,
        "device": str(device),
        "params": deciding_params(params, stage),
        "data_sha256": data_sha256(splits.PROCESSED_DIR, tuple(splits)),
        "code_sha256": code_sha256(),
    }


def _select(tree: dict, paths: Sequence[str], keep: bool) -> dict:
    """`tree` with only (keep) or without (not keep) the dotted `paths`, e.g. "model" or "train.batch_size"."""
    if keep:
        chosen: dict = {}
        for path in paths:
            *parents, leaf = path.split(".")
            source, target = tree, chosen
            for key in parents:
                source, target = source[key], target.setdefault(key, {})
            target[leaf] = source[leaf]
        return chosen
    pruned = {key: dict(value) if isinstance(value, dict) else value for key, value in tree.items()}
    for path in paths:
        *parents, leaf = path.split(".")
        node = pruned
        for key in parents:
            node = node.get(key, {})
        node.pop(leaf, None)
    return {key: value for key, value in pruned.items() if value != {}}


def file_sha256(path: Path) -> str:
    try:
        with Path(path).open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run `dvc repro preprocess` first)") from None


def code_sha256() -> dict[str, str]:
    """module name -> SHA-256 of its source, for every module of TRAINING_CODE."""
    return {module.__name__: file_sha256(Path(module.__file__)) for module in TRAINING_CODE}


def data_sha256(data_dir: Path, splits: tuple[str, ...]) -> dict[str, str]:
    """split -> SHA-256 of data_dir/<split>.npz."""
    return {split: file_sha256(Path(data_dir) / f"{split}.npz") for split in splits}


def differences(saved: object, current: object, prefix: str = "") -> str:
    """'train.steps: 50000 -> 20000, ...': the leaves where two nested dicts differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        parts = [
            differences(saved.get(key), current.get(key), f"{prefix}{key}.")
            for key in sorted({*saved, *current}, key=str)
            if saved.get(key) != current.get(key)
        ]
        return ", ".join(parts)
    return f"{prefix.rstrip('.')}: {_short(saved)} -> {_short(current)}"


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 16 else text[:12] + "…"
