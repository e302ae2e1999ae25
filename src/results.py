"""The per-member result files the training stages write and evaluate reads: one column layout, defined here.

A member is labelled by the columns that say which run it is: {seed} in train@, {lr, init_std, seed} in sweep@.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    rows = read_csv(path, ["step", "seed", *HISTORY])
    with parsing(path):
        return _curves(rows)


def _curves(rows: list[dict[str, str]]) -> Curves:
    steps = sorted({int(row["step"]) for row in rows})
    seeds = sorted({int(row["seed"]) for row in rows})
    column, line = {step: j for j, step in enumerate(steps)}, {seed: i for i, seed in enumerate(seeds)}
    accuracy = np.full((len(seeds), len(steps)), np.nan)
    loss = np.full_like(accuracy, np.nan)
    diverged = np.zeros(len(seeds), dtype=bool)
    for row in rows:
        i, j = line[int(row["seed"])], column[int(row["step"])]
        accuracy[i, j], loss[i, j] = parse_number(row["test_accuracy"]), parse_number(row["test_loss"])
        diverged[i] |= parse_flag(row["diverged"])
    return Curves(steps=np.array(steps), seeds=seeds, accuracy=accuracy, loss=loss, diverged=diverged)


def read_sigmoid_inputs(path: Path) -> dict[tuple[int, int], Percentiles]:
    """results/train/{variant}/sigmoid_inputs.csv (step,seed,unit,p15,p50,p85) as (seed, unit) -> percentiles."""
    rows = read_csv(path, ["step", "seed", *SIGMOID_INPUTS])
    with parsing(path):
        return _percentiles(rows)


def _percentiles(rows: list[dict[str, str]]) -> dict[tuple[int, int], Percentiles]:
    grouped: dict[tuple[int, int], list[dict]] = {}
    for row in rows:
        grouped.setdefault((int(row["seed"]), int(row["unit"])), []).append(row)
    curves = {}
    for key, unit_rows in sorted(grouped.items()):
        unit_rows.sort(key=lambda row: int(row["step"]))
        curves[key] = Percentiles(
            *(np.array([parse_number(row[name]) for row in unit_rows]) for name in ("step", "p15", "p50", "p85"))
        )
    return curves


def read_trials(path: Path) -> list[TuningTrial]:
    """results/tune/{variant}/trials.csv (number,lr,value,state,diverged), in trial order."""
    rows = read_csv(path, list(TRIALS))
    with parsing(path):
        trials = [
            TuningTrial(
                number=int(row["number"]),
                lr=float(row["lr"]),
                value=float(row["value"]) if row["value"].strip() else None,
                state=row["state"].strip().upper(),
                diverged=parse_flag(row["diverged"]),
            )
            for row in rows
        ]
    return sorted(trials, key=lambda trial: trial.number)


@contextmanager
def parsing(path: Path) -> Iterator[None]:
    """A malformed value in an input file is one StudyError naming the file, not a bare ValueError."""
    try:
        yield
    except StudyError:
        raise
    except ValueError as error:
        raise StudyError(f"{path}: malformed value ({error})") from None


def read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV that must have at least `columns`; a missing file or column is one StudyError."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run the stage that writes it first: `dvc repro`)") from None
    missing = [name for name in columns if name not in header]
    if missing:
        raise StudyError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}")
    if not rows:
        raise StudyError(f"{path}: no rows")
    return rows


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


def parse_number(text: str) -> float:
    # a diverged model's loss may be recorded as nan or inf, or left empty
    return float(text) if text.strip() else math.nan


def parse_flag(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes"}
