"""A small tuning project for the tests of src/tune/study.py, src/tune/trials.py, src/tune/ and the tune stage.

`write_tune_project` makes a scratch repository root holding a small params.yaml and synthetic processed data
without a test split (tuning must never read it), so the default storage sqlite:///optuna.db lands there too;
conftest.py's `tune_project` fixture makes one the working directory.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from optuna.trial import TrialState

from src.config import TuneConfig, load_params, with_overrides
from tests import synthetic
from tests.processes import REPO_ROOT, start, write_params

STEPS, EVAL_EVERY = 200, 50
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SETTINGS = {"variant": "bn", "steps": STEPS}  # what identifies a study (src/study.study_settings, in short)


def _small(raw: dict) -> None:
    raw["model"].update(hidden_units=32, population_batches=20)
    raw["train"].update(batch_size=20, device="cpu", tracked_units=4)
    raw["tune"].update(
        trials=4,
        trials_per_batch=2,
        steps=STEPS,
        eval_every=EVAL_EVERY,
        lr_min=1.0e-4,  # the seeded draws span rates that cannot learn in STEPS steps and rates that can
        lr_max=10.0,
        storage="sqlite:///optuna.db",
        pruning_warmup_evals=1,
    )


def write_tune_project(directory: Path) -> Path:
    """`directory` as a small tuning project: params.yaml and data/processed with train and val splits only."""
    synthetic.write_processed(directory / "data" / "processed", {"train": 600, "val": 200})
    write_params(directory, _small)
    return directory


def edit_tune(directory: Path, **values) -> None:
    """Set `values` in the tune section of `directory`'s params.yaml."""
    params = directory / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["tune"].update(values)
    params.write_text(yaml.safe_dump(raw, sort_keys=False))


def tune_config(**changes) -> TuneConfig:
    """The repository's tune section with a small budget, two trials a batch and a range holding every outcome."""
    values = dict(
        trials=4,
        trials_per_batch=2,
        lr_min=1e-5,
        lr_max=100.0,
        steps=STEPS,
        seed=0,
        timeout_s=None,
        eval_every=EVAL_EVERY,
        pruning_warmup_evals=1,
    )
    overrides = {f"tune.{key}": value for key, value in {**values, **changes}.items()}
    return with_overrides(load_params(REPO_ROOT / "params.yaml"), overrides).tune


def tuner(directory: Path, *args: str) -> subprocess.Popen:
    """`python -m src.tune --variant bn ...` running in `directory`."""
    return start("src.tune", "--variant", "bn", *args, cwd=directory)


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    """Wait for `process`, which must succeed; its stdout."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out
