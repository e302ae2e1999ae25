"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from src import paths
from src.engine.trainer import Evaluation, TrainingHistory
from src.errors import StudyError
from src.results.members import write_final
from src.results.tune import TuningSummary
from src.training.members import MemberTable


def located_result(steps: tuple[int, ...], members: int, units: int) -> TrainingHistory:
    """Every value says where it came from (evaluation i, member k, level, unit), so a misplaced one shows."""
    i, k = np.arange(len(steps))[:, None], np.arange(members)[None, :]
    level, unit = np.arange(3)[None, :, None, None], np.arange(units)[None, None, None, :]
    diverged = np.zeros((len(steps), members), dtype=bool)
    diverged[-1, 1] = True
    final = Evaluation(
        step=steps[-1],
        accuracy=[0.9 + member / 1000 for member in range(members)],
        loss=[0.3 + member / 1000 for member in range(members)],
        diverged=[member == 1 for member in range(members)],
    )
    return TrainingHistory(
        eval_steps=steps,
        accuracy=0.5 + k / 100 + i / 1000,
        loss=1.0 + k / 100 + i / 1000,
        diverged=diverged,
        percentiles=i[:, :, None, None] * 1000 + level * 100 + k[:, None, :, None] + unit / 10,
        final=final,
        wall_time_s=1.0,
    )


def rewrite_csv(path: Path, edit) -> None:
    """Read the CSV at `path`, pass (header, rows) to `edit`, write back what it returns."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = edit(list(reader.fieldnames), list(reader))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def first_row_with(column: str, value: str):
    """An edit for rewrite_csv: the first row's `column` set to `value`."""
    return lambda header, rows: (header, [{**rows[0], column: value}, *rows[1:]])


def raises_study_error(match: str):
    return pytest.raises(StudyError, match=match)


TUNING = TuningSummary(
    variant="bn",
    study_name="bn-mnist-bn",
    storage="sqlite:///optuna.db",
    best_lr=2.0,
    best_value=0.97,
    trials_budget=8,
    n_complete=5,
    n_pruned=2,
    n_failed=1,
    steps=100,
    device="cpu",
)


def stage_directory(root: Path, summary) -> Path:
    return root / paths.stage_dir(summary.STAGE, summary.variant)


def write_raw(path: Path, raw: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw))


def _refined(params) -> MemberTable:
    brackets = [(seed, 0.1, 1.0, 10.0) for seed in params.sweep.seed_list]
    return MemberTable.refining(brackets, params.edge.rates_between)


def _write_edge(root: Path, members: MemberTable) -> Evaluation:
    final = Evaluation(
        step=200,
        accuracy=[0.9 + k / 1000 for k in range(len(members))],
        loss=[0.3] * len(members),
        diverged=[k % 4 == 3 for k in range(len(members))],
    )
    write_final(root / paths.stage_dir("edge", "bn"), final, members)
    return final
