"""The paper's MNIST claims, each decided by one named statistic with a paired confidence interval.

Where a claim is about what a practitioner gets, it is decided on train@ (each variant at its own tuned rate, the
same seeds); where it is about robustness, on the sweep (both variants at shared rates and inits, the same seeds).
Either way seed s of BN is compared with seed s of vanilla: the same data order and the same initial draws.

A verdict follows from the interval alone: "holds" when it excludes no effect on BN's side, "contradicted" when on
the other side, "not shown" otherwise. No effect is 0 for a difference and 1 for a ratio (named so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from src import stats
from src.config import DISPLAY_NAMES
from src.outcomes import DRIFT_REFERENCE_FRACTION, TunedOutcome, usable_learning_rates, worst_init_accuracy
from src.results import SweepResults


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


def faster_convergence(vanilla: TunedOutcome, bn: TunedOutcome, target: float, confidence: float) -> Claim:
    """Steps to `target` test accuracy, BN / vanilla per seed; a seed that never reaches it counts at the horizon."""
    horizon = float(vanilla.curves.steps[-1])
    steps, never = {}, []
    for name, outcome in (("vanilla", vanilla), ("bn", bn)):
        curves = np.nan_to_num(outcome.curves.accuracy, nan=-1.0)  # an evaluation a seed lacks never reaches it
        firsts = [stats.first_step_reaching(outcome.curves.steps, curve, target) for curve in curves]
        steps[name] = [horizon if first is None else max(first, 1) for first in firsts]
        never += [f"{DISPLAY_NAMES[name]} seed {s}" for s, f in zip(outcome.seeds, firsts, strict=True) if f is None]
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


def higher_accuracy(vanilla: TunedOutcome, bn: TunedOutcome, confidence: float) -> Claim:
    return Claim(
        key="higher_accuracy",
        title="BN reaches a higher accuracy",
        design=_train_design(vanilla),
        statistic="final test accuracy, BN − vanilla (BN under Algorithm 2's population statistics)",
        scale="accuracy",
        estimate=stats.paired_difference(bn.final_accuracy, vanilla.final_accuracy, confidence),
        bn_favoured="higher",
    )


def stable_sigmoid_inputs(vanilla: TunedOutcome, bn: TunedOutcome, confidence: float) -> Claim:
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
    row = list(vanilla.init_stds).index(init_std)
    largest = {name: usable_learning_rates(sweep, row, usable_accuracy) for name, sweep in
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


def _train_design(outcome: TunedOutcome) -> str:
    return f"train@: each variant at its tuned rate, {len(outcome.seeds)} paired seeds"


def _sweep_design(sweep: SweepResults, inits: str) -> str:
    rates = f"{sweep.learning_rates[0]:g}–{sweep.learning_rates[-1]:g}"
    return f"sweep@: shared rates {rates}, {inits}, {len(sweep.seeds)} paired seeds"


def _no_pairs() -> stats.Estimate:
    return stats.Estimate(effect=math.nan, ci_low=None, ci_high=None, n=0)


def all_claims(
    trained: Mapping[str, TunedOutcome],
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


# --- the sweep's map and the horizon check -----------------------------------------------------------------------


@dataclass(frozen=True)
class MapCell:
    init_std: float
    learning_rate: float
    vanilla: float  # mean final test accuracy over seeds
    bn: float
    difference: stats.Estimate  # BN − vanilla, paired by seed

    @property
    def side(self) -> Literal["above", "below"] | None:
        """Whether BN is significantly higher ("above"), lower ("below") or neither, by the paired interval."""
        return stats.side(self.difference, 0.0)


def robustness_map(vanilla: SweepResults, bn: SweepResults, confidence: float) -> list[MapCell]:
    """Every (init std, learning rate) cell: both variants' mean final accuracy and the paired BN − vanilla."""
    return [
        MapCell(
            init_std=float(init_std),
            learning_rate=float(learning_rate),
            vanilla=float(vanilla.final_accuracy[:, i, j].mean()),
            bn=float(bn.final_accuracy[:, i, j].mean()),
            difference=stats.paired_difference(bn.final_accuracy[:, i, j], vanilla.final_accuracy[:, i, j], confidence),
        )
        for i, init_std in enumerate(vanilla.init_stds)
        for j, learning_rate in enumerate(vanilla.learning_rates)
    ]


@dataclass(frozen=True)
class HorizonCheck:
    """Is the rate tuned at `tune.steps` still the best after `sweep.steps`? Compared on the sweep's grid."""

    tuned_lr: float
    nearest_swept_lr: float  # the grid rate nearest the tuned one (log scale)
    best_swept_lr: float  # the grid rate with the highest mean final accuracy over seeds
    shortfall: stats.Estimate  # accuracy at the best rate − at the nearest one, paired by seed

    @property
    def within_seed_noise(self) -> bool:
        return stats.side(self.shortfall, 0.0) != "above"


def horizon_check(sweep: SweepResults, tuned_lr: float, init_index: int, confidence: float) -> HorizonCheck:
    """The tuned rate against the sweep's best at the init std of `init_index`."""
    row = sweep.final_accuracy[:, init_index]  # (S, L)
    nearest = int(np.argmin(np.abs(np.log(sweep.learning_rates) - math.log(tuned_lr))))
    best = int(np.argmax(row.mean(axis=0)))
    return HorizonCheck(
        tuned_lr=tuned_lr,
        nearest_swept_lr=float(sweep.learning_rates[nearest]),
        best_swept_lr=float(sweep.learning_rates[best]),
        shortfall=stats.paired_difference(row[:, best], row[:, nearest], confidence),
    )
