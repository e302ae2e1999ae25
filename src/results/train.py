"""train@'s outputs read back: models/<variant>/seed_<s>.pt and results/train/<variant>/ (summary.json, the
per-seed test curves of history.csv and the sigmoid inputs of sigmoid_inputs.csv); the files every member writes are
results/members.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from src import paths
from src.atomic import atomic_directory
from src.config import PositiveFloat
from src.engine.trainer import LEVELS
from src.errors import StudyError
from src.results.files import JsonFile, parsing, read_table
from src.results.members import HISTORY, SIGMOID_INPUTS


class TrainSummary(JsonFile):
    """train@'s summary.json: the rate every seed trained at and the trained networks' final numbers."""

    NAME: ClassVar[str] = "summary.json"
    STAGE: ClassVar[str] = "train"
    variant: str
    lr: PositiveFloat
    lr_source: str
    seeds: list[int]
    steps: int
    batch_size: int
    # BN: the trained network under Algorithm 2's population statistics (history.csv: moving averages)
    final_test_accuracy: list[float]
    final_test_accuracy_mean: float
    final_test_accuracy_std: float
    final_val_accuracy: list[float]
    champion_seed: int
    n_diverged: int
    device: str


def write_models(directory: Path, state_dicts: Sequence[dict], seeds: Sequence[int]) -> None:
    """models/<variant>/seed_<s>.pt, one member's state dict each (BN: Algorithm 2's statistics), all or none."""
    with atomic_directory(directory) as staging:
        for state, seed in zip(state_dicts, seeds, strict=True):
            torch.save(state, staging / f"seed_{seed}.pt")


def model_paths(directory: Path) -> dict[int, Path]:
    """seed -> models/<variant>/seed_<seed>.pt, in seed order."""
    found = {}
    for path in directory.glob("seed_*.pt"):
        suffix = path.stem.removeprefix("seed_")
        if suffix.isdigit():
            found[int(suffix)] = path
    if not found:
        raise StudyError(f"{directory}: no seed_*.pt models (run the train stage first)")
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class SeedCurves:
    """Per-seed test curves on one step grid: accuracy[i, j] is seed seeds[i] at steps[j] (NaN if not evaluated)."""

    steps: np.ndarray
    seeds: list[int]
    accuracy: np.ndarray
    loss: np.ndarray
    diverged: np.ndarray  # per seed: diverged at some evaluation


@dataclass(frozen=True)
class Percentiles:
    """The 15/50/85th percentiles of one sigmoid's input over training."""

    steps: np.ndarray
    p15: np.ndarray
    p50: np.ndarray
    p85: np.ndarray

    def stacked(self) -> np.ndarray:
        """(3, evals): the rows 15th, 50th, 85th."""
        return np.stack([self.p15, self.p50, self.p85])


@dataclass(frozen=True)
class TrainOutputs:
    """What train@ wrote for one variant, read back."""

    summary: TrainSummary
    curves: SeedCurves
    sigmoid_inputs: dict[tuple[int, int], Percentiles]  # (seed, unit) -> percentiles
    models: dict[int, Path]  # seed -> its saved network


def read_trained(variant: str) -> TrainOutputs:
    """train@<variant>'s outputs; models, history and summary must cover the same seeds."""
    directory = paths.stage_dir("train", variant)
    run = TrainOutputs(
        summary=TrainSummary.read(directory),
        curves=read_history(directory / "history.csv"),
        sigmoid_inputs=read_sigmoid_inputs(directory / "sigmoid_inputs.csv"),
        models=model_paths(paths.model_dir(variant)),
    )
    if not sorted(run.models) == run.curves.seeds == run.summary.seeds:
        raise StudyError(
            f"train@{variant}: models/{variant} holds seeds {sorted(run.models)}, its history {run.curves.seeds} and "
            f"its summary {run.summary.seeds}: re-run `dvc repro train@{variant}`"
        )
    return run


def read_history(path: Path) -> SeedCurves:
    """train@'s history.csv (step,seed,test_accuracy,test_loss,diverged) as per-seed curves."""
    table = read_table(path, ["step", "seed", *HISTORY])
    with parsing(path):
        accuracy, loss = (table.pivot(index="seed", columns="step", values=name) for name in HISTORY[:2])
        return SeedCurves(
            steps=accuracy.columns.to_numpy(),
            seeds=accuracy.index.tolist(),
            accuracy=accuracy.to_numpy(dtype=float),
            loss=loss.to_numpy(dtype=float),
            diverged=table.groupby("seed")["diverged"].any().to_numpy(dtype=bool),
        )


def read_sigmoid_inputs(path: Path) -> dict[tuple[int, int], Percentiles]:
    """train@'s sigmoid_inputs.csv (step,seed,unit,p15,p50,p85) as (seed, unit) -> percentiles."""
    table = read_table(path, ["step", "seed", *SIGMOID_INPUTS]).sort_values(["seed", "unit", "step"])
    with parsing(path):
        return {
            (int(seed), int(unit)): Percentiles(*(rows[name].to_numpy(dtype=float) for name in ("step", *LEVELS)))
            for (seed, unit), rows in table.groupby(["seed", "unit"])
        }
