"""results/metrics.json, defined once: its schema, written and read back, and the headline DVC compares.

Each primary claim names its design, its test, its n, its interval (inside the statistic's possible range), its
p-value before and after the family's correction, its verdict, and how its whole specification curve decides; the
curves themselves, each variant at its tuned rate, the horizon check and the sweep's map (with its correction and
both counts) follow. build.py makes it from the comparison; table.py prints it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

from src import paths
from src.analysis import stats
from src.atomic import write_json
from src.results.files import read_json_as

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
        return stats.Estimate(nan_as_missing(self.effect), self.ci_low, self.ci_high, self.n, self.p_value)


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
    specifications: dict[str, int]  # "total", "agreeing" and a count per verdict over its design's specifications
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
    both_failed: bool  # no seed of either net trained: a difference either way is between two failures


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

    def write(self, path: Path = paths.METRICS) -> None:
        write_json(path, self.model_dump())

    @classmethod
    def read(cls, path: Path = paths.METRICS) -> Metrics:
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
    "faster_convergence_shared": "faster_sh",
    "faster_convergence_tuned": "faster_tu",
    "higher_accuracy_shared": "acc_sh",
    "higher_accuracy_tuned": "acc_tu",
    "stable_sigmoid_inputs_shared": "stable_sh",
    "stable_sigmoid_inputs_tuned": "stable_tu",
    "higher_usable_lr_shared": "lr_edge",
    "robust_to_init_shared": "init",
}


def nan_as_missing(value: float | None) -> float:
    """None (a missing value in the file) as NaN, which the number formats spell "n/a"."""
    return math.nan if value is None else value
