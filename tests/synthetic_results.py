"""A tiny, made-up repository state for the evaluate stage: what tune and train would have left behind.

BN's curves are built to converge faster and its sigmoid inputs to stay put, vanilla's to drift, so the
outcome of the curve, drift and learning-rate comparisons is known in advance. The models are untrained tiny
MLPs: their scores are real, but not meant to favour either variant.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from src.atomic import write_csv
from src.config import parse_params
from src.models import build_model
from tests import synthetic

SEEDS = [0, 1, 2]
STEPS = np.arange(0, 1100, 100)
UNITS = 2
# time constants of 1 − 0.9 exp(−step / τ): BN gets there sooner, and a little higher
TIME_CONSTANT = {"vanilla": 250.0, "bn": 100.0}
CEILING = {"vanilla": 0.975, "bn": 0.985}
LEARNING_RATES = {"vanilla": 0.5, "bn": 5.0}


def tiny_params(repo_root: Path) -> dict:
    """The repository's params.yaml shrunk to a two-layer, eight-unit net with seeds and targets to match."""
    raw = copy.deepcopy(yaml.safe_load((repo_root / "params.yaml").read_text()))
    raw["model"].update(hidden_layers=2, hidden_units=8, population_batches=2)
    raw["train"].update(steps=int(STEPS[-1]), seeds=len(SEEDS), tracked_units=UNITS, eval_every=100)
    raw["evaluate"].update(accuracy_targets=[0.9, 0.95, 0.99], confidence=0.95)
    return raw


def accuracy_curve(variant: str, seed: int) -> np.ndarray:
    noise = np.random.default_rng([seed, len(variant)]).normal(0, 0.002, STEPS.shape)
    curve = 1 - 0.9 * np.exp(-STEPS / TIME_CONSTANT[variant]) + noise
    return np.minimum(curve, CEILING[variant] + noise)


def write_results_tree(root: Path, repo_root: Path) -> dict:
    """Write params.yaml, data/processed, models/, results/tune/ and results/train/ under `root`; return params."""
    raw = tiny_params(repo_root)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    params = parse_params(raw)
    synthetic.write_processed(root / "data" / "processed", {"train": 300, "val": 100, "test": 200})
    for variant in ("vanilla", "bn"):
        _write_models(root / "models" / variant, params.model, variant)
        _write_history(root / "results" / "train" / variant, variant)
        _write_sigmoid_inputs(root / "results" / "train" / variant, variant)
        _write_tuning(root / "results" / "tune" / variant, variant)
    return raw


def _write_models(directory: Path, model_config, variant: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model = build_model(model_config, variant, SEEDS, "cpu")
    for member, seed in enumerate(SEEDS):
        torch.save(model.member_state_dict(member), directory / f"seed_{seed}.pt")


def _write_history(directory: Path, variant: str) -> None:
    rows = [
        {
            "step": int(step),
            "seed": seed,
            "test_accuracy": accuracy,
            "test_loss": 2.3 * (1 - accuracy),
            "diverged": False,
        }
        for seed in SEEDS
        for step, accuracy in zip(STEPS, accuracy_curve(variant, seed), strict=True)
    ]
    write_csv(directory / "history.csv", rows, ["step", "seed", "test_accuracy", "test_loss", "diverged"])
    summary = {
        "variant": variant,
        "lr": LEARNING_RATES[variant],
        "lr_source": "tune",
        "seeds": SEEDS,
        "steps": int(STEPS[-1]),
        "batch_size": 60,
        "final_test_accuracy_mean": 0.97,
        "final_test_accuracy_std": 0.01,
        "n_diverged": 0,
        "device": "cpu",
        "wall_time_s": 12.5,
    }
    (directory / "summary.json").write_text(json.dumps(summary))


def _write_sigmoid_inputs(directory: Path, variant: str) -> None:
    # vanilla: the median slides down and the spread widens; BN: the distribution stays where it started
    drift = STEPS / STEPS[-1] if variant == "vanilla" else np.zeros(STEPS.shape)
    rows = [
        {"step": int(step), "seed": seed, "unit": unit, "p15": -1 - 3 * d - unit, "p50": -2 * d, "p85": 1 + d}
        for seed in SEEDS
        for unit in range(UNITS)
        for step, d in zip(STEPS, drift, strict=True)
    ]
    write_csv(directory / "sigmoid_inputs.csv", rows, ["step", "seed", "unit", "p15", "p50", "p85"])


def _write_tuning(directory: Path, variant: str) -> None:
    # vanilla diverges from lr 5 on, BN only at 50; a failed trial has no value
    lrs = [0.05, 0.5, 5.0, 20.0, 50.0]
    diverges_from = 5.0 if variant == "vanilla" else 50.0
    rows = []
    for number, lr in enumerate(lrs):
        diverged = lr >= diverges_from
        state = "PRUNED" if diverged or number == 0 else "COMPLETE"
        value = 0.098 if diverged else 0.9 + 0.01 * number
        rows.append({"number": number, "lr": lr, "value": value, "state": state, "diverged": diverged})
    rows.append({"number": len(lrs), "lr": 1.0, "value": "", "state": "FAIL", "diverged": False})
    write_csv(directory / "trials.csv", rows, ["number", "lr", "value", "state", "diverged"])
    best = {
        "variant": variant,
        "study_name": f"bn-mnist-{variant}",
        "storage": "sqlite:///optuna.db",
        "best_lr": LEARNING_RATES[variant],
        "best_value": 0.93,
        "trials_budget": len(rows),
        "n_complete": sum(row["state"] == "COMPLETE" for row in rows),
        "n_pruned": sum(row["state"] == "PRUNED" for row in rows),
        "n_failed": 1,
        "steps": 500,
    }
    (directory / "best.json").write_text(json.dumps(best))
