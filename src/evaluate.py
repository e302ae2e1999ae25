"""The evaluate stage's library: read what tuning and training left, score the saved models, reduce it all to metrics.

Paths follow the output layout of the team contract, relative to a `root` (the repository root in the pipeline).
Final numbers come from scoring the saved models; the curves come from the training histories.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from src import stats
from src.cli import UsageError
from src.config import ModelConfig, Variant
from src.data import Split
from src.models import load_member

# Figure 1 (b, c) compares the sigmoid-input distribution after the first tenth of training with the end.
DRIFT_REFERENCE_FRACTION = 0.1
# a learning rate trained well when its trial reached this share of the study's best validation accuracy
USABLE_FRACTION = 0.9
_SCORING_BATCH = 10_000  # bounds memory when scoring the 50,000 training images


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


@dataclass(frozen=True)
class Trial:
    number: int
    lr: float
    value: float | None  # validation accuracy (the last reported one for a pruned trial); None if it failed
    state: str  # COMPLETE | PRUNED | FAIL
    diverged: bool


@dataclass(frozen=True)
class Scores:
    """One model on one split."""

    accuracy: float
    loss: float
    confusion: np.ndarray  # confusion[true, predicted], counts

    @property
    def per_class_accuracy(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.confusion) / self.confusion.sum(axis=1)


@dataclass(frozen=True)
class VariantResults:
    """Everything the comparison knows about one variant."""

    variant: Variant
    curves: Curves
    sigmoid_inputs: dict[tuple[int, int], Percentiles]  # (seed, unit) -> percentiles
    trials: list[Trial]
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
        raise UsageError(
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


def model_paths(models_dir: Path) -> dict[int, Path]:
    """seed -> models_dir/seed_{seed}.pt, in seed order."""
    found = {}
    for path in models_dir.glob("seed_*.pt"):
        suffix = path.stem.removeprefix("seed_")
        if suffix.isdigit():
            found[int(suffix)] = path
    if not found:
        raise UsageError(f"{models_dir}: no seed_*.pt models (run the train stage first)")
    return dict(sorted(found.items()))


@torch.no_grad()
def score(model: torch.nn.Module, split: Split) -> Scores:
    """Accuracy, mean cross-entropy and confusion matrix of a one-member model on a split, in inference mode."""
    if len(split.labels) == 0:
        raise UsageError("cannot score a model on an empty split")
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


def read_history(path: Path) -> Curves:
    """results/train/{variant}/history.csv (step,seed,test_accuracy,test_loss,diverged) as per-seed curves."""
    rows = read_csv(path, ["step", "seed", "test_accuracy", "test_loss", "diverged"])
    with _parsing(path):
        return _curves(rows)


def _curves(rows: list[dict[str, str]]) -> Curves:
    steps = sorted({int(row["step"]) for row in rows})
    seeds = sorted({int(row["seed"]) for row in rows})
    column, line = {step: j for j, step in enumerate(steps)}, {seed: i for i, seed in enumerate(seeds)}
    accuracy = np.full((len(seeds), len(steps)), np.nan)
    loss = np.full_like(accuracy, np.nan)
    diverged = np.zeros(len(seeds), dtype=bool)
    for row in rows:
        i, j = line[int(row["seed"])], column[int(row["step"])]
        accuracy[i, j], loss[i, j] = _number(row["test_accuracy"]), _number(row["test_loss"])
        diverged[i] |= _flag(row["diverged"])
    return Curves(steps=np.array(steps), seeds=seeds, accuracy=accuracy, loss=loss, diverged=diverged)


def read_sigmoid_inputs(path: Path) -> dict[tuple[int, int], Percentiles]:
    """results/train/{variant}/sigmoid_inputs.csv (step,seed,unit,p15,p50,p85) as (seed, unit) -> percentiles."""
    rows = read_csv(path, ["step", "seed", "unit", "p15", "p50", "p85"])
    with _parsing(path):
        return _percentiles(rows)


def _percentiles(rows: list[dict[str, str]]) -> dict[tuple[int, int], Percentiles]:
    grouped: dict[tuple[int, int], list[dict]] = {}
    for row in rows:
        grouped.setdefault((int(row["seed"]), int(row["unit"])), []).append(row)
    curves = {}
    for key, unit_rows in sorted(grouped.items()):
        unit_rows.sort(key=lambda row: int(row["step"]))
        curves[key] = Percentiles(
            *(np.array([_number(row[name]) for row in unit_rows]) for name in ("step", "p15", "p50", "p85"))
        )
    return curves


def read_trials(path: Path) -> list[Trial]:
    """results/tune/{variant}/trials.csv (number,lr,value,state,diverged), in trial order."""
    rows = read_csv(path, ["number", "lr", "value", "state", "diverged"])
    with _parsing(path):
        trials = [
            Trial(
                number=int(row["number"]),
                lr=float(row["lr"]),
                value=float(row["value"]) if row["value"].strip() else None,
                state=row["state"].strip().upper(),
                diverged=_flag(row["diverged"]),
            )
            for row in rows
        ]
    return sorted(trials, key=lambda trial: trial.number)


@contextmanager
def _parsing(path: Path) -> Iterator[None]:
    """A malformed value in an input file is one UsageError naming the file, not a bare ValueError."""
    try:
        yield
    except ValueError as error:
        raise UsageError(f"{path}: malformed value ({error})") from None


def read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV that must have at least `columns`; a missing file or column is one UsageError."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (run the stage that writes it first: `dvc repro`)") from None
    missing = [name for name in columns if name not in header]
    if missing:
        raise UsageError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}")
    if not rows:
        raise UsageError(f"{path}: no rows")
    return rows


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (run the stage that writes it first: `dvc repro`)") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: not valid JSON: {error}") from None


def _number(text: str) -> float:
    # a diverged model's loss may be recorded as nan or inf, or left empty
    return float(text) if text.strip() else math.nan


def _flag(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes"}


def target_key(target: float) -> str:
    """0.95 -> '95', 0.975 -> '97.5': a metric-name-friendly percentage."""
    return f"{target * 100:g}"


def build_metrics(results: Mapping[Variant, VariantResults], targets: Sequence[float], confidence: float) -> dict:
    """results/metrics.json: one section per variant and a `comparison` section (BN against vanilla)."""
    metrics: dict = {variant: variant_metrics(result, targets, confidence) for variant, result in results.items()}
    metrics["comparison"] = comparison_metrics(results["vanilla"], results["bn"], targets, confidence)
    return _finite_or_none(metrics)


def variant_metrics(result: VariantResults, targets: Sequence[float], confidence: float) -> dict:
    seeds = sorted(result.test)
    test_accuracy = stats.summarize([result.test[seed].accuracy for seed in seeds], confidence)
    train_accuracy = float(np.mean([result.train[seed].accuracy for seed in seeds]))
    curves = result.curves
    metrics = {
        "lr": result.training.get("lr", result.tuning.get("best_lr")),
        "n_seeds": len(seeds),
        "n_diverged": int(curves.diverged.sum()),
        "test_accuracy": {
            "mean": test_accuracy.mean,
            "std": test_accuracy.std,
            "ci_low": test_accuracy.ci_low,
            "ci_high": test_accuracy.ci_high,
        },
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
    metrics["sigmoid_input"] = sigmoid_drift_metrics(result.sigmoid_inputs)
    metrics["lr_search"] = lr_search_metrics(result.trials, result.tuning)
    return metrics


def comparison_metrics(
    vanilla: VariantResults, bn: VariantResults, targets: Sequence[float], confidence: float
) -> dict:
    """BN against vanilla: steps ratio per target, final test accuracy difference (BN − vanilla), Welch's test."""
    comparison: dict = {
        f"steps_ratio_{target_key(target)}": stats.steps_ratio(
            steps_to(vanilla.curves, target), steps_to(bn.curves, target)
        )
        for target in targets
    }
    difference = stats.welch_difference(
        [score.accuracy for score in bn.test.values()], [score.accuracy for score in vanilla.test.values()], confidence
    )
    comparison["accuracy_difference"] = {
        "mean": difference.difference,
        "ci_low": difference.ci_low,
        "ci_high": difference.ci_high,
        "p_value": difference.p_value,
    }
    return comparison


def steps_to(curves: Curves, target: float) -> stats.StepsToTarget:
    # an evaluation a seed does not have (NaN) never counts as reaching the target
    return stats.steps_to_target(curves.steps, np.nan_to_num(curves.accuracy, nan=-1.0), target)


def sigmoid_drift_metrics(sigmoid_inputs: Mapping[tuple[int, int], Percentiles]) -> dict:
    """How far the last hidden layer's sigmoid inputs moved, averaged over every tracked unit of every seed."""
    drifts = [
        stats.percentile_drift(curve.steps, curve.p15, curve.p50, curve.p85, DRIFT_REFERENCE_FRACTION)
        for curve in sigmoid_inputs.values()
    ]
    return {
        "reference_step": drifts[0].reference_step,
        "median_shift_abs": _mean([abs(drift.median_shift) for drift in drifts]),
        "median_shift_relative": _mean([drift.relative_median_shift for drift in drifts]),
        "spread_change_relative": _mean([drift.relative_spread_change for drift in drifts]),
    }


def lr_search_metrics(trials: Sequence[Trial], tuning: Mapping) -> dict:
    """The tuned learning rate, the largest rate that trained well and the smallest that diverged.

    A rate "trained well" when its trial did not diverge and reached USABLE_FRACTION of the study's best
    validation accuracy: a rate so large that the sigmoids saturate scores at chance without ever turning NaN.
    """
    scored = [trial.value for trial in trials if trial.value is not None and not trial.diverged]
    threshold = USABLE_FRACTION * max(scored) if scored else math.inf
    usable = [trial.lr for trial in trials if not trial.diverged and (trial.value or 0.0) >= threshold]
    diverged = [trial.lr for trial in trials if trial.diverged]
    return {
        "best_lr": tuning.get("best_lr"),
        "best_value": tuning.get("best_value"),
        "max_usable_lr": max(usable) if usable else None,
        "min_diverged_lr": min(diverged) if diverged else None,
        "n_trials": len(trials),
        "n_diverged": len(diverged),
    }


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


def _finite_or_none(tree):
    """The same nested dict of plain Python numbers, NaN and infinities as None: JSON has no spelling for them."""
    if isinstance(tree, dict):
        return {key: _finite_or_none(value) for key, value in tree.items()}
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
