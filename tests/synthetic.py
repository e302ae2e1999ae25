"""Tiny MNIST look-alikes: ten noisy binary prototypes, learnable in a few hundred steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from src import paths
from src.data.splits import Split
from src.results.tune import TuningSummary


def images_and_labels(count: int, seed: int = 0, flip: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (count, 784) in {0, 255} and uint8 labels (count,): each class a prototype with bits flipped."""
    prototypes = np.random.default_rng(12345).random((10, 784)) < 0.3  # the same classes for every seed
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    flips = rng.random((count, 784)) < flip
    images = (prototypes[labels] ^ flips).astype(np.uint8) * 255
    return images, labels.astype(np.uint8)


def split(count: int, seed: int = 0) -> Split:
    images, labels = images_and_labels(count, seed)
    return Split(images=torch.from_numpy(images).float() / 255, labels=torch.from_numpy(labels).long())


def write_processed(directory: Path, sizes: dict[str, int] | None = None) -> Path:
    """A data/processed directory in the stage's layout (train/val/test .npz) holding synthetic data."""
    directory.mkdir(parents=True, exist_ok=True)
    for seed, (name, count) in enumerate((sizes or {"train": 600, "val": 200, "test": 200}).items()):
        images, labels = images_and_labels(count, seed)
        np.savez(directory / f"{name}.npz", images=images, labels=labels)
    return directory


def write_tuned(root: Path, rates: dict[str, float] | None = None) -> None:
    """results/tune/<variant>/best.json as the tune stage leaves it: the learning rate train@ will use."""
    for variant, rate in (rates or {"vanilla": 0.5, "bn": 2.0}).items():
        TuningSummary(
            variant=variant,
            study_name=f"bn-mnist-{variant}",
            storage="sqlite:///optuna.db",
            best_lr=rate,
            best_value=0.9,
            trials_budget=4,
            n_complete=4,
            n_pruned=0,
            n_failed=0,
            steps=100,
            device="cpu",
        ).write(root / paths.stage_dir("tune", variant))


def write_train_project(root: Path, repo_root: Path, *, seeds: int, population_batches: int) -> None:
    """A tiny project in `root` for train@: the repository's params with an 8-step schedule on the CPU, synthetic
    processed data and a tuning result."""
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["train"].update(
        steps=8, eval_every=4, evals_per_decade=0, seeds=seeds, tracked_units=1, percentile_examples=20, device="cpu"
    )
    raw["model"]["population_batches"] = population_batches
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    write_processed(root / "data" / "processed")
    write_tuned(root)
