"""A small sweep in a scratch project, which tests/sweep/test_work.py and tests/test_slurm.py share between the stage
and workers: 6 units (2 seeds × 3 rates, 2 init stds each) of a tiny net, checkpointed every 50 steps, heartbeats
every second. conftest.py's `one_process_sweep` holds its outputs when the stage trains every unit itself.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from tests import synthetic
from tests.processes import write_params

STEPS, CHECKPOINT_EVERY, UNITS, MEMBERS = 600, 50, 6, 12


def small(storage: str, steps: int = STEPS) -> Callable[[dict], None]:
    """params.yaml's edit into the small sweep, its units queued in `storage`."""

    def edit(raw: dict) -> None:
        raw["model"].update(population_batches=5, hidden_units=16)
        raw["train"].update(tracked_units=2, percentile_examples=50, device="cpu")
        raw["sweep"].update(
            lr_min=0.1,
            lr_max=10.0,
            lrs_per_decade=1,
            init_stds=[0.1, 1.0],
            seeds=2,
            steps=steps,
            eval_every=100,
            evals_per_decade=0,
            checkpoint_every=CHECKPOINT_EVERY,
            unit={"seed_and_rates": 1},
            storage=storage,
            heartbeat_s=1,
        )
        raw["evaluate"]["figure1_lrs"] = [1.0]
        raw["edge"]["init_stds"] = [0.1]

    return edit


def write_project(directory: Path, storage: str) -> Path:
    """A scratch project of the small sweep in `directory`: its params.yaml and synthetic processed data."""
    synthetic.write_processed(directory / "data" / "processed")
    write_params(directory, small(storage))
    return directory


def outputs(project: Path) -> dict[str, str]:
    """The SHA-256 of every output file of sweep@bn in `project`, by name."""
    files = sorted((project / "results" / "sweep" / "bn").iterdir())
    assert files, "the stage wrote nothing"
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def copy_mlflow_store(directory: Path, template: Path) -> str:
    """A copy of the migrated MLflow store `template` in `directory`: its URI."""
    shutil.copyfile(template, directory / "mlflow.db")
    return f"sqlite:///{directory / 'mlflow.db'}"
