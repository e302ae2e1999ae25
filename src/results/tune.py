"""tune@'s outputs, results/tune/<variant>/: best.json (the tuned rate) and trials.csv (every finished trial)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd

from src.atomic import write_csv
from src.config import PositiveFloat
from src.results.files import JsonFile, parsing, read_table

TRIALS = ("number", "lr", "value", "state", "diverged")  # trials.csv


TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL")  # the states of a finished trial that ran


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
        {
            "number": t.number,
            "lr": t.lr,
            "value": "" if t.value is None else t.value,
            "state": t.state,
            "diverged": t.diverged,
        }
        for t in trials
    )
    write_csv(directory / "trials.csv", rows, TRIALS)


def read_trials(directory: Path) -> list[TuningTrial]:
    """trials.csv (number,lr,value,state,diverged), in trial order."""
    path = directory / "trials.csv"
    table = read_table(path, TRIALS).sort_values("number")
    with parsing(path):
        return [
            TuningTrial(
                int(row.number),
                float(row.lr),
                None if pd.isna(row.value) else float(row.value),
                str(row.state).strip().upper(),
                bool(row.diverged),
            )
            for row in table.itertuples()
        ]
