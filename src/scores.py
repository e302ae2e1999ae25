"""Each variant at its tuned rate (train@): its saved models scored, its curves and tuning study reduced to metrics.

Final numbers come from scoring the saved models (BN under Algorithm 2); the curves come from the training histories
(BN under its moving averages). Paths are relative to a `root`, the repository root in the pipeline.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from src import stats
from src.claims import DRIFT_REFERENCE_FRACTION, Claim, TrainedSeeds
from src.config import ModelConfig, Variant
from src.data import Split
from src.errors import StudyError
from src.models import load_member
from src.results import (
    Curves,
    Percentiles,
    TuningTrial,
    model_paths,
    read_history,
    read_json,
    read_sigmoid_inputs,
    read_trials,
)

_SCORING_BATCH = 10_000  # bounds memory when scoring the 50,000 training images


@dataclass(frozen=True)
class Scores:
    """One model on one split."""

    accuracy: float
    loss: float
    confusion: np.ndarray  # confusion[true, predicted], counts


@dataclass(frozen=True)
class VariantResults:
    """Everything the comparison knows about one variant."""

    variant: Variant
    curves: Curves
    sigmoid_inputs: dict[tuple[int, int], Percentiles]  # (seed, unit) -> percentiles
    trials: list[TuningTrial]
    tuning: dict  # results/tune/{variant}/best.json
    training: dict  # results/train/{variant}/summary.json
    test: dict[int, Scores]  # seed -> scores on the test split
    train: dict[int, Scores]  # seed -> scores on the training split


def load_variant(
    root: Path, variant: Variant, model_config: ModelConfig, test_split: Split, train_split: Split
) -> VariantResults:
    """Read one variant's tuning and training outputs under `root` and score its saved models."""
    curves = read_history(root / "results" / "train" / variant / "history.csv")
    paths = model_paths(root / "models" / variant)
    if sorted(paths) != curves.seeds:
        raise StudyError(
            f"models/{variant} holds seeds {sorted(paths)} but its history has seeds {curves.seeds}: "
            f"re-run `dvc repro train@{variant}`"
        )
    test, train = {}, {}
    for seed, path in paths.items():
        model = load_member(path, model_config, variant, test_split.images.device)
        test[seed], train[seed] = score(model, test_split), score(model, train_split)
    return VariantResults(
        variant=variant,
        curves=curves,
        sigmoid_inputs=read_sigmoid_inputs(root / "results" / "train" / variant / "sigmoid_inputs.csv"),
        trials=read_trials(root / "results" / "tune" / variant / "trials.csv"),
        tuning=read_json(root / "results" / "tune" / variant / "best.json"),
        training=read_json(root / "results" / "train" / variant / "summary.json"),
        test=test,
        train=train,
    )


@torch.no_grad()
def score(model: torch.nn.Module, split: Split) -> Scores:
    """Accuracy, mean cross-entropy and confusion matrix of a one-member model on a split, in inference mode."""
    if len(split.labels) == 0:
        raise StudyError("cannot score a model on an empty split")
    model.eval()
    confusion, loss_sum = 0, 0.0
    for start in range(0, len(split.labels), _SCORING_BATCH):
        logits = model(split.images[start : start + _SCORING_BATCH])[0]
        labels = split.labels[start : start + _SCORING_BATCH]
        classes = logits.shape[-1]
        loss_sum += F.cross_entropy(logits.double(), labels, reduction="sum").item()
        pairs = torch.bincount(labels * classes + logits.argmax(dim=-1), minlength=classes * classes)
        confusion = confusion + pairs.view(classes, classes).cpu().numpy()
    total = int(confusion.sum())
    return Scores(accuracy=float(np.trace(confusion)) / total, loss=loss_sum / total, confusion=confusion)


def target_key(target: float) -> str:
    """0.95 -> '95', 0.975 -> '97.5': a metric-name-friendly percentage."""
    return f"{target * 100:g}"


def trained_seeds(result: VariantResults) -> TrainedSeeds:
    """The per-seed numbers the claims pair across the variants."""
    seeds = result.curves.seeds
    drift = [
        np.mean([drift.relative_drift for (seed_of, _), drift in unit_drifts(result).items() if seed_of == seed])
        for seed in seeds
    ]
    return TrainedSeeds(
        seeds=seeds,
        steps=result.curves.steps,
        accuracy=result.curves.accuracy,
        final_accuracy=np.array([result.test[seed].accuracy for seed in seeds]),
        drift=np.array(drift),
    )


def unit_drifts(result: VariantResults) -> dict[tuple[int, int], stats.PercentileDrift]:
    """(seed, unit) -> how that sigmoid's input distribution moved from 10 % of training to the end."""
    return {
        key: stats.percentile_drift(curve.steps, curve.p15, curve.p50, curve.p85, DRIFT_REFERENCE_FRACTION)
        for key, curve in result.sigmoid_inputs.items()
    }


def build_metrics(
    results: Mapping[Variant, VariantResults],
    claims: Sequence[Claim],
    robustness: Mapping[str, object],
    targets: Sequence[float],
    confidence: float,
) -> dict:
    """results/metrics.json: the claims, one section per variant (train@), the sweep's horizon check and map."""
    metrics: dict = {"claims": {claim.key: claim.as_metrics() for claim in claims}}
    metrics |= {variant: variant_metrics(result, targets, confidence) for variant, result in results.items()}
    metrics |= robustness
    return finite_or_none(metrics)


def variant_metrics(result: VariantResults, targets: Sequence[float], confidence: float) -> dict:
    """train@ of one variant at its tuned rate: final numbers (BN under both inference rules), speed, drift."""
    seeds = sorted(result.test)
    test_accuracy = stats.seed_summary([result.test[seed].accuracy for seed in seeds], confidence)
    train_accuracy = float(np.mean([result.train[seed].accuracy for seed in seeds]))
    curves = result.curves
    metrics = {
        "lr": result.training.get("lr", result.tuning.get("best_lr")),
        "n_seeds": len(seeds),
        "n_diverged": int(curves.diverged.sum()),
        # the saved models: BN under Algorithm 2's population statistics
        "test_accuracy": {
            "mean": test_accuracy.mean,
            "std": test_accuracy.std,
            "ci_low": test_accuracy.ci_low,
            "ci_high": test_accuracy.ci_high,
        },
        # the history's last evaluation: BN under the moving averages it trained with
        "test_accuracy_moving_average": _mean(curves.accuracy[:, -1].tolist()),
        "test_loss_mean": _mean([result.test[seed].loss for seed in seeds]),
        "train_accuracy_mean": train_accuracy,
        "train_loss_mean": _mean([result.train[seed].loss for seed in seeds]),
        "train_test_gap": train_accuracy - test_accuracy.mean,
        "accuracy_auc": _mean(
            [stats.mean_accuracy_over_steps(*_observed(curves.steps, row)) for row in curves.accuracy]
        ),
    }
    for target in targets:
        reached = steps_to(curves, target)
        metrics[f"steps_to_{target_key(target)}"] = {"median": reached.median, "n_reached": reached.n_reached}
    drifts = list(unit_drifts(result).values())
    metrics["sigmoid_input_drift"] = {
        "reference_step": drifts[0].reference_step,
        "relative": _mean([drift.relative_drift for drift in drifts]),
        "median_shift_abs": _mean([abs(drift.median_shift) for drift in drifts]),
    }
    metrics["lr_search"] = {
        "best_lr": result.tuning.get("best_lr"),
        "best_value": result.tuning.get("best_value"),
        "n_trials": len(result.trials),
        "n_diverged": sum(trial.diverged for trial in result.trials),
    }
    return metrics


def steps_to(curves: Curves, target: float) -> stats.StepsToTarget:
    # an evaluation a seed does not have (NaN) never counts as reaching the target
    return stats.steps_to_target(curves.steps, np.nan_to_num(curves.accuracy, nan=-1.0), target)


def mean_curves(results: Mapping[Variant, VariantResults], quantity: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every variant's mean over seeds of 'accuracy' or 'loss' on the union of their step grids (NaN where absent)."""
    steps = np.array(sorted(set().union(*(result.curves.steps.tolist() for result in results.values()))))
    columns = {}
    for variant, result in results.items():
        values = getattr(result.curves, quantity)
        finite = np.where(np.isfinite(values), values, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step where every seed's value is NaN stays NaN
            mean = np.nanmean(finite, axis=0)
        columns[variant] = np.full(steps.shape, np.nan)
        columns[variant][np.searchsorted(steps, result.curves.steps)] = mean
    return steps, columns


def finite_or_none(tree):
    """The same nested dict of plain Python numbers, NaN and infinities as None: JSON has no spelling for them."""
    if isinstance(tree, dict):
        return {key: finite_or_none(value) for key, value in tree.items()}
    if isinstance(tree, np.generic):
        tree = tree.item()
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def _observed(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(values)
    return steps[keep], values[keep]


def _mean(values: Sequence[float]) -> float | None:
    """The mean of the finite values (a diverged model's loss is NaN); None if there are none."""
    finite = [value for value in values if math.isfinite(value)]
    return float(np.mean(finite)) if finite else None
