"""Every claim's statistic under each reasonable analysis choice: its specification curve.

A specification is one way to decide a claim: a design (tuned: each variant at its own tuned rate; shared: both at
the same rates, on the sweep's cells where both nets train, at one init std) and the choices the claim leaves open
(a convergence target, a drift reference point, which BN inference rule, which test, which rates). Each is paired
seed by seed and tested on its own (uncorrected); src/analysis/claims.py marks the primary one of each claim, fixed in
params.yaml before the outcome was seen, and corrects those across the family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from src.analysis import stats
from src.analysis.curves import climb_target, steps_to
from src.analysis.outcomes import Evidence, SharedOutcome

Design = Literal["shared", "tuned"]


@dataclass(frozen=True)
class Specification:
    """One way to decide one claim, and what it found (tested on its own, uncorrected)."""

    topic: str
    design: Design
    init_std: float | None  # the shared design's init std; None for the tuned design
    choice: str  # what else this specification chose, in words
    estimate: stats.Estimate
    primary: bool = False
    note: str = ""

    def verdict(self, alpha: float, bn_favoured: Literal["higher", "lower"], no_effect: float) -> stats.Decision:
        return stats.decide(self.estimate, self.estimate.p_value, alpha, no_effect, bn_favoured)


def _not_estimable(why: str) -> tuple[stats.Estimate, str]:
    return stats.Estimate(effect=float("nan"), ci_low=None, ci_high=None, n=0), why


# --- converges faster --------------------------------------------------------------------------------------------


def convergence(evidence: Evidence) -> list[Specification]:
    """Steps to a target on the way up, BN / vanilla, for every climb of `convergence_climbs`, in each design."""
    settings, specs = evidence.settings, []
    for climb in settings.convergence_climbs:
        primary, words = climb == settings.convergence_climb, f"{climb * 100:g} % of the climb"
        estimate, note = _tuned_convergence(evidence, climb)
        specs.append(Specification("faster_convergence", "tuned", None, words, estimate, primary, note))
        for init_index, init_std in enumerate(evidence.grid.init_stds):
            estimate, note = _shared(evidence, init_index, _shared_convergence, climb)
            paper = primary and init_std == evidence.paper_init_std
            specs.append(Specification("faster_convergence", "shared", init_std, words, estimate, paper, note))
    return specs


def _tuned_convergence(evidence: Evidence, climb: float) -> tuple[stats.Estimate, str]:
    tuned = evidence.tuned
    target = climb_target(np.concatenate([outcome.curves.accuracy for outcome in tuned.values()]), climb)
    steps = {v: np.maximum(steps_to(o.curves.steps, o.curves.accuracy, target), 1.0) for v, o in tuned.items()}
    return stats.paired_ratio_test(steps["bn"], steps["vanilla"], evidence.inference), f"target {target:.2%}"


def _shared_convergence(evidence: Evidence, init_index: int, rates: np.ndarray, climb: float) -> stats.Estimate:
    """Per seed, the geometric mean over `rates` of its steps to each cell's target."""
    log_steps = {variant: [] for variant in evidence.shared}
    for rate in rates:
        cells = {v: shared.sweep.accuracy[:, init_index, rate] for v, shared in evidence.shared.items()}  # (S, E)
        target = climb_target(np.concatenate(list(cells.values())), climb)
        for variant, curves in cells.items():
            steps = steps_to(evidence.shared[variant].sweep.steps, curves, target)
            log_steps[variant].append(np.log(np.maximum(steps, 1.0)))
    geometric = {variant: np.exp(np.mean(values, axis=0)) for variant, values in log_steps.items()}
    return stats.paired_ratio_test(geometric["bn"], geometric["vanilla"], evidence.inference)


def _shared(evidence: Evidence, init_index: int, statistic: Callable, *choices) -> tuple[stats.Estimate, str]:
    """`statistic(evidence, init_index, rates, *choices)` on the rates where both nets train at the init of
    `init_index`, or not estimable if there are none."""
    rates = np.flatnonzero(evidence.both_train(init_index))
    if not rates.size:
        return _not_estimable("no swept rate where both nets train")
    swept = evidence.grid.learning_rates
    return statistic(evidence, init_index, rates, *choices), "rates " + ", ".join(f"{swept[r]:.3g}" for r in rates)


# --- reaches a higher accuracy -----------------------------------------------------------------------------------

ACCURACY_CHOICES = {
    "seeds_and_images": "Algorithm 2; seeds and test images resampled",
    "seeds": "Algorithm 2; seeds",
    "moving_averages": "moving averages (the curve's last point); seeds",
}


def accuracy(evidence: Evidence) -> list[Specification]:
    """Final test accuracy, BN − vanilla: under Algorithm 2 or the moving averages, tested over seeds alone or over
    seeds and test images, in each design."""
    primary_choice, specs = evidence.settings.accuracy_test, []
    for choice, words in ACCURACY_CHOICES.items():
        primary = choice == primary_choice
        specs.append(Specification("higher_accuracy", "tuned", None, words, _tuned_accuracy(evidence, choice), primary))
        for init_index, init_std in enumerate(evidence.grid.init_stds):
            estimate, note = _shared(evidence, init_index, _shared_accuracy, choice)
            specs.append(
                Specification(
                    "higher_accuracy",
                    "shared",
                    init_std,
                    words,
                    estimate,
                    primary and init_std == evidence.paper_init_std,
                    note,
                )
            )
    return specs


def _tuned_accuracy(evidence: Evidence, choice: str) -> stats.Estimate:
    bn, vanilla, settings = evidence.tuned["bn"], evidence.tuned["vanilla"], evidence.settings
    if choice == "seeds_and_images":
        differences = bn.correct.astype(float) - vanilla.correct
        return stats.two_level_bootstrap(differences, settings.confidence, settings.resamples, settings.bootstrap_seed)
    pick = (lambda o: o.final_accuracy) if choice == "seeds" else (lambda o: o.moving_average_accuracy)
    return stats.paired_difference_test(pick(bn), pick(vanilla), evidence.inference, bounds=(-1.0, 1.0))


def _shared_accuracy(evidence: Evidence, init_index: int, rates: np.ndarray, choice: str) -> stats.Estimate:
    bn, vanilla, settings = evidence.shared["bn"], evidence.shared["vanilla"], evidence.settings
    if choice == "seeds_and_images":
        differences = (bn.correct[:, init_index, rates].astype(float) - vanilla.correct[:, init_index, rates]).mean(1)
        return stats.two_level_bootstrap(differences, settings.confidence, settings.resamples, settings.bootstrap_seed)
    if choice == "seeds":
        values = {v: o.sweep.final_accuracy[:, init_index, rates].mean(1) for v, o in evidence.shared.items()}
    else:
        values = {v: o.sweep.accuracy[:, init_index, rates, -1].mean(1) for v, o in evidence.shared.items()}
    return stats.paired_difference_test(values["bn"], values["vanilla"], evidence.inference, bounds=(-1.0, 1.0))


# --- keeps the sigmoid inputs stable -----------------------------------------------------------------------------


def stability(evidence: Evidence) -> list[Specification]:
    """The drift of the last hidden layer's sigmoid inputs from each reference point of training to its end,
    BN − vanilla, in each design."""
    settings, specs = evidence.settings, []
    for reference in settings.drift_references:
        primary, words = reference == settings.drift_reference, f"from {reference * 100:g} % of training"
        drifts = {v: o.drift(reference) for v, o in evidence.tuned.items()}
        estimate, note = _paired_finite(evidence, drifts)
        specs.append(Specification("stable_sigmoid_inputs", "tuned", None, words, estimate, primary, note))
        member_drifts = {v: o.drift(reference) for v, o in evidence.shared.items()}  # (S, I, L)
        for init_index, init_std in enumerate(evidence.grid.init_stds):
            estimate, note = _shared(evidence, init_index, _shared_stability, member_drifts)
            specs.append(
                Specification(
                    "stable_sigmoid_inputs",
                    "shared",
                    init_std,
                    words,
                    estimate,
                    primary and init_std == evidence.paper_init_std,
                    note,
                )
            )
    return specs


def _shared_stability(
    evidence: Evidence, init_index: int, rates: np.ndarray, member_drifts: Mapping[str, np.ndarray]
) -> stats.Estimate:
    per_seed = {variant: drift[:, init_index, rates].mean(1) for variant, drift in member_drifts.items()}
    return _paired_finite(evidence, per_seed)[0]


def _paired_finite(evidence: Evidence, values: Mapping[str, np.ndarray]) -> tuple[stats.Estimate, str]:
    """The paired difference over the seeds where both values are finite (a tracked input with no spread at the
    reference has no relative drift)."""
    finite = np.isfinite(values["bn"]) & np.isfinite(values["vanilla"])
    note = f"{int((~finite).sum())} seed(s) left out: no finite drift" if not finite.all() else ""
    if not finite.any():
        return _not_estimable(note)
    estimate = stats.paired_difference_test(values["bn"][finite], values["vanilla"][finite], evidence.inference)
    return estimate, note


# --- allows a higher learning rate (an extension of Section 3.3) ------------------------------------------------


def usable_rate(evidence: Evidence) -> list[Specification]:
    """Each seed's largest rate that trains, BN / vanilla: refined between the grid rates (edge@) at each init std of
    params.edge, and on the sweep's grid alone at every swept init std."""
    specs, paper_init = [], evidence.paper_init_std
    bn, vanilla = evidence.shared["bn"].edges, evidence.shared["vanilla"].edges
    for index, init_std in enumerate(bn.refined_inits):
        estimate = stats.paired_ratio_test(bn.rates[:, index], vanilla.rates[:, index], evidence.inference)
        bounds = int(np.isinf(bn.resolution[:, index]).sum())
        note = f"BN's edge is a lower bound in {bounds} seed(s): it trained at every rate tried" if bounds else ""
        specs.append(
            Specification(
                "higher_usable_lr", "shared", init_std, "refined edge", estimate, init_std == paper_init, note
            )
        )
    for index, init_std in enumerate(evidence.grid.init_stds):
        estimate = stats.paired_ratio_test(bn.coarse[:, index], vanilla.coarse[:, index], evidence.inference)
        specs.append(Specification("higher_usable_lr", "shared", init_std, "the sweep's grid alone", estimate))
    return specs


# --- robust to the initialisation (an extension of Section 3.3) -------------------------------------------------


def init_robustness(evidence: Evidence) -> list[Specification]:
    """Final test accuracy under a bad init std, BN − vanilla, averaged over the rates where both nets train at the
    paper's init (so a rate failure is not counted as an init failure), and over every swept rate."""
    sweep_config, specs = evidence.grid, []
    paper = sweep_config.init_stds.index(evidence.paper_init_std)
    both = np.flatnonzero(evidence.both_train(paper))
    every = np.arange(len(sweep_config.learning_rates))
    others = [i for i in range(len(sweep_config.init_stds)) if i != paper]
    bad_inits = {"the worst init std": None, **{f"init std {sweep_config.init_stds[i]:g}": i for i in others}}
    for rates, rate_words in ((both, "rates where both train at the paper's init"), (every, "every swept rate")):
        for init_words, init_index in bad_inits.items():
            primary = rates is both and init_index is None
            if not rates.size:
                estimate, note = _not_estimable("no swept rate where both nets train at the paper's init")
            else:
                estimate, note = _bad_init(evidence, rates, init_index), ""
            specs.append(
                Specification("robust_to_init", "shared", None, f"{init_words}, {rate_words}", estimate, primary, note)
            )
    return specs


def _bad_init(evidence: Evidence, rates: np.ndarray, init_index: int | None) -> stats.Estimate:
    def per_seed(shared: SharedOutcome) -> np.ndarray:
        final = shared.sweep.final_accuracy[:, :, rates]  # (S, I, R)
        at_bad = final.min(axis=1) if init_index is None else final[:, init_index]
        return at_bad.mean(axis=1)

    bn, vanilla = per_seed(evidence.shared["bn"]), per_seed(evidence.shared["vanilla"])
    return stats.paired_difference_test(bn, vanilla, evidence.inference, bounds=(-1.0, 1.0))
