"""The per-seed numbers of both designs, derived once from what the stages wrote (src/results/).

tuned (train@): each variant at its own tuned rate. shared (sweep@ and edge@): both variants at the same learning
rates and inits. Every number here is per seed, and for the sweep per seed and cell, on the same seeds for both
variants, so that the claims (src/analysis/claims.py) can pair them seed by seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from src.analysis import stats
from src.analysis.curves import PercentileDrift, StepsToTarget, percentile_drift
from src.analysis.curves import steps_to_target as curve_steps_to_target
from src.config import EvaluateConfig, ModelConfig, SweepConfig, Variant
from src.data.splits import Split
from src.engine.network import load_member
from src.engine.progress import Progress
from src.engine.scoring import score_members
from src.errors import StudyError
from src.results.sweep import SweepResults
from src.results.train import Percentiles, SeedCurves, TrainOutputs, TrainSummary
from src.results.tune import TuningSummary, TuningTrial
from src.training.members import MemberTable, usable


@dataclass(frozen=True)
class Scores:
    """One saved model on one split (BN under Algorithm 2)."""

    accuracy: float
    loss: float


@dataclass(frozen=True)
class TunedOutcome:
    """One variant at its tuned rate: its tuning study, its training run, its saved models scored, per seed."""

    variant: Variant
    tuning: TuningSummary
    trials: list[TuningTrial]
    training: TrainSummary
    curves: SeedCurves  # the seeds in order
    sigmoid_inputs: dict[tuple[int, int], Percentiles]  # (seed, unit) -> percentiles
    predicted: np.ndarray  # (S, test images): each saved model's predicted class
    labels: np.ndarray  # (test images,)
    test: dict[int, Scores]  # seed -> the saved model on the test split
    train: dict[int, Scores]  # seed -> the saved model on the training split

    @property
    def seeds(self) -> list[int]:
        return self.curves.seeds

    @property
    def correct(self) -> np.ndarray:
        """(S, test images): whether each saved model classifies each test image right."""
        return self.predicted == self.labels

    @property
    def final_accuracy(self) -> np.ndarray:
        """(S,) the saved models on the test split (BN: Algorithm 2's population statistics)."""
        return self.correct.mean(axis=1)

    @property
    def moving_average_accuracy(self) -> np.ndarray:
        """(S,) the last point of each curve (BN: the moving averages it trained with)."""
        return self.curves.accuracy[:, -1]

    def confusion(self) -> np.ndarray:
        """(10, 10) test images by true and predicted class, summed over seeds."""
        pairs = self.labels.astype(np.int64) * 10 + self.predicted.astype(np.int64)
        return np.bincount(pairs.ravel(), minlength=100).reshape(10, 10)

    def unit_drifts(self, reference_fraction: float) -> dict[tuple[int, int], PercentileDrift]:
        """(seed, unit) -> how that input distribution moved from `reference_fraction` of training to the end."""
        return {
            key: percentile_drift(curve.steps, curve.p15, curve.p50, curve.p85, reference_fraction)
            for key, curve in self.sigmoid_inputs.items()
        }

    def drift(self, reference_fraction: float) -> np.ndarray:
        """(S,) per seed, the mean relative drift over its tracked sigmoids."""
        drifts = self.unit_drifts(reference_fraction)
        return np.array(
            [np.mean([d.relative_drift for (s, _), d in drifts.items() if s == seed]) for seed in self.seeds]
        )


@dataclass(frozen=True)
class SharedOutcome:
    """One variant over the sweep's grid (sweep@) and its refined learning-rate edges (edge@)."""

    variant: Variant
    sweep: SweepResults
    predicted: np.ndarray  # (S, I, L, test images)
    labels: np.ndarray  # (test images,)
    edges: Edges

    @property
    def correct(self) -> np.ndarray:
        """(S, I, L, test images)."""
        return self.predicted == self.labels

    def drift(self, reference_fraction: float) -> np.ndarray:
        """(S, I, L) per member, the mean relative drift over its tracked sigmoids from `reference_fraction` of training
        to the end."""
        percentiles = self.sweep.percentiles  # (S, I, L, units, 3, E)
        drift = np.empty(percentiles.shape[:3])
        for index in np.ndindex(*drift.shape):
            units = [
                percentile_drift(self.sweep.steps, *percentiles[index][unit], reference_fraction).relative_drift
                for unit in range(percentiles.shape[3])
            ]
            drift[index] = np.mean(units)
        return drift


@dataclass(frozen=True)
class Edges:
    """Each seed's largest rate that trained: refined (the swept and edge@'s rates) at each init std of params.edge,
    and on the sweep's grid alone at every swept init std."""

    refined_inits: list[float]  # params.edge.init_stds
    rates: np.ndarray  # (S, len(refined_inits))
    # the factor from the edge to the next rate tried above it; inf where none above was tried (the edge is a bound)
    resolution: np.ndarray
    coarse: np.ndarray  # (S, I): on the sweep's grid alone, every swept init std


def tuned_outcome(
    run: TrainOutputs,
    tuning: TuningSummary,
    trials: list[TuningTrial],
    predicted: np.ndarray,
    model: ModelConfig,
    splits: Mapping[str, Split],
) -> TunedOutcome:
    """`run` (train@) with its saved models (of shape `model`) scored on splits["test"] and splits["train"] (BN under
    Algorithm 2) and its per-image test predictions (`predicted`, from train@)."""
    test, train = {}, {}
    label = f"evaluate: scoring train@{run.summary.variant}'s networks"
    with Progress(label, len(run.models), unit="network") as progress:
        for done, (seed, path) in enumerate(run.models.items(), start=1):
            network = load_member(path, model, run.summary.variant, splits["test"].images.device)
            test[seed], train[seed] = _scores(network, splits["test"]), _scores(network, splits["train"])
            progress.update_to(done)
    return TunedOutcome(
        variant=run.summary.variant,
        tuning=tuning,
        trials=trials,
        training=run.summary,
        curves=run.curves,
        sigmoid_inputs=run.sigmoid_inputs,
        predicted=predicted,
        labels=splits["test"].labels.cpu().numpy(),
        test=test,
        train=train,
    )


def _scores(model, split: Split) -> Scores:
    accuracy, loss = score_members(model, split)
    return Scores(accuracy=float(accuracy[0]), loss=float(loss[0]))


def edges(
    sweep: SweepResults,
    refined: MemberTable,
    refined_final: tuple[np.ndarray, np.ndarray],
    lrs_per_decade: int,
    refined_inits: Sequence[float],
    usable_accuracy: float,
) -> Edges:
    """Each seed's largest usable rate per init std of `refined_inits` (edge.init_stds), from the sweep's grid (of
    `lrs_per_decade`) and edge@'s refined rates, and per swept init std from the grid alone."""
    trained_refined = usable(*refined_final, usable_accuracy)
    trained_swept = usable(sweep.final_accuracy, sweep.diverged, usable_accuracy)  # (S, I, L)
    lowest = sweep.learning_rates[0] / 10 ** (1 / lrs_per_decade)
    shape = (len(sweep.seeds), len(refined_inits))
    rates, resolution = np.empty(shape), np.empty(shape)
    for (s, i), _ in np.ndenumerate(rates):
        init_std, seed = refined_inits[i], sweep.seeds[s]
        mine = [k for k in range(len(refined)) if refined.seed[k] == seed and refined.init_std[k] == init_std]
        tried = np.concatenate([sweep.learning_rates, np.array(refined.lr)[mine]])
        swept = trained_swept[s, list(sweep.init_stds).index(init_std)]
        rates[s, i], resolution[s, i] = _edge(tried, np.concatenate([swept, trained_refined[mine]]), lowest)
    coarse = np.array([[_edge(sweep.learning_rates, row, lowest)[0] for row in per_seed] for per_seed in trained_swept])
    return Edges(list(refined_inits), rates, resolution, coarse)


def _edge(tried: np.ndarray, trained: np.ndarray, lowest: float) -> tuple[float, float]:
    """The largest trained rate of `tried` (`lowest` if none trained, conservatively) and the factor to the next rate
    tried above it (inf if none)."""
    edge = float(tried[trained].max()) if trained.any() else lowest
    above = tried[tried > edge]
    return edge, float(above.min() / edge) if above.size else np.inf


def check_same_seeds(tuned: Mapping[str, TunedOutcome]) -> list[int]:
    """The seeds both variants were trained on: they must be the same, or no seed has a pair."""
    seeds = {variant: outcome.seeds for variant, outcome in tuned.items()}
    if seeds["vanilla"] != seeds["bn"]:
        raise StudyError(
            f"train@ ran vanilla on seeds {seeds['vanilla']} and BN on {seeds['bn']}: the comparison pairs them "
            "seed by seed; re-run `dvc repro train`"
        )
    return seeds["bn"]


def median_steps_to(curves: SeedCurves, target: float) -> StepsToTarget:
    """The median over seeds of the first evaluation reaching `target` (the report's table; not interpolated)."""
    return curve_steps_to_target(curves.steps, np.nan_to_num(curves.accuracy, nan=-1.0), target)


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


@dataclass(frozen=True)
class ExampleUnit:
    """The sigmoid drawn in Figure 1 (b, c), with how its input distribution moved in each variant."""

    seed: int
    unit: int
    drift: Mapping[str, PercentileDrift]
    start: Mapping[str, float]  # p50 at the reference step
    end: Mapping[str, float]  # p50 at the last step


def example_unit(tuned: Mapping[str, TunedOutcome], reference_fraction: float) -> ExampleUnit:
    """The first tracked unit of the first seed that both variants tracked."""
    seed, unit = min(set.intersection(*(set(outcome.sigmoid_inputs) for outcome in tuned.values())))
    drift = {variant: outcome.unit_drifts(reference_fraction)[(seed, unit)] for variant, outcome in tuned.items()}
    start, end = {}, {}
    for variant, outcome in tuned.items():
        curve = outcome.sigmoid_inputs[(seed, unit)]
        start[variant] = float(curve.p50[np.flatnonzero(curve.steps == drift[variant].reference_step)[0]])
        end[variant] = float(curve.p50[-1])
    return ExampleUnit(seed=seed, unit=unit, drift=drift, start=start, end=end)


@dataclass(frozen=True)
class Evidence:
    """What the claims are decided on: per variant, train@ at its tuned rate and the sweep with its refined edges."""

    tuned: Mapping[str, TunedOutcome]
    shared: Mapping[str, SharedOutcome]
    settings: EvaluateConfig  # the analysis plan
    grid: SweepConfig  # the sweep's grid of rates, inits and seeds
    paper_init_std: float  # the init the shared design compares at (model.init_std)

    @property
    def inference(self) -> stats.PairedInference:
        settings = self.settings
        return stats.PairedInference(
            settings.confidence, settings.seed_test, settings.resamples, settings.bootstrap_seed, settings.interval
        )

    def trained(self) -> dict[str, np.ndarray]:
        """Per variant, (S, I, L): which of the sweep's runs trained (no divergence, final test accuracy at least
        `usable_accuracy`)."""
        cut = self.settings.usable_accuracy
        return {v: usable(s.sweep.final_accuracy, s.sweep.diverged, cut) for v, s in self.shared.items()}

    def both_train(self, init_index: int) -> np.ndarray:
        """(L,) the swept rates where both nets train at the init std of `init_index`: at least `both_train_share` of
        the seeds of each variant."""
        shares = [trained[:, init_index].mean(0) for trained in self.trained().values()]
        return np.all([share >= self.settings.both_train_share for share in shares], axis=0)
