"""The sweep's side of the comparison: both variants over one grid of learning rate × init std × seed.

Every cell is paired across the variants (same seed: same data order, same initial draws), so each BN − vanilla
effect is a paired one. Reads what `sweep@<variant>` wrote (src/results.py); no model is scored here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from src import results, stats
from src.errors import StudyError
from src.results import parsing, read_table


@dataclass(frozen=True)
class SweepResults:
    """One variant's sweep as arrays indexed [seed, init std, learning rate, ...]."""

    learning_rates: np.ndarray  # (L,) ascending
    init_stds: np.ndarray  # (I,) ascending
    seeds: list[int]
    final_accuracy: np.ndarray  # (S, I, L): the trained network (BN: Algorithm 2's population statistics)
    diverged: np.ndarray  # (S, I, L)
    steps: np.ndarray  # (E,)
    accuracy: np.ndarray  # (S, I, L, E): test accuracy over training (BN: moving averages)
    percentiles: np.ndarray  # (S, I, L, units, 3, E): the 15/50/85th percentiles of each tracked sigmoid's input

    def init_index(self, init_std: float) -> int:
        return _index_of(self.init_stds, init_std, "init std")

    def lr_index(self, learning_rate: float) -> int:
        return _index_of(self.learning_rates, learning_rate, "learning rate")


def load_sweep(directory: Path) -> SweepResults:
    """results/sweep/<variant>/{final,history,sigmoid_inputs}.csv as arrays; a missing cell is one StudyError."""
    labels = ["seed", "init_std", "lr"]
    final = read_table(directory / "final.csv", [*labels, *results.FINAL])
    history = read_table(directory / "history.csv", ["step", *labels, *results.HISTORY])
    inputs = read_table(directory / "sigmoid_inputs.csv", ["step", *labels, *results.SIGMOID_INPUTS])
    grid = [sorted(final[label].unique()) for label in labels]  # final.csv has one row per cell
    steps, units = sorted(history["step"].unique()), sorted(inputs["unit"].unique())
    with parsing(directory):
        final_values = _on_grid(final, labels, grid, ["test_accuracy", "diverged"])
        accuracy = _on_grid(history, [*labels, "step"], [*grid, steps], ["test_accuracy"])[..., 0]
        percentiles = _on_grid(inputs, [*labels, "unit", "step"], [*grid, units, steps], list(results.LEVELS))
    sweep = SweepResults(
        learning_rates=np.array(grid[2], dtype=float),
        init_stds=np.array(grid[1], dtype=float),
        seeds=[int(seed) for seed in grid[0]],
        final_accuracy=final_values[..., 0].astype(float),
        diverged=final_values[..., 1] == True,  # noqa: E712 (an object array: True, False or NaN)
        steps=np.array(steps),
        accuracy=accuracy.astype(float),
        percentiles=np.moveaxis(percentiles.astype(float), -1, -2),  # (..., units, 3 levels, steps)
    )
    for name, values in (("final.csv", sweep.final_accuracy), ("history.csv", sweep.accuracy),
                         ("sigmoid_inputs.csv", sweep.percentiles)):  # fmt: skip
        if np.isnan(values).all(axis=tuple(range(3, values.ndim))).any():
            raise StudyError(f"{directory / name}: not every grid cell has a result; re-run `dvc repro sweep`")
    return sweep


def _on_grid(table: pd.DataFrame, index: list[str], levels: list, columns: list[str]) -> np.ndarray:
    """`columns` of `table` as an array over every combination of `levels` (NaN where a row is missing)."""
    indexed = table.set_index(index)
    full = pd.MultiIndex.from_product(levels, names=index)
    if not indexed.index.isin(full).all():
        stray = indexed.index[~indexed.index.isin(full)][0]
        raise ValueError(f"a row for {dict(zip(index, stray, strict=True))} is outside final.csv's grid")
    values = indexed[columns].reindex(full).to_numpy()
    return values.reshape(*(len(level) for level in levels), len(columns))


def check_paired(vanilla: SweepResults, bn: SweepResults) -> None:
    """The two sweeps must cover the same grid and seeds, or no cell can be compared."""
    same = (
        np.array_equal(vanilla.learning_rates, bn.learning_rates)
        and np.array_equal(vanilla.init_stds, bn.init_stds)
        and vanilla.seeds == bn.seeds
    )
    if not same:
        raise StudyError("the vanilla and BN sweeps cover different grids or seeds: re-run `dvc repro sweep`")


def usable_learning_rates(sweep: SweepResults, init_std: float, usable_accuracy: float) -> np.ndarray:
    """(S,) per seed, the largest swept rate that trained (no divergence, final test accuracy ≥ usable_accuracy).

    A seed that trained at no swept rate gets one grid step below the smallest, so it still counts, conservatively.
    """
    row = sweep.init_index(init_std)
    usable = (sweep.final_accuracy[:, row] >= usable_accuracy) & ~sweep.diverged[:, row]  # (S, L)
    rates = sweep.learning_rates
    below_grid = rates[0] ** 2 / rates[1] if len(rates) > 1 else rates[0] / 10
    return np.array([sweep.learning_rates[np.flatnonzero(ok)[-1]] if ok.any() else below_grid for ok in usable])


def worst_init_accuracy(sweep: SweepResults) -> np.ndarray:
    """(S,) per seed, the mean over the swept rates of the final test accuracy under the worst init std."""
    return sweep.final_accuracy.min(axis=1).mean(axis=1)


@dataclass(frozen=True)
class MapCell:
    init_std: float
    learning_rate: float
    vanilla: float  # mean final test accuracy over seeds
    bn: float
    difference: stats.Estimate  # BN − vanilla, paired by seed


def robustness_map(vanilla: SweepResults, bn: SweepResults, confidence: float) -> list[MapCell]:
    """Every (init std, learning rate) cell: both variants' mean final accuracy and the paired BN − vanilla."""
    return [
        MapCell(
            init_std=float(init_std),
            learning_rate=float(learning_rate),
            vanilla=float(vanilla.final_accuracy[:, i, j].mean()),
            bn=float(bn.final_accuracy[:, i, j].mean()),
            difference=stats.paired_difference(bn.final_accuracy[:, i, j], vanilla.final_accuracy[:, i, j], confidence),
        )
        for i, init_std in enumerate(vanilla.init_stds)
        for j, learning_rate in enumerate(vanilla.learning_rates)
    ]


@dataclass(frozen=True)
class HorizonCheck:
    """Is the rate tuned at `tune.steps` still the best after `sweep.steps`? Compared on the sweep's grid."""

    tuned_lr: float
    nearest_swept_lr: float  # the grid rate nearest the tuned one (log scale)
    best_swept_lr: float  # the grid rate with the highest mean final accuracy over seeds
    shortfall: stats.Estimate  # accuracy at the best rate − at the nearest one, paired by seed

    @property
    def within_seed_noise(self) -> bool:
        return self.shortfall.ci_low is None or bool(self.shortfall.ci_low <= 0)


def horizon_check(sweep: SweepResults, tuned_lr: float, init_std: float, confidence: float) -> HorizonCheck:
    row = sweep.final_accuracy[:, sweep.init_index(init_std)]  # (S, L)
    nearest = int(np.argmin(np.abs(np.log(sweep.learning_rates) - math.log(tuned_lr))))
    best = int(np.argmax(row.mean(axis=0)))
    return HorizonCheck(
        tuned_lr=tuned_lr,
        nearest_swept_lr=float(sweep.learning_rates[nearest]),
        best_swept_lr=float(sweep.learning_rates[best]),
        shortfall=stats.paired_difference(row[:, best], row[:, nearest], confidence),
    )


def _index_of(values: np.ndarray, value: float, what: str) -> int:
    matches = np.flatnonzero(np.isclose(values, value, rtol=1e-6, atol=0))
    if not matches.size:
        raise StudyError(f"the sweep has no {what} {value:g} (swept: {', '.join(f'{v:g}' for v in values)})")
    return int(matches[0])
