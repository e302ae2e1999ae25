"""The per-member result files the training stages write and evaluate reads: one column layout, defined here.

A member is labelled by the columns that say which run it is: {seed} in train@, {lr, init_std, seed} in sweep@.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from src.atomic import write_csv
from src.cli import UsageError
from src.engine import PERCENTILES, Evaluation, TrainResult

HISTORY = ("test_accuracy", "test_loss", "diverged")  # history.csv: step, <labels>, then these
LEVELS = tuple(f"p{round(q * 100)}" for q in PERCENTILES)  # p15, p50, p85
SIGMOID_INPUTS = ("unit", *LEVELS)  # sigmoid_inputs.csv: step, <labels>, then these
FINAL = ("test_accuracy", "test_loss", "diverged")  # final.csv: <labels>, then these

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


@contextmanager
def parsing(path: Path) -> Iterator[None]:
    """A malformed value in an input file is one UsageError naming the file, not a bare ValueError."""
    try:
        yield
    except ValueError as error:
        raise UsageError(f"{path}: malformed value ({error})") from None


def read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV that must have at least `columns`; a missing file or column is one UsageError."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (run the stage that writes it first: `dvc repro`)") from None
    missing = [name for name in columns if name not in header]
    if missing:
        raise UsageError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}")
    if not rows:
        raise UsageError(f"{path}: no rows")
    return rows


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (run the stage that writes it first: `dvc repro`)") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: not valid JSON: {error}") from None


def parse_number(text: str) -> float:
    # a diverged model's loss may be recorded as nan or inf, or left empty
    return float(text) if text.strip() else math.nan


def parse_flag(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes"}
