"""sweep@'s outputs, results/sweep/<variant>/: summary.json, and the whole sweep read back on params.sweep's grid as
arrays indexed [seed, init std, learning rate, ...]; a missing, stray or duplicated row is one error naming the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from src import paths
from src.config import SweepConfig
from src.engine.schedule import eval_schedule
from src.engine.trainer import LEVELS
from src.errors import StudyError
from src.results.files import JsonFile, parsing, read_table


class SweepSummary(JsonFile):
    """sweep@'s summary.json."""

    NAME: ClassVar[str] = "summary.json"
    STAGE: ClassVar[str] = "sweep"
    variant: str
    members: int  # learning rates × init stds × seeds
    steps: int  # each member's
    device: str  # the resolved one


@dataclass(frozen=True)
class SweepResults:
    """One variant's sweep on params.sweep's grid, as arrays indexed [seed, init std, learning rate, ...]."""

    learning_rates: np.ndarray  # (L,) as params.sweep lists them
    init_stds: np.ndarray  # (I,)
    seeds: list[int]
    final_accuracy: np.ndarray  # (S, I, L): the trained network (BN: Algorithm 2's population statistics)
    diverged: np.ndarray  # (S, I, L)
    steps: np.ndarray  # (E,)
    accuracy: np.ndarray  # (S, I, L, E): test accuracy over training (BN: moving averages)
    percentiles: np.ndarray  # (S, I, L, units, 3, E): the 15/50/85th percentiles of each tracked sigmoid's input


def read_sweep(variant: str, sweep: SweepConfig, tracked_units: int) -> SweepResults:
    """sweep@<variant>'s CSVs on the grid and eval steps of `sweep`, with `tracked_units` sigmoids (as
    train.tracked_units); a missing or stray row is one StudyError naming the file."""
    directory = paths.stage_dir("sweep", variant)
    labels = ["seed", "init_std", "lr"]
    grid = [sweep.seed_list, sweep.init_stds, sweep.learning_rates]
    steps = list(eval_schedule(sweep.steps, sweep.eval_every, sweep.evals_per_decade))
    units = list(range(tracked_units))
    final_accuracy, diverged = read_sweep_final(variant, sweep)
    accuracy = _on_grid(directory / "history.csv", [*labels, "step"], [*grid, steps], ["test_accuracy"])
    percentiles = _on_grid(
        directory / "sigmoid_inputs.csv", [*labels, "unit", "step"], [*grid, units, steps], list(LEVELS)
    )
    return SweepResults(
        learning_rates=np.array(sweep.learning_rates, dtype=float),
        init_stds=np.array(sweep.init_stds, dtype=float),
        seeds=sweep.seed_list,
        final_accuracy=final_accuracy,
        diverged=diverged,
        steps=np.array(steps),
        accuracy=accuracy[..., 0].astype(float),
        percentiles=np.moveaxis(percentiles.astype(float), -1, -2),  # (..., units, 3 levels, steps)
    )


def read_sweep_final(variant: str, sweep: SweepConfig) -> tuple[np.ndarray, np.ndarray]:
    """sweep@<variant>'s final.csv as (final test accuracy, diverged), each (S, I, L) on `sweep`'s grid."""
    grid = [sweep.seed_list, sweep.init_stds, sweep.learning_rates]
    final = _on_grid(
        paths.stage_dir("sweep", variant) / "final.csv", ["seed", "init_std", "lr"], grid, ["test_accuracy", "diverged"]
    )
    return final[..., 0].astype(float), final[..., 1].astype(bool)


def _on_grid(path: Path, index: list[str], levels: list[list], columns: list[str]) -> np.ndarray:
    """`columns` of the CSV at `path` over every combination of `levels`: exactly one row each."""
    table = read_table(path, [*index, *columns])
    rerun = f"re-run `dvc repro sweep@{path.parent.name}`"
    indexed = table.set_index(index)
    full = pd.MultiIndex.from_product(levels, names=index)
    stray = indexed.index[~indexed.index.isin(full)]
    if len(stray) or indexed.index.has_duplicates:
        row = stray[0] if len(stray) else indexed.index[indexed.index.duplicated()][0]
        what = "outside params.yaml's sweep" if len(stray) else "given twice"
        raise StudyError(f"{path}: the row for {_labels(index, row)} is {what}; {rerun}")
    if not full.isin(indexed.index).all():
        missing = full[~full.isin(indexed.index)][0]
        raise StudyError(f"{path}: no row for {_labels(index, missing)}; {rerun}")
    with parsing(path):
        values = indexed[columns].reindex(full).to_numpy(dtype=float)
    return values.reshape(*(len(level) for level in levels), len(columns))


def _labels(index: list[str], row: tuple) -> dict:
    """A row's labels as plain numbers: {'seed': 0, 'lr': 0.1}, not numpy scalars' np.int64(0)."""
    labels = dict(zip(index, row, strict=True))
    return {name: value.item() if isinstance(value, np.generic) else value for name, value in labels.items()}
