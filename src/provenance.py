"""What decides a result: digests of the data files and of the training code, so a stale study or checkpoint is
recognised instead of being resumed into a run of other data or other code."""

from __future__ import annotations

import hashlib
from pathlib import Path

from src import affine, batchnorm, data, device, engine, models, schedule, sgd
from src.errors import StudyError

# every module that decides what training computes
TRAINING_CODE = (data, batchnorm, affine, sgd, models, schedule, engine, device)


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
