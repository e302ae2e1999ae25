"""Every path the study reads or writes, relative to the project's root (where `dvc repro` runs the stages)."""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

RAW_DATA = Path("data/raw")  # download's output: the four MNIST IDX files
PROCESSED_DATA = Path("data/processed")  # preprocess's output: train.npz, val.npz, test.npz
DATA_SUMMARY = Path("results/data_summary.json")

RESULTS = Path("results")  # the small outputs, committed: results/<stage>/<variant>/
MODELS = Path("models")  # train@'s networks, one directory per variant
CHECKPOINTS = Path(".checkpoints")  # a long stage's resumable state, removed once its outputs land

METRICS = RESULTS / "metrics.json"
HEADLINE = RESULTS / "headline.json"  # the few numbers `dvc exp show` and `dvc metrics diff` compare
PLOTS = RESULTS / "plots"
REPORT = Path("reports/report.md")
FIGURES = Path("reports/figures")

# MLflow's own default layout, at the project's root: `mlflow ui` run there with no arguments shows every run
MLFLOW_STORE = Path("mlflow.db")
MLFLOW_ARTIFACTS = Path("mlruns")


def stage_dir(stage: str, variant: str) -> Path:
    """results/<stage>/<variant>: where a stage's small outputs for one variant live."""
    return RESULTS / stage / variant


def model_dir(variant: str) -> Path:
    """models/<variant>: train@'s networks of one variant."""
    return MODELS / variant


def checkpoint(name: str) -> Path:
    """.checkpoints/<name>.pt: the checkpoint of one stage (train-bn) or one unit of the sweep (sweep-bn-seed2)."""
    return CHECKPOINTS / f"{name}.pt"
