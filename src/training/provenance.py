"""What decides a training stage's results: the params it reads (src/config.py's STAGE_PARAMS, less what only changes
when or where it ends), the data it trains on and the training code. A checkpoint's identity and a tuning study's
identity derive from it, so a stale study or checkpoint is recognised instead of being resumed into a run of other
params, other data or other code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from src import paths
from src.config import TrainingRun
from src.errors import StudyError

SOURCE = Path(__file__).resolve().parents[1]  # src/
# every file that decides what training computes: the engine, and how a split is loaded (binarised) onto the device
TRAINING_CODE = (*sorted((SOURCE / "engine").glob("*.py")), SOURCE / "data" / "splits.py")


def stage_identity(run: TrainingRun, variant: str, device: torch.device, split_names: Sequence[str]) -> dict:
    """Everything that decides a training stage's outputs: its deciding params, the resolved device, the data it
    reads and the code that trains."""
    return {
        "stage": run.stage,
        "variant": variant,
        "device": str(device),
        "params": run.deciding,
        "data_sha256": data_sha256(paths.PROCESSED_DATA, tuple(split_names)),
        "code_sha256": code_sha256(),
    }


def file_sha256(path: Path) -> str:
    try:
        with Path(path).open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run `dvc repro preprocess` first)") from None


def code_sha256() -> dict[str, str]:
    """src/<file> -> SHA-256 of its source, for every file of TRAINING_CODE."""
    return {str(path.relative_to(SOURCE.parent)): file_sha256(path) for path in TRAINING_CODE}


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
