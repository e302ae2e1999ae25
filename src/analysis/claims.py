"""The paper's claims about BN on MNIST, each decided at the paper's design and at a practitioner's.

Section 4.1 (MNIST, Figure 1) claims that with BN the net converges faster, reaches a higher accuracy and keeps the
distribution of its sigmoid inputs stable; the paper compares the two nets at one learning rate (the shared design:
the sweep's cells where both nets train, at the paper's init std). A practitioner tunes each net's rate (the tuned
design, train@). Section 3.3 adds that BN allows higher learning rates and makes training robust to the
initialisation; the paper shows that on ImageNet, so here those two are extensions, decided on the sweep.

Each primary claim is one specification fixed in params.yaml before the outcome was seen; the primary claims are
one family of tests, corrected together (Holm by default), and each also reports how every other reasonable
specification of it decides (src/analysis/specifications.py).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np

from src.analysis import specifications, stats
from src.analysis.outcomes import Evidence
from src.analysis.specifications import Design, Specification

SECTIONS = {
    "4.1": "the paper's Section 4.1 (MNIST)",
    "3.3": "an extension of the paper's Section 3.3 (shown there on ImageNet)",
}


@dataclass(frozen=True)
class Topic:
    """What a claim says and how its statistic reads."""

    key: str
    title: str
    section: Literal["4.1", "3.3"]
    statistic: str
    scale: Literal["ratio", "accuracy", "plain"]  # ratio: BN / vanilla (no effect 1); else BN − vanilla (no effect 0)
    bn_favoured: Literal["higher", "lower"]
    short: str  # the claim in a few words, for narrow tables

    @property
    def no_effect(self) -> float:
        return 1.0 if self.scale == "ratio" else 0.0


TOPICS = {
    "faster_convergence": Topic(
        "faster_convergence",
        "BN converges faster",
        "4.1",
        "steps to a target test accuracy, BN / vanilla (geometric mean over seeds)",
        "ratio",
        "lower",
        "converges faster",
    ),
    "higher_accuracy": Topic(
        "higher_accuracy",
        "BN reaches a higher accuracy",
        "4.1",
        "final test accuracy, BN − vanilla",
        "accuracy",
        "higher",
        "higher accuracy",
    ),
    "stable_sigmoid_inputs": Topic(
        "stable_sigmoid_inputs",
        "BN keeps the sigmoid-input distribution stable",
        "4.1",
        "drift of the last hidden layer's sigmoid inputs to the end of training (mean absolute shift of the "
        "15/50/85th percentiles over the reference 15–85 spread), BN − vanilla",
        "plain",
        "lower",
        "stable sigmoid inputs",
    ),
    "higher_usable_lr": Topic(
        "higher_usable_lr",
        "BN allows a higher learning rate",
        "3.3",
        "largest learning rate that trains (no divergence, final test accuracy at least the usable cut), "
        "BN / vanilla (geometric mean over seeds)",
        "ratio",
        "higher",
        "higher usable rate",
    ),
    "robust_to_init": Topic(
        "robust_to_init",
        "BN makes training robust to the initialisation",
        "3.3",
        "final test accuracy under a bad init std, BN − vanilla, averaged over swept rates",
        "accuracy",
        "higher",
        "robust to the init",
    ),
}
# The primary claims, in the order the report reads them: one family of tests.
PRIMARY: tuple[tuple[str, Design], ...] = (
    ("faster_convergence", "shared"),
    ("faster_convergence", "tuned"),
    ("higher_accuracy", "shared"),
    ("higher_accuracy", "tuned"),
    ("stable_sigmoid_inputs", "shared"),
    ("stable_sigmoid_inputs", "tuned"),
    ("higher_usable_lr", "shared"),
    ("robust_to_init", "shared"),
)
CURVES = {
    "faster_convergence": specifications.convergence,
    "higher_accuracy": specifications.accuracy,
    "stable_sigmoid_inputs": specifications.stability,
    "higher_usable_lr": specifications.usable_rate,
    "robust_to_init": specifications.init_robustness,
}


@dataclass(frozen=True)
class Claim:
    """A primary claim: its primary specification, decided with the family's correction, its topic's whole
    specification curve, and how the curve's specifications in the claim's design decide (each on its own, at the
    nominal level)."""

    topic: Topic
    primary: Specification
    adjusted_p: float | None
    verdict: stats.Decision
    curve: list[Specification]
    alpha: float
    family: int  # how many claims were corrected together

    @property
    def seeds_needed(self) -> int | None:
        """Where the claim is not shown: about how many paired seeds would decide an effect of its size and spread
        at the family's level (Bonferroni's, which Holm's first step is), with 80 % power; None otherwise."""
        if self.verdict != "not shown":
            return None
        return stats.seeds_needed(self.estimate, self.alpha / self.family, log_scale=self.topic.scale == "ratio")

    @property
    def key(self) -> str:
        return f"{self.topic.key}_{self.primary.design}"

    @property
    def estimate(self) -> stats.Estimate:
        return self.primary.estimate

    @property
    def scale(self) -> str:
        return self.topic.scale

    def spec_verdicts(self) -> list[stats.Decision]:
        """Each specification of the topic's whole curve, decided on its own."""
        return [self._verdict(spec) for spec in self.curve]

    @property
    def design_curve(self) -> list[Specification]:
        """The curve's specifications in the claim's own design. The other design decides the other claim of the
        topic, on the same seeds: counted here too, its specifications would read as independent support."""
        return [spec for spec in self.curve if spec.design == self.primary.design]

    @property
    def agreement(self) -> dict[str, int]:
        """How many of the claim's design's specifications decide each way."""
        return dict(Counter(self._verdict(spec) for spec in self.design_curve))

    @property
    def agreeing(self) -> int:
        """How many of the claim's design's specifications reach the primary's verdict."""
        return self.agreement.get(self.verdict, 0)

    def _verdict(self, spec: Specification) -> stats.Decision:
        return spec.verdict(self.alpha, self.topic.bn_favoured, self.topic.no_effect)


def decide_claims(evidence: Evidence) -> list[Claim]:
    """The primary claims in PRIMARY's order, their p-values corrected as one family (params' `correction`)."""
    settings = evidence.settings
    curves = {topic: CURVES[topic](evidence) for topic in TOPICS}
    primaries = [_primary(curves[topic], design) for topic, design in PRIMARY]
    correct = stats.holm if settings.correction == "holm" else stats.benjamini_hochberg
    adjusted = correct([spec.estimate.p_value for spec in primaries])
    claims = []
    for (topic_key, _), spec, p in zip(PRIMARY, primaries, adjusted, strict=True):
        topic = TOPICS[topic_key]
        verdict = stats.decide(spec.estimate, p, settings.alpha, topic.no_effect, topic.bn_favoured)
        claims.append(Claim(topic, spec, p, verdict, curves[topic_key], settings.alpha, len(PRIMARY)))
    return claims


def _primary(curve: list[Specification], design: Design) -> Specification:
    (primary,) = [spec for spec in curve if spec.primary and spec.design == design]
    return primary


# --- the sweep's map and the horizon check -----------------------------------------------------------------------


@dataclass(frozen=True)
class MapCell:
    init_std: float
    learning_rate: float
    vanilla: float  # mean final test accuracy over seeds
    bn: float
    difference: stats.Estimate  # BN − vanilla, paired by seed
    adjusted_p: float | None  # corrected across the map's cells
    did_not_train: dict[str, float]  # per variant, the share of seeds that ended at chance
    alpha: float
    trained: dict[str, float]  # per variant, the share of seeds that trained (Evidence.trained)

    @property
    def both_failed(self) -> bool:
        """No seed of either net trained: whichever way the difference goes, it is between two failures (two nets at
        or near chance), not a gain or loss from BN."""
        return not any(self.trained.values())

    @property
    def side(self) -> Literal["above", "below"] | None:
        """BN significantly higher ("above"), lower ("below") or neither, after the map's correction."""
        decision = stats.decide(self.difference, self.adjusted_p, self.alpha, 0.0, "higher")
        return {"holds": "above", "contradicted": "below"}.get(decision)

    @property
    def side_uncorrected(self) -> Literal["above", "below"] | None:
        decision = stats.decide(self.difference, self.difference.p_value, self.alpha, 0.0, "higher")
        return {"holds": "above", "contradicted": "below"}.get(decision)


def robustness_map(evidence: Evidence) -> list[MapCell]:
    """Every (init std, learning rate) cell: both variants' mean final accuracy and the paired BN − vanilla, tested
    over seeds and corrected across the cells as one family (params' `map_correction`), and whether each variant's
    seeds ended at chance and trained."""
    settings = evidence.settings
    vanilla, bn = evidence.shared["vanilla"].sweep, evidence.shared["bn"].sweep
    cells = [(i, j) for i in range(len(vanilla.init_stds)) for j in range(len(vanilla.learning_rates))]
    estimates = [
        stats.paired_difference_test(
            bn.final_accuracy[:, i, j], vanilla.final_accuracy[:, i, j], evidence.inference, bounds=(-1.0, 1.0)
        )
        for i, j in cells
    ]
    correct = stats.holm if settings.map_correction == "holm" else stats.benjamini_hochberg
    adjusted = correct([estimate.p_value for estimate in estimates])
    trained = evidence.trained()
    return [
        MapCell(
            init_std=float(vanilla.init_stds[i]),
            learning_rate=float(vanilla.learning_rates[j]),
            vanilla=float(vanilla.final_accuracy[:, i, j].mean()),
            bn=float(bn.final_accuracy[:, i, j].mean()),
            difference=estimate,
            adjusted_p=p,
            did_not_train={
                variant: float((shared.sweep.final_accuracy[:, i, j] < settings.did_not_train_below).mean())
                for variant, shared in evidence.shared.items()
            },
            alpha=settings.alpha,
            trained={variant: float(runs[:, i, j].mean()) for variant, runs in trained.items()},
        )
        for (i, j), estimate, p in zip(cells, estimates, adjusted, strict=True)
    ]


@dataclass(frozen=True)
class HorizonCheck:
    """Is the rate tuned at `tune.steps` still the best after `sweep.steps`? Compared on the sweep's grid."""

    tuned_lr: float
    nearest_swept_lr: float  # the grid rate nearest the tuned one (log scale)
    best_swept_lr: float  # the grid rate with the highest mean final accuracy over seeds
    shortfall: stats.Estimate  # accuracy at the best rate − at the nearest one, paired by seed
    alpha: float

    @property
    def within_seed_noise(self) -> bool:
        if not self.shortfall.estimable:
            return True
        return stats.decide(self.shortfall, self.shortfall.p_value, self.alpha, 0.0, "higher") != "holds"


def horizon_check(evidence: Evidence, variant: str) -> HorizonCheck:
    """The variant's tuned rate against the sweep's best at the paper's init std."""
    sweep = evidence.shared[variant].sweep
    row = sweep.final_accuracy[:, evidence.grid.init_stds.index(evidence.paper_init_std)]  # (S, L)
    tuned_lr = evidence.tuned[variant].training.lr
    nearest = int(np.argmin(np.abs(np.log(sweep.learning_rates) - math.log(tuned_lr))))
    best = int(np.argmax(row.mean(axis=0)))
    return HorizonCheck(
        tuned_lr=tuned_lr,
        nearest_swept_lr=float(sweep.learning_rates[nearest]),
        best_swept_lr=float(sweep.learning_rates[best]),
        shortfall=stats.paired_difference_test(row[:, best], row[:, nearest], evidence.inference, bounds=(-1.0, 1.0)),
        alpha=evidence.settings.alpha,
    )
