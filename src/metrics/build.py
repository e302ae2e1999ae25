"""metrics.json built from the comparison: every number the analysis decided, as the schema holds it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from src.analysis import stats
from src.analysis.claims import SECTIONS, Claim, HorizonCheck, MapCell
from src.analysis.comparison import Comparison
from src.analysis.curves import mean_accuracy_over_steps
from src.analysis.outcomes import TunedOutcome, median_steps_to
from src.analysis.specifications import Specification
from src.metrics import number_format
from src.metrics.schema import (
    VERDICTS,
    ClaimMetrics,
    HorizonMetrics,
    LearningRateSearch,
    MapCellMetrics,
    MapMetrics,
    Metrics,
    SigmoidInputDrift,
    SpecificationMetrics,
    StepsTo,
    TestAccuracy,
    VariantMetrics,
)


def build(comparison: Comparison) -> Metrics:
    settings = comparison.params.evaluate
    curves = {claim.topic.key: claim for claim in comparison.claims}  # one claim per topic carries its curve
    return Metrics(
        claims={
            claim.key: claim_metrics(claim, number_format.CORRECTIONS[settings.correction])
            for claim in comparison.claims
        },
        specifications={
            topic: [specification_metrics(spec, claim) for spec in claim.curve] for topic, claim in curves.items()
        },
        vanilla=variant_metrics(comparison.tuned["vanilla"], comparison),
        bn=variant_metrics(comparison.tuned["bn"], comparison),
        horizon={variant: horizon_metrics(check) for variant, check in comparison.horizons.items()},
        robustness_map=map_metrics(comparison.cells, number_format.CORRECTIONS[settings.map_correction]),
    )


def _estimate(estimate: stats.Estimate) -> dict:
    return {
        "effect": _finite(estimate.effect),
        "ci_low": _finite(estimate.ci_low),
        "ci_high": _finite(estimate.ci_high),
        "p_value": _finite(estimate.p_value),
        "n": estimate.n,
    }


def claim_metrics(claim: Claim, correction: str) -> ClaimMetrics:
    agreement, spec = claim.agreement, claim.primary
    return ClaimMetrics(
        **_estimate(claim.estimate),
        title=claim.topic.title,
        section=SECTIONS[claim.topic.section],
        design=design_text(spec),
        statistic=claim.topic.statistic,
        scale=claim.topic.scale,
        test=number_format.test_text(claim.estimate),
        p_adjusted=_finite(claim.adjusted_p),
        correction=correction,
        verdict=claim.verdict,
        specifications={
            "total": len(claim.design_curve),
            "agreeing": claim.agreeing,
            **{verdict: agreement.get(verdict, 0) for verdict in VERDICTS},
        },
        seeds_needed=claim.seeds_needed,
        note=spec.note,
    )


def design_text(spec: Specification) -> str:
    if spec.design == "tuned":
        return f"tuned: each variant at its own tuned rate (train@); {spec.choice}"
    init = "" if spec.init_std is None else f", init std {spec.init_std:g}"
    return f"shared: both nets at the same rates (sweep@{init}); {spec.choice}"


def specification_metrics(spec: Specification, claim: Claim) -> SpecificationMetrics:
    topic = claim.topic
    return SpecificationMetrics(
        **_estimate(spec.estimate),
        design=spec.design,
        init_std=spec.init_std,
        choice=spec.choice,
        primary=spec.primary,
        verdict=spec.verdict(claim.alpha, topic.bn_favoured, topic.no_effect),
        note=spec.note,
    )


def variant_metrics(outcome: TunedOutcome, comparison: Comparison) -> VariantMetrics:
    settings, seeds = comparison.params.evaluate, outcome.seeds
    final = stats.seed_summary(outcome.final_accuracy, comparison.evidence.inference, bounds=(0.0, 1.0))
    train_accuracy = float(np.mean([outcome.train[seed].accuracy for seed in seeds]))
    curves = outcome.curves
    drifts = list(outcome.unit_drifts(settings.drift_reference).values())
    return VariantMetrics(
        lr=outcome.training.lr,
        n_seeds=len(seeds),
        n_diverged=int(curves.diverged.sum()),
        test_accuracy=TestAccuracy(mean=final.mean, std=final.std, ci_low=final.ci_low, ci_high=final.ci_high),
        test_accuracy_moving_average=_mean(outcome.moving_average_accuracy.tolist()),
        test_loss_mean=_mean([outcome.test[seed].loss for seed in seeds]),
        train_accuracy_mean=train_accuracy,
        train_loss_mean=_mean([outcome.train[seed].loss for seed in seeds]),
        train_test_gap=train_accuracy - final.mean,
        accuracy_auc=_mean([mean_accuracy_over_steps(*_observed(curves.steps, row)) for row in curves.accuracy]),
        steps_to={number_format.target_key(target): _steps_to(outcome, target) for target in settings.accuracy_targets},
        sigmoid_input_drift=SigmoidInputDrift(
            reference_step=drifts[0].reference_step,
            relative=_mean([drift.relative_drift for drift in drifts]),
            median_shift_abs=_mean([abs(drift.median_shift) for drift in drifts]),
        ),
        lr_search=LearningRateSearch(
            best_lr=outcome.tuning.best_lr,
            best_value=outcome.tuning.best_value,
            n_trials=len(outcome.trials),
            n_diverged=sum(trial.diverged for trial in outcome.trials),
        ),
    )


def _steps_to(outcome: TunedOutcome, target: float) -> StepsTo:
    reached = median_steps_to(outcome.curves, target)
    return StepsTo(median=reached.median, n_reached=reached.n_reached)


def horizon_metrics(check: HorizonCheck) -> HorizonMetrics:
    return HorizonMetrics(
        **_estimate(check.shortfall),
        tuned_lr=check.tuned_lr,
        nearest_swept_lr=check.nearest_swept_lr,
        best_swept_lr=check.best_swept_lr,
        within_seed_noise=check.within_seed_noise,
    )


def map_metrics(cells: Sequence[MapCell], correction: str) -> MapMetrics:
    """The map's cells (init std -> learning rate -> both means, the paired BN − vanilla, its test before and after
    the correction, the shares that did not train, whether both nets failed) and how many cells favour each
    variant."""
    grid: dict[str, dict[str, MapCellMetrics]] = {}
    for cell in cells:
        grid.setdefault(f"init_std_{cell.init_std:g}", {})[f"lr_{cell.learning_rate:.3g}"] = MapCellMetrics(
            **_estimate(cell.difference),
            vanilla=cell.vanilla,
            bn=cell.bn,
            p_adjusted=_finite(cell.adjusted_p),
            side=cell.side,
            side_uncorrected=cell.side_uncorrected,
            did_not_train_vanilla=cell.did_not_train["vanilla"],
            did_not_train_bn=cell.did_not_train["bn"],
            both_failed=cell.both_failed,
        )
    sides, uncorrected = [cell.side for cell in cells], [cell.side_uncorrected for cell in cells]
    return MapMetrics(
        correction=correction,
        cells=len(cells),
        better=sides.count("above"),
        worse=sides.count("below"),
        better_uncorrected=uncorrected.count("above"),
        worse_uncorrected=uncorrected.count("below"),
        grid=grid,
    )


def _finite(value: float | None) -> float | None:
    """JSON has no spelling for NaN or infinity: they are written as null."""
    return None if value is None or not math.isfinite(value) else float(value)


def _observed(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(values)
    return steps[keep], values[keep]


def _mean(values: Sequence[float]) -> float | None:
    """The mean of the finite values (a diverged model's loss is NaN); None if there are none."""
    finite = [value for value in values if math.isfinite(value)]
    return float(np.mean(finite)) if finite else None
