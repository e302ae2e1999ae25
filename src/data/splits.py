"""MNIST as the study uses it: train / val / test splits stored as compact uint8 arrays, loaded onto the device.

The validation split is carved from the 60,000 training images, stratified by class and seeded, so that
tuning never sees the test set. Arrays stay uint8 on disk; scaling or binarising happens at load time.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from src.atomic import atomic_directory
from src.data.idx import IdxError, read_idx
from src.errors import StudyError

SPLITS = ("train", "val", "test")
IMAGE_SHAPE = (28, 28)
PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
CLASSES = 10

Arrays = tuple[np.ndarray, np.ndarray]  # images uint8 (N, 784), labels uint8 (N,)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # float32 (N, 784) on the device: {0,1} if binarized, else pixel/255
    labels: torch.Tensor  # int64 (N,) on the device


def read_mnist(raw_dir: Path, part: str) -> Arrays:
    """Images (N, 784) and labels (N,) of MNIST's `part` ("train" or "t10k"), checked to belong together."""
    images_path = Path(raw_dir) / f"{part}-images-idx3-ubyte.gz"
    labels_path = Path(raw_dir) / f"{part}-labels-idx1-ubyte.gz"
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.shape[1:] != IMAGE_SHAPE:
        raise IdxError(f"{images_path}: shape {images.shape}, expected (N, 28, 28) images")
    if labels.shape != images.shape[:1]:
        raise IdxError(f"{labels_path}: shape {labels.shape}, expected ({len(images)},): one label per image")
    if labels.max(initial=0) >= CLASSES:
        raise IdxError(f"{labels_path}: holds label {labels.max()}, expected digits 0-9")
    return images.reshape(len(images), PIXELS), labels


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index arrays (train, val) partitioning `labels`: exactly `val_size` in val, drawn per class.

    Each class gets its exact share of `val_size` rounded by the largest-remainder method, so the
    shares are within one example of exact and sum to `val_size`; the same seed gives the same split.
    """
    if not 0 < val_size < len(labels):
        raise ValueError(f"val_size must be between 1 and {len(labels) - 1}, got {val_size}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * val_size / len(labels)
    quotas = np.floor(exact).astype(np.int64)
    leftover = val_size - int(quotas.sum())
    quotas[np.argsort(quotas - exact, kind="stable")[:leftover]] += 1
    rng = np.random.default_rng(seed)
    in_val = np.zeros(len(labels), dtype=bool)
    for label, quota in zip(classes, quotas, strict=True):
        in_val[rng.permutation(np.flatnonzero(labels == label))[:quota]] = True
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def make_splits(raw_dir: Path, val_size: int, seed: int) -> dict[str, Arrays]:
    """The three splits from the raw IDX files: val carved from MNIST's training set, test as MNIST ships it."""
    images, labels = read_mnist(raw_dir, "train")
    train, val = stratified_split(labels, val_size, seed)
    return {
        "train": (images[train], labels[train]),
        "val": (images[val], labels[val]),
        "test": read_mnist(raw_dir, "t10k"),
    }


def write_splits(processed_dir: Path, splits: Mapping[str, Arrays]) -> None:
    """Replace `processed_dir` whole by one uncompressed `{name}.npz` per split (arrays `images`, `labels`)."""
    with atomic_directory(processed_dir) as staging:
        for name, (images, labels) in splits.items():
            np.savez(staging / f"{name}.npz", images=images, labels=labels)


def class_counts(splits: Mapping[str, Arrays]) -> dict[str, dict]:
    """Per split: {"count": N, "per_class": [examples of digit 0, ..., of digit 9]}."""
    return {
        name: {"count": len(labels), "per_class": np.bincount(labels, minlength=CLASSES).tolist()}
        for name, (_, labels) in splits.items()
    }


def read_split_arrays(processed_dir: Path, name: str) -> Arrays:
    """Split `name` as stored: uint8 images (N, 784) and uint8 labels (N,)."""
    if name not in SPLITS:
        raise StudyError(f"unknown split {name!r}, expected one of {', '.join(SPLITS)}")
    path = Path(processed_dir) / f"{name}.npz"
    try:
        with np.load(path) as archive:
            images, labels = archive["images"], archive["labels"]
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run `dvc repro preprocess` first)") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as error:  # EOFError: an empty file
        raise StudyError(f"{path}: not a split archive with arrays 'images' and 'labels' ({error})") from None
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != PIXELS:
        raise StudyError(f"{path}: images are {images.dtype} {images.shape}, expected uint8 (N, {PIXELS})")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise StudyError(f"{path}: labels are {labels.dtype} {labels.shape}, expected uint8 ({len(images)},)")
    return images, labels


def load_split(processed_dir: Path, name: str, device: torch.device, binarize: bool) -> Split:
    """Split `name` on `device`: images {0, 1} (pixel >= 128) when `binarize`, else pixel / 255.

    Binarizing is the default (params.yaml) because the paper trains on binary MNIST images (Section 4.1).
    """
    images, labels = read_split_arrays(processed_dir, name)
    # uint8 crosses to the device and is converted there: a quarter of float32's bytes to copy
    pixels = torch.from_numpy(images).to(device)
    scaled = (pixels >= 128).float() if binarize else pixels.float() / 255
    return Split(images=scaled, labels=torch.from_numpy(labels).to(device).long())
