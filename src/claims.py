"""The paper's MNIST claims, each decided by one named statistic with a paired confidence interval.

Where a claim is about what a practitioner gets, it is decided on train@ (each variant at its own tuned rate, the
same seeds); where it is about robustness, on the sweep (both variants at shared rates and inits, the same seeds).
Either way seed s of BN is compared with seed s of vanilla: the same data order and the same initial draws.

A verdict follows from the interval alone: "holds" when it excludes no effect on BN's side, "contradicted" when on
the other side, "not shown" otherwise. No effect is 0 for a difference and 1 for a ratio (named so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from src import stats
from src.errors import StudyError
from src.robustness import SweepResults, usable_learning_rates, worst_init_accuracy

NAMES = {"vanilla": "vanilla", "bn": "BN"}
# Figure 1 (b, c) compares the sigmoid-input distribution after the first tenth of training with the end.
DRIFT_REFERENCE_FRACTION = 0.1


@dataclass(frozen=True)
class Claim:
    key: str  # its name in metrics.json
    title: str
    design: str  # which runs decide it
    statistic: str
    scale: Literal["ratio", "accuracy", "plain"]  # ratio: BN / vanilla (no effect 1); else BN − vanilla (no effect 0)
    estimate: stats.Estimate
    bn_favoured: Literal["higher", "lower"]  # which side of no effect BN's claim is on
    note: str = ""  # what the reader must know to read the number (censoring, dropped seeds)

    @property
    def verdict(self) -> stats.Verdict:
        return stats.verdict(self.estimate, 1.0 if self.scale == "ratio" else 0.0, self.bn_favoured)

    def as_metrics(self) -> dict:
        """{verdict, statistic, scale, effect, ci_low, ci_high, n}: the claim as results/metrics.json holds it."""
        estimate = self.estimate
        return {
            "verdict": self.verdict,
            "statistic": self.statistic,
            "scale": self.scale,
            "effect": estimate.effect,
            "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high,
            "n": estimate.n,
        }


@dataclass(frozen=True)
class TrainedSeeds:
    """One variant's train@ outcome per seed, in seed order."""

    seeds: list[int]
    steps: np.ndarray  # (E,) evaluation steps
    accuracy: np.ndarray  # (S, E) test accuracy over training
    final_accuracy: np.ndarray  # (S,) the saved models scored on the test split
    drift: np.ndarray  # (S,) mean relative drift over the tracked sigmoids (stats.PercentileDrift.relative_drift)


def faster_convergence(vanilla: TrainedSeeds, bn: TrainedSeeds, target: float, confidence: float) -> Claim:
    """Steps to `target` test accuracy, BN / vanilla per seed; a seed that never reaches it counts at the horizon."""
    horizon = float(vanilla.steps[-1])
    steps, never = {}, []
    for name, seeds in (("vanilla", vanilla), ("bn", bn)):
        curves = np.nan_to_num(seeds.accuracy, nan=-1.0)  # an evaluation a seed lacks never reaches the target
        firsts = [stats.first_step_reaching(seeds.steps, curve, target) for curve in curves]
        steps[name] = [horizon if first is None else max(first, 1) for first in firsts]
        never += [f"{NAMES[name]} seed {s}" for s, first in zip(seeds.seeds, firsts, strict=True) if first is None]
    note = (
        f"{', '.join(never)} never reached {target:.0%}: counted at the last step, which pulls the ratio toward 1"
        if never
        else ""
    )
    return Claim(
        key="faster_convergence",
        title="BN converges faster",
        design=_train_design(vanilla),
        statistic=f"steps to {target:.0%} test accuracy, BN / vanilla (geometric mean of per-seed ratios)",
        scale="ratio",
        estimate=stats.paired_ratio(steps["bn"], steps["vanilla"], confidence),
        bn_favoured="lower",
        note=note,
    )


def higher_accuracy(vanilla: TrainedSeeds, bn: TrainedSeeds, confidence: float) -> Claim:
    return Claim(
        key="higher_accuracy",
        title="BN reaches a higher accuracy",
        design=_train_design(vanilla),
        statistic="final test accuracy, BN − vanilla (BN under Algorithm 2's population statistics)",
        scale="accuracy",
        estimate=stats.paired_difference(bn.final_accuracy, vanilla.final_accuracy, confidence),
        bn_favoured="higher",
    )


def stable_sigmoid_inputs(vanilla: TrainedSeeds, bn: TrainedSeeds, confidence: float) -> Claim:
    """The distribution drift of the last hidden layer's sigmoid inputs from 10 % of training to the end."""
    finite = np.isfinite(vanilla.drift) & np.isfinite(bn.drift)
    dropped = int((~finite).sum())
    note = f"{dropped} seed(s) left out: a tracked input with no spread has no relative drift" if dropped else ""
    return Claim(
        key="stable_sigmoid_inputs",
        title="BN keeps the sigmoid-input distribution stable",
        design=_train_design(vanilla),
        statistic=f"drift of the last hidden layer's sigmoid inputs from {DRIFT_REFERENCE_FRACTION:.0%} of training "
        "to the end (the mean absolute shift of the 15/50/85th percentiles over the 15–85 spread), BN − vanilla",
        scale="plain",
        estimate=stats.paired_difference(bn.drift[finite], vanilla.drift[finite], confidence)
        if finite.any()
        else _no_pairs(),
        bn_favoured="lower",
        note=note,
    )


def higher_usable_learning_rate(
    vanilla: SweepResults, bn: SweepResults, init_std: float, usable_accuracy: float, confidence: float
) -> Claim:
    largest = {name: usable_learning_rates(sweep, init_std, usable_accuracy) for name, sweep in
               (("vanilla", vanilla), ("bn", bn))}  # fmt: skip
    at_top = int((largest["bn"] == bn.learning_rates[-1]).sum())
    note = (
        f"BN trained at the largest rate swept in {at_top} of {len(bn.seeds)} seeds: the ratio is a lower bound"
        if at_top
        else ""
    )
    return Claim(
        key="higher_usable_lr",
        title="BN allows a higher learning rate",
        design=_sweep_design(vanilla, f"init std {init_std:g}"),
        statistic=f"largest swept rate that trains (no divergence, final test accuracy ≥ {usable_accuracy:.0%}), "
        "BN / vanilla (geometric mean of per-seed ratios)",
        scale="ratio",
        estimate=stats.paired_ratio(largest["bn"], largest["vanilla"], confidence),
        bn_favoured="higher",
        note=note,
    )


def robust_to_initialisation(vanilla: SweepResults, bn: SweepResults, confidence: float) -> Claim:
    stds = ", ".join(f"{std:g}" for std in vanilla.init_stds)
    return Claim(
        key="robust_to_init",
        title="BN makes training robust to the initialisation",
        design=_sweep_design(vanilla, f"init std {stds}"),
        statistic="final test accuracy under the worst init std, averaged over the swept rates, BN − vanilla",
        scale="accuracy",
        estimate=stats.paired_difference(worst_init_accuracy(bn), worst_init_accuracy(vanilla), confidence),
        bn_favoured="higher",
    )


def _train_design(seeds: TrainedSeeds) -> str:
    return f"train@: each variant at its tuned rate, {len(seeds.seeds)} paired seeds"


def _sweep_design(sweep: SweepResults, inits: str) -> str:
    rates = f"{sweep.learning_rates[0]:g}–{sweep.learning_rates[-1]:g}"
    return f"sweep@: shared rates {rates}, {inits}, {len(sweep.seeds)} paired seeds"


def _no_pairs() -> stats.Estimate:
    return stats.Estimate(effect=math.nan, ci_low=None, ci_high=None, n=0)


def all_claims(
    trained: Mapping[str, TrainedSeeds],
    swept: Mapping[str, SweepResults],
    *,
    convergence_target: float,
    usable_accuracy: float,
    init_std: float,
    confidence: float,
) -> list[Claim]:
    """The five claims, in the order the report reads them."""
    return [
        faster_convergence(trained["vanilla"], trained["bn"], convergence_target, confidence),
        higher_accuracy(trained["vanilla"], trained["bn"], confidence),
        higher_usable_learning_rate(swept["vanilla"], swept["bn"], init_std, usable_accuracy, confidence),
        stable_sigmoid_inputs(trained["vanilla"], trained["bn"], confidence),
        robust_to_initialisation(swept["vanilla"], swept["bn"], confidence),
    ]


def check_same_seeds(trained: Mapping[str, TrainedSeeds]) -> Sequence[int]:
    """The seeds both variants were trained on: they must be the same, or no seed has a pair."""
    seeds = {name: result.seeds for name, result in trained.items()}
    if seeds["vanilla"] != seeds["bn"]:
        raise StudyError(
            f"train@ ran vanilla on seeds {seeds['vanilla']} and BN on {seeds['bn']}: the comparison pairs them "
            "seed by seed; re-run `dvc repro train`"
        )
    return seeds["bn"]
