"""The per-seed numbers both designs give, derived once from what the stages wrote (src/results.py).

train@ (each variant at its tuned rate): the saved models scored on the test and training splits (BN under
Algorithm 2), the curves (BN under its moving averages) and how each tracked sigmoid's input drifted. sweep@ (shared
rates and inits): per seed, the largest rate that trains and the accuracy under the worst init. The claims pair these
numbers seed by seed; the metrics, figures and report read them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from src import stats
from src.config import Params, Variant
from src.data import Split
from src.errors import StudyError
from src.models import load_member
from src.results import Curves, Percentiles, SweepResults, TrainedRun, TrainSummary, TuningSummary, TuningTrial

# Figure 1 (b, c) compares the sigmoid-input distribution after the first tenth of training with the end.
DRIFT_REFERENCE_FRACTION = 0.1
_SCORING_BATCH = 10_000  # bounds memory when scoring the 50,000 training images


@dataclass(frozen=True)
class Scores:
    """One model on one split."""

    accuracy: float
    loss: float
    confusion: np.ndarray  # confusion[true, predicted], counts


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


@dataclass(frozen=True)
class TunedOutcome:
    """One variant at its tuned rate: its tuning study, its training run and its saved models scored, per seed."""

    variant: Variant
    tuning: TuningSummary
    trials: list[TuningTrial]
    training: TrainSummary
    curves: Curves  # the seeds in order
    sigmoid_inputs: dict[tuple[int, int], Percentiles]  # (seed, unit) -> percentiles
    test: dict[int, Scores]  # seed -> scores on the test split
    train: dict[int, Scores]  # seed -> scores on the training split

    @property
    def seeds(self) -> list[int]:
        return self.curves.seeds

    @property
    def final_accuracy(self) -> np.ndarray:
        """(S,) the saved models on the test split."""
        return np.array([self.test[seed].accuracy for seed in self.seeds])

    @cached_property
    def drifts(self) -> dict[tuple[int, int], stats.PercentileDrift]:
        """(seed, unit) -> how that sigmoid's input distribution moved from 10 % of training to the end."""
        return {
            key: stats.percentile_drift(curve.steps, curve.p15, curve.p50, curve.p85, DRIFT_REFERENCE_FRACTION)
            for key, curve in self.sigmoid_inputs.items()
        }

    @property
    def drift(self) -> np.ndarray:
        """(S,) per seed, the mean relative drift over its tracked sigmoids."""
        by_seed = [[drift.relative_drift for (seed, _), drift in self.drifts.items() if seed == s] for s in self.seeds]
        return np.array([np.mean(drifts) for drifts in by_seed])


def tuned_outcome(
    run: TrainedRun, tuning: TuningSummary, trials: list[TuningTrial], params: Params, splits: Mapping[str, Split]
) -> TunedOutcome:
    """`run` with its saved models scored on splits["test"] and splits["train"]."""
    test, train = {}, {}
    for seed, path in run.models.items():
        model = load_member(path, params.model, run.summary.variant, splits["test"].images.device)
        test[seed], train[seed] = score(model, splits["test"]), score(model, splits["train"])
    return TunedOutcome(
        variant=run.summary.variant,
        tuning=tuning,
        trials=trials,
        training=run.summary,
        curves=run.curves,
        sigmoid_inputs=run.sigmoid_inputs,
        test=test,
        train=train,
    )


def check_same_seeds(tuned: Mapping[str, TunedOutcome]) -> list[int]:
    """The seeds both variants were trained on: they must be the same, or no seed has a pair."""
    seeds = {variant: outcome.seeds for variant, outcome in tuned.items()}
    if seeds["vanilla"] != seeds["bn"]:
        raise StudyError(
            f"train@ ran vanilla on seeds {seeds['vanilla']} and BN on {seeds['bn']}: the comparison pairs them "
            "seed by seed; re-run `dvc repro train`"
        )
    return seeds["bn"]


def steps_to(curves: Curves, target: float) -> stats.StepsToTarget:
    # an evaluation a seed does not have (NaN) never counts as reaching the target
    return stats.steps_to_target(curves.steps, np.nan_to_num(curves.accuracy, nan=-1.0), target)


def mean_curves(tuned: Mapping[str, TunedOutcome], quantity: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every variant's mean over seeds of 'accuracy' or 'loss' on the union of their step grids (NaN where absent)."""
    steps = np.array(sorted(set().union(*(outcome.curves.steps.tolist() for outcome in tuned.values()))))
    columns = {}
    for variant, outcome in tuned.items():
        values = getattr(outcome.curves, quantity)
        finite = np.where(np.isfinite(values), values, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step where every seed's value is NaN stays NaN
            mean = np.nanmean(finite, axis=0)
        columns[variant] = np.full(steps.shape, np.nan)
        columns[variant][np.searchsorted(steps, outcome.curves.steps)] = mean
    return steps, columns


# --- sweep@ ------------------------------------------------------------------------------------------------------


def usable_learning_rates(sweep: SweepResults, init_index: int, usable_accuracy: float) -> np.ndarray:
    """(S,) per seed, the largest swept rate that trained (no divergence, final test accuracy ≥ usable_accuracy) at
    the init std of `init_index`.

    A seed that trained at no swept rate gets one grid step below the smallest, so it still counts, conservatively.
    """
    usable = (sweep.final_accuracy[:, init_index] >= usable_accuracy) & ~sweep.diverged[:, init_index]  # (S, L)
    rates = sweep.learning_rates
    below_grid = rates[0] ** 2 / rates[1] if len(rates) > 1 else rates[0] / 10
    return np.array([rates[np.flatnonzero(ok)[-1]] if ok.any() else below_grid for ok in usable])


def worst_init_accuracy(sweep: SweepResults) -> np.ndarray:
    """(S,) per seed, the mean over the swept rates of the final test accuracy under the worst init std."""
    return sweep.final_accuracy.min(axis=1).mean(axis=1)


@dataclass(frozen=True)
class ExampleUnit:
    """The sigmoid drawn in Figure 1 (b, c), with how its input distribution moved in each variant."""

    seed: int
    unit: int
    drift: Mapping[str, stats.PercentileDrift]
    start: Mapping[str, float]  # p50 at the reference step
    end: Mapping[str, float]  # p50 at the last step


def example_unit(tuned: Mapping[str, TunedOutcome]) -> ExampleUnit:
    """The first tracked unit of the first seed that both variants tracked."""
    seed, unit = min(set.intersection(*(set(outcome.sigmoid_inputs) for outcome in tuned.values())))
    drift = {variant: outcome.drifts[(seed, unit)] for variant, outcome in tuned.items()}
    start, end = {}, {}
    for variant, outcome in tuned.items():
        curve = outcome.sigmoid_inputs[(seed, unit)]
        start[variant] = float(curve.p50[np.flatnonzero(curve.steps == drift[variant].reference_step)[0]])
        end[variant] = float(curve.p50[-1])
    return ExampleUnit(seed=seed, unit=unit, drift=drift, start=start, end=end)
