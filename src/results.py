"""The per-member result files the training stages write and evaluate reads: one column layout, defined here.

A member is labelled by the columns that say which run it is: {seed} in train@, {lr, init_std, seed} in sweep@.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from src.atomic import write_csv
from src.engine import PERCENTILES, Evaluation, TrainResult
from src.errors import StudyError

HISTORY = ("test_accuracy", "test_loss", "diverged")  # history.csv: step, <labels>, then these
LEVELS = tuple(f"p{round(q * 100)}" for q in PERCENTILES)  # p15, p50, p85
SIGMOID_INPUTS = ("unit", *LEVELS)  # sigmoid_inputs.csv: step, <labels>, then these
FINAL = ("test_accuracy", "test_loss", "diverged")  # final.csv: <labels>, then these
TRIALS = ("number", "lr", "value", "state", "diverged")  # results/tune/<variant>/trials.csv

Labels = Sequence[Mapping[str, object]]  # one mapping per member, the same keys for all


def write_history(path: Path, result: TrainResult, labels: Labels) -> None:
    """Every evaluation of every member (BN under its moving averages, as it trains)."""
    rows = (
        {
            "step": step,
            **label,
            "test_accuracy": result.accuracy[i, member].item(),
            "test_loss": result.loss[i, member].item(),
            "diverged": bool(result.diverged[i, member]),
        }
        for i, step in enumerate(result.eval_steps)
        for member, label in enumerate(labels)
    )
    write_csv(path, rows, ["step", *labels[0], *HISTORY])


def write_sigmoid_inputs(path: Path, result: TrainResult, labels: Labels) -> None:
    """The 15/50/85th percentiles of each tracked last-hidden-layer sigmoid's input, at every evaluation."""
    rows = (
        {
            "step": step,
            **label,
            "unit": unit,
            **{name: result.percentiles[i, level, member, unit].item() for level, name in enumerate(LEVELS)},
        }
        for i, step in enumerate(result.eval_steps)
        for member, label in enumerate(labels)
        for unit in range(result.percentiles.shape[-1])
    )
    write_csv(path, rows, ["step", *labels[0], *SIGMOID_INPUTS])


def write_final(path: Path, final: Evaluation, labels: Labels) -> None:
    """Each member's trained network on the test split (BN under Algorithm 2's population statistics)."""
    rows = (
        {**label, "test_accuracy": accuracy, "test_loss": loss, "diverged": diverged}
        for label, accuracy, loss, diverged in zip(labels, final.accuracy, final.loss, final.diverged, strict=True)
    )
    write_csv(path, rows, [*labels[0], *FINAL])


def metric_histories(result: TrainResult, with_percentiles: bool) -> list[dict[str, list[tuple[int, float]]]]:
    """Per member, MLflow metric name -> (step, value): test accuracy and loss, and optionally the sigmoid inputs."""
    return [dict(_member_metrics(result, member, with_percentiles)) for member in range(result.accuracy.shape[1])]


def _member_metrics(result: TrainResult, member: int, with_percentiles: bool) -> Iterator[tuple[str, list]]:
    steps = result.eval_steps
    yield "test_accuracy", list(zip(steps, result.accuracy[:, member].tolist(), strict=True))
    yield "test_loss", list(zip(steps, result.loss[:, member].tolist(), strict=True))
    if with_percentiles and result.percentiles is not None:
        for unit in range(result.percentiles.shape[-1]):
            for level, name in enumerate(LEVELS):
                values = result.percentiles[:, level, member, unit].tolist()
                yield f"sigmoid_input_unit{unit}_{name}", list(zip(steps, values, strict=True))


# --- reading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curves:
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


@dataclass(frozen=True)
class TuningTrial:
    number: int
    lr: float
    value: float | None  # validation accuracy (the last reported one for a pruned trial); None if it failed
    state: str  # COMPLETE | PRUNED | FAIL
    diverged: bool


def model_paths(models_dir: Path) -> dict[int, Path]:
    """seed -> models_dir/seed_{seed}.pt, in seed order."""
    found = {}
    for path in models_dir.glob("seed_*.pt"):
        suffix = path.stem.removeprefix("seed_")
        if suffix.isdigit():
            found[int(suffix)] = path
    if not found:
        raise StudyError(f"{models_dir}: no seed_*.pt models (run the train stage first)")
    return dict(sorted(found.items()))


def read_history(path: Path) -> Curves:
    """results/train/{variant}/history.csv (step,seed,test_accuracy,test_loss,diverged) as per-seed curves."""
    table = read_table(path, ["step", "seed", *HISTORY])
    with parsing(path):
        accuracy, loss = (table.pivot(index="seed", columns="step", values=name) for name in HISTORY[:2])
        return Curves(
            steps=accuracy.columns.to_numpy(),
            seeds=accuracy.index.tolist(),
            accuracy=accuracy.to_numpy(dtype=float),
            loss=loss.to_numpy(dtype=float),
            diverged=table.groupby("seed")["diverged"].any().to_numpy(dtype=bool),
        )


def read_sigmoid_inputs(path: Path) -> dict[tuple[int, int], Percentiles]:
    """results/train/{variant}/sigmoid_inputs.csv (step,seed,unit,p15,p50,p85) as (seed, unit) -> percentiles."""
    table = read_table(path, ["step", "seed", *SIGMOID_INPUTS]).sort_values(["seed", "unit", "step"])
    with parsing(path):
        return {
            (int(seed), int(unit)): Percentiles(*(rows[name].to_numpy(dtype=float) for name in ("step", *LEVELS)))
            for (seed, unit), rows in table.groupby(["seed", "unit"])
        }


def read_trials(path: Path) -> list[TuningTrial]:
    """results/tune/{variant}/trials.csv (number,lr,value,state,diverged), in trial order."""
    table = read_table(path, list(TRIALS)).sort_values("number")
    with parsing(path):
        return [
            TuningTrial(int(row.number), float(row.lr), None if math.isnan(row.value) else float(row.value),
                        str(row.state).strip().upper(), bool(row.diverged))
            for row in table.itertuples()
        ]  # fmt: skip


@contextmanager
def parsing(path: Path) -> Iterator[None]:
    """A malformed value in an input file is one StudyError naming the file, not a bare ValueError."""
    try:
        yield
    except StudyError:
        raise
    except ValueError as error:
        raise StudyError(f"{path}: malformed value ({error})") from None


def read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV that must have at least `columns`; a missing file or column, or no rows, is one StudyError.

    Numbers are parsed exactly as Python's float() does (pandas 3's default), so a value reads back bit for bit.
    """
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run the stage that writes it first: `dvc repro`)") from None
    except pd.errors.EmptyDataError:
        raise StudyError(f"{path}: no rows") from None
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise StudyError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}")
    if table.empty:
        raise StudyError(f"{path}: no rows")
    for name in ("diverged",) if "diverged" in table.columns else ():
        if table[name].dtype != bool:
            raise StudyError(f"{path}: malformed value (column {name} must be True or False)")
    return table


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run the stage that writes it first: `dvc repro`)") from None
    except json.JSONDecodeError as error:
        raise StudyError(f"{path}: not valid JSON: {error}") from None


def read_tuned_learning_rate(path: Path, variant: str) -> float:
    """best_lr of a tuning result (results/tune/<variant>/best.json); anything else is one StudyError naming it."""
    rerun = f"re-run `dvc repro tune@{variant}` to rewrite it"
    try:
        best = json.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run `dvc repro tune@{variant}` first)") from None
    except ValueError as error:
        raise StudyError(f"{path}: not valid JSON ({error}); {rerun}") from None
    learning_rate = best.get("best_lr") if isinstance(best, dict) else None
    is_number = isinstance(learning_rate, int | float) and not isinstance(learning_rate, bool)
    if not (is_number and 0 < learning_rate < math.inf):
        raise StudyError(f"{path}: best_lr must be a positive number, got {learning_rate!r}; {rerun}")
    return float(learning_rate)
