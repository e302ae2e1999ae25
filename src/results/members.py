"""The per-member files of train@, sweep@ and edge@, each row labelled by the member's columns (seed, or lr,
init_std, seed): history.csv, sigmoid_inputs.csv and final.csv, and predictions.npz (every test image's class)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.atomic import atomic_path, write_csv
from src.engine.trainer import LEVELS, Evaluation, TrainingHistory
from src.errors import StudyError
from src.training.members import COLUMNS, MemberTable

HISTORY = ("test_accuracy", "test_loss", "diverged")  # history.csv: step, <labels>, then these


SIGMOID_INPUTS = ("unit", *LEVELS)  # sigmoid_inputs.csv: step, <labels>, then these


FINAL = ("test_accuracy", "test_loss", "diverged")  # final.csv: <labels>, then these


def write_history(directory: Path, result: TrainingHistory, members: MemberTable) -> None:
    """history.csv: every evaluation of every member (BN under its moving averages, as it trains)."""
    labels = members.rows()
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
    write_csv(directory / "history.csv", rows, ["step", *members.labels, *HISTORY])


def write_sigmoid_inputs(directory: Path, result: TrainingHistory, members: MemberTable) -> None:
    """sigmoid_inputs.csv: the 15/50/85th percentiles of each tracked last-layer sigmoid's input, every evaluation."""
    labels = members.rows()
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
    write_csv(directory / "sigmoid_inputs.csv", rows, ["step", *members.labels, *SIGMOID_INPUTS])


def write_predictions(directory: Path, predicted: np.ndarray, members: MemberTable) -> None:
    """predictions.npz: each member's predicted class (uint8) of every test image, in the test split's order (BN under
    Algorithm 2), with the member table it belongs to: what lets a claim resample the test images themselves."""
    with atomic_path(directory / "predictions.npz") as temporary, temporary.open("wb") as handle:
        np.savez_compressed(
            handle,
            predicted=predicted.astype(np.uint8),
            lr=np.array(members.lr),
            init_std=np.array(members.init_std),
            seed=np.array(members.seed),
        )


def read_predictions(directory: Path, members: MemberTable) -> np.ndarray:
    """(K, test images) predicted classes of `members`, whose table must be the one the file was written for."""
    path = directory / "predictions.npz"
    stage = f"{directory.parent.name}@{directory.name}"
    rerun = f"re-run `dvc repro {stage}`"
    try:
        with np.load(path, allow_pickle=False) as saved:
            predicted, table = saved["predicted"], tuple(tuple(saved[name].tolist()) for name in COLUMNS)
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run `dvc repro {stage}` first)") from None
    except (OSError, ValueError, KeyError) as error:
        raise StudyError(f"{path}: not a predictions file ({error}); {rerun}") from None
    if table != (members.lr, members.init_std, members.seed) or predicted.shape[0] != len(members):
        raise StudyError(f"{path}: written for other members than params.yaml's; {rerun}")
    return predicted


def write_final(directory: Path, final: Evaluation, members: MemberTable) -> None:
    """final.csv: each member's trained network on the test split (BN under Algorithm 2's population statistics)."""
    rows = (
        {**label, "test_accuracy": accuracy, "test_loss": loss, "diverged": diverged}
        for label, accuracy, loss, diverged in zip(
            members.rows(), final.accuracy, final.loss, final.diverged, strict=True
        )
    )
    write_csv(directory / "final.csv", rows, [*members.labels, *FINAL])
