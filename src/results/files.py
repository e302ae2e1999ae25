"""The files the stages hand each other, each defined once: its layout, its writer and, beside it, its reader.

    tune@<variant>   results/tune/<variant>/best.json, trials.csv
    train@<variant>  models/<variant>/seed_<s>.pt; results/train/<variant>/history.csv, sigmoid_inputs.csv, summary.json
    sweep@<variant>  results/sweep/<variant>/history.csv, sigmoid_inputs.csv, final.csv, summary.json

A reader returns a typed object. A missing file, key or column, or a malformed value, is one StudyError naming the
file and what is wrong, with the stage to re-run; nothing falls back to a default.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict

from src.atomic import atomic_directory, atomic_path, write_csv, write_json
from src.config import Model, Params, PositiveFloat, validated
from src.engine.schedule import eval_schedule
from src.engine.trainer import PERCENTILES, Evaluation, TrainResult
from src.errors import StudyError
from src.training.members import COLUMNS, MemberTable

RESULTS = Path("results")
MODELS = Path("models")

HISTORY = ("test_accuracy", "test_loss", "diverged")  # history.csv: step, <labels>, then these
LEVELS = tuple(f"p{round(q * 100)}" for q in PERCENTILES)  # p15, p50, p85
SIGMOID_INPUTS = ("unit", *LEVELS)  # sigmoid_inputs.csv: step, <labels>, then these
FINAL = ("test_accuracy", "test_loss", "diverged")  # final.csv: <labels>, then these
TRIALS = ("number", "lr", "value", "state", "diverged")  # trials.csv
TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL")  # the states of a finished trial that ran


def stage_dir(stage: str, variant: str) -> Path:
    """results/<stage>/<variant>: where a stage's small outputs for one variant live."""
    return RESULTS / stage / variant


class JsonFile(BaseModel):
    """A JSON file one stage writes and another reads: its keys are the fields, in the order they are written."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    NAME: ClassVar[str]
    STAGE: ClassVar[str]  # the stage that writes it, named in the error a bad file gives

    def write(self, directory: Path) -> None:
        write_json(directory / self.NAME, self.model_dump())

    @classmethod
    def read(cls, directory: Path) -> Self:
        return read_json_as(cls, directory / cls.NAME, f"{cls.STAGE}@{directory.name}")


def read_json_as(model: type[Model], path: Path, stage: str) -> Model:
    """The JSON file at `path` as a `model`; anything wrong with it is one StudyError naming the file, what is wrong
    and the `dvc repro` target (`stage`) that rewrites it."""
    rerun = f"re-run `dvc repro {stage}` to rewrite it"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run `dvc repro {stage}` first)") from None
    except OSError as error:
        raise StudyError(f"{path}: cannot be read ({error.strerror}); {rerun}") from None
    except ValueError as error:
        raise StudyError(f"{path}: not valid JSON ({error}); {rerun}") from None
    return validated(model, raw, source=str(path), hint=rerun)


# --- tune@: best.json and trials.csv -----------------------------------------------------------------------------


class TuningSummary(JsonFile):
    """best.json: the tuned learning rate and how the study's trials ended."""

    NAME: ClassVar[str] = "best.json"
    STAGE: ClassVar[str] = "tune"
    variant: str
    study_name: str
    storage: str  # its password redacted
    best_lr: PositiveFloat
    best_value: float
    trials_budget: int
    n_complete: int
    n_pruned: int
    n_failed: int
    steps: int
    device: str


@dataclass(frozen=True)
class TuningTrial:
    """One row of trials.csv: a finished trial that ran."""

    number: int
    lr: float
    value: float | None  # validation accuracy (the last reported one for a pruned trial); None if it failed
    state: str  # COMPLETE | PRUNED | FAIL
    diverged: bool

    def __post_init__(self) -> None:
        if self.state not in TRIAL_STATES:
            raise ValueError(f"a trial's state must be one of {', '.join(TRIAL_STATES)}, got {self.state!r}")


def write_trials(directory: Path, trials: Sequence[TuningTrial]) -> None:
    rows = (
        {"number": t.number, "lr": t.lr, "value": "" if t.value is None else t.value, "state": t.state,
         "diverged": t.diverged}
        for t in trials
    )  # fmt: skip
    write_csv(directory / "trials.csv", rows, TRIALS)


def read_trials(directory: Path) -> list[TuningTrial]:
    """trials.csv (number,lr,value,state,diverged), in trial order."""
    path = directory / "trials.csv"
    table = read_table(path, TRIALS).sort_values("number")
    with parsing(path):
        return [
            TuningTrial(int(row.number), float(row.lr), None if pd.isna(row.value) else float(row.value),
                        str(row.state).strip().upper(), bool(row.diverged))
            for row in table.itertuples()
        ]  # fmt: skip


# --- train@ and sweep@: per-member histories ---------------------------------------------------------------------


def write_history(directory: Path, result: TrainResult, members: MemberTable) -> None:
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


def write_sigmoid_inputs(directory: Path, result: TrainResult, members: MemberTable) -> None:
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
        np.savez_compressed(handle, predicted=predicted.astype(np.uint8), lr=np.array(members.lr),
                            init_std=np.array(members.init_std), seed=np.array(members.seed))  # fmt: skip


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


# --- train@: the models, their curves and summary.json -----------------------------------------------------------


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

    def stacked(self) -> np.ndarray:
        """(3, evals): the rows 15th, 50th, 85th."""
        return np.stack([self.p15, self.p50, self.p85])


@dataclass(frozen=True)
class TrainedRun:
    """What train@ wrote for one variant, read back."""

    summary: TrainSummary
    curves: Curves
    sigmoid_inputs: dict[tuple[int, int], Percentiles]  # (seed, unit) -> percentiles
    models: dict[int, Path]  # seed -> its saved network


def read_trained(variant: str) -> TrainedRun:
    """train@<variant>'s outputs; models, history and summary must cover the same seeds."""
    directory = stage_dir("train", variant)
    run = TrainedRun(
        summary=TrainSummary.read(directory),
        curves=read_history(directory / "history.csv"),
        sigmoid_inputs=read_sigmoid_inputs(directory / "sigmoid_inputs.csv"),
        models=model_paths(MODELS / variant),
    )
    if not sorted(run.models) == run.curves.seeds == run.summary.seeds:
        raise StudyError(
            f"train@{variant}: models/{variant} holds seeds {sorted(run.models)}, its history {run.curves.seeds} and "
            f"its summary {run.summary.seeds}: re-run `dvc repro train@{variant}`"
        )
    return run


def read_history(path: Path) -> Curves:
    """train@'s history.csv (step,seed,test_accuracy,test_loss,diverged) as per-seed curves."""
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
    """train@'s sigmoid_inputs.csv (step,seed,unit,p15,p50,p85) as (seed, unit) -> percentiles."""
    table = read_table(path, ["step", "seed", *SIGMOID_INPUTS]).sort_values(["seed", "unit", "step"])
    with parsing(path):
        return {
            (int(seed), int(unit)): Percentiles(*(rows[name].to_numpy(dtype=float) for name in ("step", *LEVELS)))
            for (seed, unit), rows in table.groupby(["seed", "unit"])
        }


# --- sweep@: final.csv, summary.json, and the whole sweep read back on its grid ----------------------------------


class SweepSummary(JsonFile):
    """sweep@'s summary.json."""

    NAME: ClassVar[str] = "summary.json"
    STAGE: ClassVar[str] = "sweep"
    variant: str
    members: int  # learning rates × init stds × seeds
    steps: int  # each member's
    device: str  # the resolved one


def write_final(directory: Path, final: Evaluation, members: MemberTable) -> None:
    """final.csv: each member's trained network on the test split (BN under Algorithm 2's population statistics)."""
    rows = (
        {**label, "test_accuracy": accuracy, "test_loss": loss, "diverged": diverged}
        for label, accuracy, loss, diverged in zip(
            members.rows(), final.accuracy, final.loss, final.diverged, strict=True
        )
    )
    write_csv(directory / "final.csv", rows, [*members.labels, *FINAL])


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


def read_sweep(variant: str, params: Params) -> SweepResults:
    """sweep@<variant>'s CSVs on the grid, eval steps and tracked units of `params`; a missing or stray row is one
    StudyError naming the file."""
    directory, sweep = stage_dir("sweep", variant), params.sweep
    labels = ["seed", "init_std", "lr"]
    grid = [sweep.seed_list, sweep.init_stds, sweep.learning_rates]
    steps = list(eval_schedule(sweep.steps, sweep.eval_every, sweep.evals_per_decade))
    units = list(range(params.train.tracked_units))
    final_accuracy, diverged = read_sweep_final(variant, params)
    accuracy = _on_grid(directory / "history.csv", [*labels, "step"], [*grid, steps], ["test_accuracy"])
    percentiles = _on_grid(directory / "sigmoid_inputs.csv", [*labels, "unit", "step"], [*grid, units, steps],
                           list(LEVELS))  # fmt: skip
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


def read_sweep_final(variant: str, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """sweep@<variant>'s final.csv as (final test accuracy, diverged), each (S, I, L) on params.sweep's grid."""
    sweep = params.sweep
    grid = [sweep.seed_list, sweep.init_stds, sweep.learning_rates]
    final = _on_grid(stage_dir("sweep", variant) / "final.csv", ["seed", "init_std", "lr"], grid,
                     ["test_accuracy", "diverged"])  # fmt: skip
    return final[..., 0].astype(float), final[..., 1].astype(bool)


def read_edge_final(variant: str, members: MemberTable) -> tuple[np.ndarray, np.ndarray]:
    """edge@<variant>'s final.csv as (final test accuracy, diverged), each (K,) in the order of `members`, the table
    the sweep's results say the stage trains (a file of other members is one StudyError)."""
    path = stage_dir("edge", variant) / "final.csv"
    table = read_table(path, [*COLUMNS, *FINAL])
    with parsing(path):
        written = (tuple(table["lr"].astype(float)), tuple(table["init_std"].astype(float)), tuple(table["seed"]))
        if written != (members.lr, members.init_std, members.seed):
            raise StudyError(f"{path}: not the members the sweep's results call for; re-run `dvc repro edge@{variant}`")
        return table["test_accuracy"].to_numpy(dtype=float), table["diverged"].to_numpy(dtype=bool)


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


# --- reading tables ----------------------------------------------------------------------------------------------


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
