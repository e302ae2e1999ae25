"""results/metrics.json, defined once: built from the comparison, written, read back, and printed within 120 columns.

    python -m src.metrics [results/metrics.json]

`dvc metrics show` sets every key of every metrics file side by side in one row, hundreds of columns here;
`dvc metrics diff` stays the way to compare two runs, one metric a line.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

from src import formats, stats
from src.atomic import write_json
from src.claims import Claim, HorizonCheck, MapCell
from src.cli import OneLineParser, report_user_errors
from src.comparison import Comparison
from src.outcomes import TunedOutcome, steps_to
from src.results import read_json_as

METRICS = Path("results/metrics.json")
WIDTH = 120


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ClaimMetrics(_Section):
    verdict: str
    statistic: str
    scale: str
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    @property
    def estimate(self) -> stats.Estimate:
        return stats.Estimate(effect=_nan(self.effect), ci_low=self.ci_low, ci_high=self.ci_high, n=self.n)


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
        fields = handler(self)
        spread: dict = {}
        for key, value in fields.items():
            if key == "steps_to":
                spread |= {f"steps_to_{target}": reached for target, reached in value.items()}
            else:
                spread[key] = value
        return spread


class HorizonMetrics(_Section):
    tuned_lr: float
    nearest_swept_lr: float
    best_swept_lr: float
    shortfall: float | None
    ci_low: float | None
    ci_high: float | None
    within_seed_noise: bool


class MapCellMetrics(_Section):
    vanilla: float
    bn: float
    difference: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def side(self):
        return stats.side(stats.Estimate(_nan(self.difference), self.ci_low, self.ci_high, n=0), 0.0)


class Metrics(_Section):
    """The whole file: the claims, train@ per variant, the horizon check, and the sweep's map."""

    claims: dict[str, ClaimMetrics]
    vanilla: VariantMetrics
    bn: VariantMetrics
    horizon: dict[str, HorizonMetrics]
    robustness_map: dict[str, dict[str, MapCellMetrics]]  # "init_std_0.1" -> "lr_0.316" -> cell

    def write(self, path: Path = METRICS) -> None:
        write_json(path, self.model_dump())

    @classmethod
    def read(cls, path: Path = METRICS) -> Metrics:
        return read_json_as(cls, path, "evaluate")


# --- built from the comparison -------------------------------------------------------------------------------


def build(comparison: Comparison) -> Metrics:
    settings = comparison.params.evaluate
    return Metrics(
        claims={claim.key: claim_metrics(claim) for claim in comparison.claims},
        vanilla=variant_metrics(comparison.tuned["vanilla"], settings.accuracy_targets, settings.confidence),
        bn=variant_metrics(comparison.tuned["bn"], settings.accuracy_targets, settings.confidence),
        horizon={variant: horizon_metrics(check) for variant, check in comparison.horizons.items()},
        robustness_map=map_metrics(comparison.cells),
    )


def claim_metrics(claim: Claim) -> ClaimMetrics:
    estimate = claim.estimate
    return ClaimMetrics(verdict=claim.verdict, statistic=claim.statistic, scale=claim.scale,
                        effect=_finite(estimate.effect), ci_low=_finite(estimate.ci_low),
                        ci_high=_finite(estimate.ci_high), n=estimate.n)  # fmt: skip


def variant_metrics(outcome: TunedOutcome, targets: Sequence[float], confidence: float) -> VariantMetrics:
    seeds = outcome.seeds
    test_accuracy = stats.seed_summary([outcome.test[seed].accuracy for seed in seeds], confidence)
    train_accuracy = float(np.mean([outcome.train[seed].accuracy for seed in seeds]))
    curves, drifts = outcome.curves, list(outcome.drifts.values())
    return VariantMetrics(
        lr=outcome.training.lr,
        n_seeds=len(seeds),
        n_diverged=int(curves.diverged.sum()),
        test_accuracy=TestAccuracy(
            mean=test_accuracy.mean, std=test_accuracy.std, ci_low=test_accuracy.ci_low, ci_high=test_accuracy.ci_high
        ),
        test_accuracy_moving_average=_mean(curves.accuracy[:, -1].tolist()),
        test_loss_mean=_mean([outcome.test[seed].loss for seed in seeds]),
        train_accuracy_mean=train_accuracy,
        train_loss_mean=_mean([outcome.train[seed].loss for seed in seeds]),
        train_test_gap=train_accuracy - test_accuracy.mean,
        accuracy_auc=_mean([stats.mean_accuracy_over_steps(*_observed(curves.steps, row)) for row in curves.accuracy]),
        steps_to={formats.target_key(target): _steps_to(outcome, target) for target in targets},
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
    reached = steps_to(outcome.curves, target)
    return StepsTo(median=reached.median, n_reached=reached.n_reached)


def horizon_metrics(check: HorizonCheck) -> HorizonMetrics:
    return HorizonMetrics(
        tuned_lr=check.tuned_lr,
        nearest_swept_lr=check.nearest_swept_lr,
        best_swept_lr=check.best_swept_lr,
        shortfall=_finite(check.shortfall.effect),
        ci_low=_finite(check.shortfall.ci_low),
        ci_high=_finite(check.shortfall.ci_high),
        within_seed_noise=check.within_seed_noise,
    )


def map_metrics(cells: Sequence[MapCell]) -> dict[str, dict[str, MapCellMetrics]]:
    """init std -> learning rate -> both means and the paired BN − vanilla with its interval."""
    grid: dict[str, dict[str, MapCellMetrics]] = {}
    for cell in cells:
        grid.setdefault(f"init_std_{cell.init_std:g}", {})[f"lr_{cell.learning_rate:.3g}"] = MapCellMetrics(
            vanilla=cell.vanilla,
            bn=cell.bn,
            difference=_finite(cell.difference.effect),
            ci_low=_finite(cell.difference.ci_low),
            ci_high=_finite(cell.difference.ci_high),
        )
    return grid


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
    """One line per claim of the paper: its verdict, effect and confidence interval."""
    rows = [f"{'claim':<24}{'verdict':<14}{'effect':>11}  interval", "-" * 72]
    for key, claim in claims.items():
        effect = formats.effect(_nan(claim.effect), claim.scale)
        rows.append(f"{key:<24}{claim.verdict:<14}{effect:>11}  {formats.interval(claim.estimate, claim.scale)}")
    return rows


def variants_table(metrics: Metrics) -> list[str]:
    """train@: each variant at its own tuned rate, side by side."""
    cells: dict[str, Callable[[VariantMetrics], str]] = {
        "learning rate (tuned)": lambda m: formats.number(m.lr, ".4g"),
        "final test accuracy (BN: Algorithm 2)": lambda m: formats.percent(m.test_accuracy.mean),
        "final test accuracy (moving averages)": lambda m: formats.percent(m.test_accuracy_moving_average),
        "final test loss": lambda m: formats.number(m.test_loss_mean, ".3f"),
        **{
            f"steps to {target} % (median of seeds)": lambda m, target=target: formats.steps(m.steps_to[target].median)
            for target in metrics.vanilla.steps_to
        },
        "diverged seeds": lambda m: f"{m.n_diverged} of {m.n_seeds}",
    }
    rows = [f"{'train@, each variant at its tuned rate':<44}{'vanilla':>14}{'BN':>14}", "-" * 72]
    rows += [f"{name:<44}{cell(metrics.vanilla):>14}{cell(metrics.bn):>14}" for name, cell in cells.items()]
    return rows


def map_table(grid: Mapping[str, Mapping[str, MapCellMetrics]]) -> list[str]:
    """sweep@: BN − vanilla final test accuracy per (init std, lr) cell, * where its interval excludes 0."""
    rates = [key.removeprefix("lr_") for key in next(iter(grid.values()))]
    rows = [
        "sweep@: BN − vanilla final test accuracy in pp, mean of seeds; * where the paired interval excludes 0",
        "init std / lr".ljust(14) + "".join(f"{rate:>10}" for rate in rates),
    ]
    for init_std, cells in grid.items():
        texts = [f"{100 * _nan(cell.difference):+9.1f}{'*' if cell.side else ' '}" for cell in cells.values()]
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
