"""edge@'s outputs, results/edge/<variant>/: final.csv (each refined rate's trained network) and summary.json."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from src import paths
from src.errors import StudyError
from src.results.files import parsing, read_table
from src.results.members import FINAL
from src.results.sweep import SweepSummary
from src.training.members import COLUMNS, MemberTable


class EdgeSummary(SweepSummary):
    """edge@'s summary.json: as the sweep's, for the members it refines."""

    STAGE: ClassVar[str] = "edge"


def read_edge_final(variant: str, members: MemberTable) -> tuple[np.ndarray, np.ndarray]:
    """edge@<variant>'s final.csv as (final test accuracy, diverged), each (K,) in the order of `members`, the table
    the sweep's results say the stage trains (a file of other members is one StudyError)."""
    path = paths.stage_dir("edge", variant) / "final.csv"
    table = read_table(path, [*COLUMNS, *FINAL])
    with parsing(path):
        written = (tuple(table["lr"].astype(float)), tuple(table["init_std"].astype(float)), tuple(table["seed"]))
        if written != (members.lr, members.init_std, members.seed):
            raise StudyError(f"{path}: not the members the sweep's results call for; re-run `dvc repro edge@{variant}`")
        return table["test_accuracy"].to_numpy(dtype=float), table["diverged"].to_numpy(dtype=bool)
