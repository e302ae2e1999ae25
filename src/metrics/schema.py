"""results/metrics.json, defined once: built from the comparison, written, read back, and printed within 120 columns.

    python -m src.metrics [results/metrics.json]

Each primary claim names its design, its test, its n, its interval (inside the statistic's possible range), its
p-value before and after the family's correction, its verdict, and how its whole specification curve decides; the
curves themselves, each variant at its tuned rate, the horizon check and the sweep's map (with its correction and
both counts) follow.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

from src.analysis import stats
from src.analysis.claims import SECTIONS, Claim, HorizonCheck, MapCell
from src.analysis.comparison import Comparison
from src.analysis.curves import mean_accuracy_over_steps
from src.analysis.outcomes import TunedOutcome, median_steps_to
from src.analysis.specifications import Specification
from src.atomic import write_json
from src.cli import OneLineParser, report_user_errors
from src.metrics import number_format
from src.results.files import read_json_as

METRICS = Path("results/metrics.json")
HEADLINE = Path("results/headline.json")  # what `dvc exp show` and `dvc metrics diff` compare: a few keys
WIDTH = 120
VERDICTS = ("holds", "not shown", "contradicted", "not estimable")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class EstimateMetrics(_Section):
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int

    @property
    def estimate(self) -> stats.Estimate:
        return stats.Estimate(_nan(self.effect), self.ci_low, self.ci_high, self.n, self.p_value)


class SpecificationMetrics(EstimateMetrics):
    design: str  # "shared" or "tuned"
    init_std: float | None  # the shared design's
    choice: str
    primary: bool
    verdict: str  # on its own, at the nominal level
    note: str


class ClaimMetrics(EstimateMetrics):
    title: str
    section: str  # the paper's Section 4.1, or an extension of its Section 3.3
    design: str  # in words
    statistic: str
    scale: str  # ratio | accuracy | plain
    test: str  # in words
    p_adjusted: float | None
    correction: str
    verdict: str
    specifications: dict[str, int]  # "total", "agreeing" and a count per verdict over the topic's curve
    seeds_needed: int | None  # where not shown: about how many paired seeds would decide it (80 % power)
    note: str


class TestAccuracy(_Section):
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None


class StepsTo(_Section):
    median: float | None
    n_reached: int


class SigmoidInputDrift(_Section):
    reference_step: int
    relative: float | None
    median_shift_abs: float | None


class LearningRateSearch(_Section):
    best_lr: float
    best_value: float
    n_trials: int
    n_diverged: int


_STEPS_TO = re.compile(r"^steps_to_(.+)$")


class VariantMetrics(_Section):
    """train@ of one variant at its tuned rate: final numbers (BN under both inference rules), speed, drift."""

    lr: float
    n_seeds: int
    n_diverged: int
    test_accuracy: TestAccuracy  # the saved models: BN under Algorithm 2's population statistics
    test_accuracy_moving_average: float | None  # the history's last evaluation: BN under its moving averages
    test_loss_mean: float | None
    train_accuracy_mean: float
    train_loss_mean: float | None
    train_test_gap: float
    accuracy_auc: float | None
    steps_to: dict[str, StepsTo]  # target ("97") -> steps to reach it; the file spells each as steps_to_97
    sigmoid_input_drift: SigmoidInputDrift
    lr_search: LearningRateSearch

    @model_validator(mode="before")
    @classmethod
    def _gather_steps_to(cls, raw: object) -> object:
        if not isinstance(raw, Mapping) or "steps_to" in raw:
            return raw
        gathered = {key: value for key, value in raw.items() if not _STEPS_TO.match(key)}
        return {**gathered, "steps_to": {_STEPS_TO.match(k)[1]: v for k, v in raw.items() if _STEPS_TO.match(k)}}

    @model_serializer(mode="wrap")
    def _spread_steps_to(self, handler) -> dict:
        spread: dict = {}
        for key, value in handler(self).items():
            if key == "steps_to":
                spread |= {f"steps_to_{target}": reached for target, reached in value.items()}
            else:
                spread[key] = value
        return spread


class HorizonMetrics(EstimateMetrics):
    tuned_lr: float
    nearest_swept_lr: float
    best_swept_lr: float
    within_seed_noise: bool


class MapCellMetrics(EstimateMetrics):
    vanilla: float
    bn: float
    p_adjusted: float | None
    side: str | None  # "above": BN higher, "below": BN lower, after the correction; None: neither
    side_uncorrected: str | None
    did_not_train_vanilla: float  # the share of seeds that ended at chance
    did_not_train_bn: float


class MapMetrics(_Section):
    correction: str
    cells: int
    better: int  # BN significantly higher, after the correction
    worse: int
    better_uncorrected: int
    worse_uncorrected: int
    grid: dict[str, dict[str, MapCellMetrics]]  # "init_std_0.1" -> "lr_0.316" -> cell


class Metrics(_Section):
    """The whole file."""

    claims: dict[str, ClaimMetrics]
    specifications: dict[str, list[SpecificationMetrics]]  # topic -> its curve
    vanilla: VariantMetrics
    bn: VariantMetrics
    horizon: dict[str, HorizonMetrics]
    robustness_map: MapMetrics

    def write(self, path: Path = METRICS) -> None:
        write_json(path, self.model_dump())

    @classmethod
    def read(cls, path: Path = METRICS) -> Metrics:
        return read_json_as(cls, path, "evaluate")

    def headline(self) -> dict:
        """The numbers a user compares across experiments, about twenty under short names (so that `dvc exp show`
        fits a wide terminal): each primary claim's verdict and effect, each variant's tuned rate and final test
        accuracy, and the map's corrected counts. The DVC metrics file."""
        claims = {HEADLINE_NAMES[key]: claim for key, claim in self.claims.items()}
        return {
            "verdict": {name: claim.verdict for name, claim in claims.items()},
            "effect": {name: claim.effect for name, claim in claims.items()},
            **{
                variant: {"lr": numbers.lr, "acc": numbers.test_accuracy.mean}
                for variant, numbers in (("vanilla", self.vanilla), ("bn", self.bn))
            },
            "map": {"better": self.robustness_map.better, "worse": self.robustness_map.worse},
        }


# the primary claims' keys in metrics.json, and their short names in headline.json
HEADLINE_NAMES = {
    "faster_convergence_shared": "faster_sh", "faster_convergence_tuned": "faster_tu",
    "higher_accuracy_shared": "acc_sh", "higher_accuracy_tuned": "acc_tu",
    "stable_sigmoid_inputs_shared": "stable_sh", "stable_sigmoid_inputs_tuned": "stable_tu",
    "higher_usable_lr_shared": "lr_edge", "robust_to_init_shared": "init",
}  # fmt: skip


# --- built from the comparison -------------------------------------------------------------------------------


def build(comparison: Comparison) -> Metrics:
    settings = comparison.params.evaluate
    curves = {claim.topic.key: claim for claim in comparison.claims}  # one claim per topic carries its curve
    return Metrics(
        claims={
            claim.key: claim_metrics(claim, number_format.CORRECTIONS[settings.correction]) for claim in comparison.claims
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
    return {"effect": _finite(estimate.effect), "ci_low": _finite(estimate.ci_low),
            "ci_high": _finite(estimate.ci_high), "p_value": _finite(estimate.p_value), "n": estimate.n}  # fmt: skip


def claim_metrics(claim: Claim, correction: str) -> ClaimMetrics:
    verdicts = claim.spec_verdicts()
    spec = claim.primary
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
            "total": len(verdicts),
            "agreeing": claim.agreeing,
            **{verdict: verdicts.count(verdict) for verdict in VERDICTS},
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
    final = stats.seed_summary(outcome.final_accuracy, comparison.outcomes.inference)
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
    the correction, the shares that did not train) and how many cells favour each variant."""
    grid: dict[str, dict[str, MapCellMetrics]] = {}
    for cell in cells:
        grid.setdefault(f"init_std_{cell.init_std:g}", {})[f"lr_{cell.learning_rate:.3g}"] = MapCellMetrics(
            **_estimate(cell.difference), vanilla=cell.vanilla, bn=cell.bn, p_adjusted=_finite(cell.adjusted_p),
            side=cell.side, side_uncorrected=cell.side_uncorrected,
            did_not_train_vanilla=cell.did_not_train["vanilla"], did_not_train_bn=cell.did_not_train["bn"],
        )  # fmt: skip
    sides, uncorrected = [cell.side for cell in cells], [cell.side_uncorrected for cell in cells]
    return MapMetrics(
        correction=correction, cells=len(cells), better=sides.count("above"), worse=sides.count("below"),
        better_uncorrected=uncorrected.count("above"), worse_uncorrected=uncorrected.count("below"), grid=grid,
    )  # fmt: skip


def _finite(value: float | None) -> float | None:
    """JSON has no spelling for NaN or infinity: they are written as null."""
    return None if value is None or not math.isfinite(value) else float(value)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _observed(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(values)
    return steps[keep], values[keep]


def _mean(values: Sequence[float]) -> float | None:
    """The mean of the finite values (a diverged model's loss is NaN); None if there are none."""
    finite = [value for value in values if math.isfinite(value)]
    return float(np.mean(finite)) if finite else None


# --- printed for a person --------------------------------------------------------------------------------------


def claims_table(claims: Mapping[str, ClaimMetrics]) -> list[str]:
    """One line per primary claim: its verdict after the correction, effect, interval and how many specifications
    agree."""
    rows = [f"{'claim':<32}{'verdict':<15}{'effect':>11}  {'interval':<24}specifications agreeing", "-" * 104]
    for key, claim in claims.items():
        effect = number_format.effect(_nan(claim.effect), claim.scale)
        interval = number_format.interval(claim.estimate, claim.scale)
        agreeing = f"{claim.specifications['agreeing']} of {claim.specifications['total']}"
        rows.append(f"{key:<32}{claim.verdict:<15}{effect:>11}  {interval:<24}{agreeing}")
    return rows


def variants_table(metrics: Metrics) -> list[str]:
    """train@: each variant at its own tuned rate, side by side."""
    cells: dict[str, Callable[[VariantMetrics], str]] = {
        "learning rate (tuned)": lambda m: number_format.number(m.lr, ".4g"),
        "final test accuracy (BN: Algorithm 2)": lambda m: number_format.percent(m.test_accuracy.mean),
        "final test accuracy (moving averages)": lambda m: number_format.percent(m.test_accuracy_moving_average),
        "final test loss": lambda m: number_format.number(m.test_loss_mean, ".3f"),
        **{
            f"steps to {target} % (median of seeds)": lambda m, target=target: number_format.steps(m.steps_to[target].median)
            for target in metrics.vanilla.steps_to
        },
        "diverged seeds": lambda m: f"{m.n_diverged} of {m.n_seeds}",
    }
    rows = [f"{'train@, each variant at its tuned rate':<44}{'vanilla':>14}{'BN':>14}", "-" * 72]
    rows += [f"{name:<44}{cell(metrics.vanilla):>14}{cell(metrics.bn):>14}" for name, cell in cells.items()]
    return rows


def map_table(robustness_map: MapMetrics) -> list[str]:
    """sweep@: BN − vanilla final test accuracy per (init std, lr) cell, * where significant after the correction."""
    grid = robustness_map.grid
    rates = [key.removeprefix("lr_") for key in next(iter(grid.values()))]
    rows = [
        "sweep@: BN − vanilla final test accuracy in pp, mean of seeds; "
        f"* significant after {robustness_map.correction}",
        "init std / lr".ljust(14) + "".join(f"{rate:>10}" for rate in rates),
    ]
    for init_std, cells in grid.items():
        texts = [f"{100 * _nan(cell.effect):+9.1f}{'*' if cell.side else ' '}" for cell in cells.values()]
        rows.append(f"{init_std.removeprefix('init_std_'):<14}" + "".join(texts))
    return rows


def render(metrics: Metrics) -> str:
    return "\n".join(
        [*claims_table(metrics.claims), "", *variants_table(metrics), "", *map_table(metrics.robustness_map)]
    )


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path, default=METRICS, help=f"a metrics file (default: {METRICS})")
    print(render(Metrics.read(parser.parse_args(argv).path)))


if __name__ == "__main__":
    report_user_errors(main)
