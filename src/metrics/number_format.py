"""How the study writes its numbers, for the report and the terminal alike: one spelling of each kind of number.

A missing value (None, NaN) is "n/a" everywhere; an effect and its interval are written on their claim's scale:
a ratio as 0.75×, an accuracy difference in percentage points, anything else as a signed number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from src.analysis import stats


def missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def percent(value: float | None, digits: int = 2) -> str:
    """0.97234 -> "97.23%"."""
    return "n/a" if missing(value) else f"{value:.{digits}%}"


def points(value: float | None) -> str:
    """An accuracy difference in percentage points: 0.0023 -> "+0.23 pp"."""
    return "n/a" if missing(value) else f"{value * 100:+.2f} pp"


def number(value: float | None, spec: str) -> str:
    return "n/a" if missing(value) else f"{value + 0.0:{spec}}"  # + 0.0: no "-0.00"


def p_value(value: float | None) -> str:
    """A p-value to two significant digits ("0.0039"), "n/a" when there is none."""
    return "n/a" if missing(value) else f"{value:.2g}"


def share(value: float | None) -> str:
    """A fraction as a percentage with as many digits as it needs: 0.01 -> "1%", 0.001 -> "0.1%"."""
    return "n/a" if missing(value) else f"{value * 100:g}%"


def steps(value: float | None) -> str:
    return "not reached" if missing(value) else f"{value:,.0f}"


def target_key(target: float) -> str:
    """0.95 -> '95', 0.975 -> '97.5': a metric-name-friendly percentage."""
    return f"{target * 100:g}"


def effect(value: float | None, scale: str) -> str:
    """An effect on its claim's scale: "0.75×", "+0.23 pp" or "+0.072"."""
    if missing(value):
        return "n/a"
    if scale == "ratio":
        return number(value, ".2f") + "×"
    return points(value) if scale == "accuracy" else number(value, "+.3f")


def interval(estimate: stats.Estimate, scale: str) -> str:
    """An effect's interval on its scale, or "n/a (n pairs)" when there is none."""
    low, high = estimate.ci_low, estimate.ci_high
    if low is None or high is None:
        return f"n/a ({estimate.n} pair{'s' if estimate.n != 1 else ''})"
    return f"[{effect(low, scale)}, {effect(high, scale)}]"


CORRECTIONS = {"holm": "Holm", "bh": "Benjamini–Hochberg"}  # params.yaml's names of the corrections, in words
TESTS = {
    "sign_flip": "exact sign-flip permutation test of the mean over {n} paired seeds",
    "signed_rank": "exact Wilcoxon signed-rank test (all sign flips) over {n} paired seeds",
    "two_level_bootstrap": "two-level bootstrap over {n} paired seeds and the test images",
}
INTERVALS = {
    "studentized": "studentized bootstrap interval (symmetric bootstrap-t)",
    "t": "t interval",
    "BCa": "BCa bootstrap interval",
    "percentile": "percentile bootstrap interval",
    "point": "every pair differs alike: the interval is that point",
}


def test_text(estimate: stats.Estimate) -> str:
    """How an estimate was tested and bounded, in words."""
    if estimate.test is None:
        return f"not estimable over {estimate.n} paired seeds"
    interval = f"; {INTERVALS[estimate.interval_method]}" if estimate.interval_method else ""
    return TESTS[estimate.test].format(n=estimate.n) + interval


def accuracy_with_sd(summary) -> str:
    """A mean accuracy over seeds with its std: "97.23% ± 0.11 pp"."""
    sd = "" if summary.std is None else f" ± {summary.std * 100:.2f} pp"
    return percent(summary.mean) + sd


def accuracy_interval(summary) -> str:
    if summary.ci_low is None:
        return "n/a (one seed)"
    # a t-interval knows nothing of accuracy's bounds; shown within them
    return f"[{percent(max(summary.ci_low, 0.0))}, {percent(min(summary.ci_high, 1.0))}]"


def reach(steps_to, seeds: int) -> str:
    """Median steps to a target over the seeds that reached it, and how many did: "1,800 steps (5/5)"."""
    median = "never" if steps_to.median is None else f"{steps_to.median:,.0f} steps"
    return f"{median} ({steps_to.n_reached}/{seeds})"


# the report's Jinja filters: every number in reports/report.md is written by one of these
FILTERS: Mapping = {
    "pct": percent,
    "pct0": lambda value: percent(value, 0),
    "pct1": lambda value: percent(value, 1),
    "pp": points,
    "num2": lambda value: number(value, ".2f"),
    "num3": lambda value: number(value, ".3g"),
    "num3f": lambda value: number(value, ".3f"),
    "num4": lambda value: number(value, ".4g"),
    "effect": lambda claim: effect(claim.estimate.effect, claim.scale),
    "interval": lambda claim: interval(claim.estimate, claim.scale),
    "ci_pp": lambda estimate: "n/a" if estimate.ci_low is None else interval(estimate, "accuracy"),
    "acc_sd": accuracy_with_sd,
    "acc_ci": accuracy_interval,
    "reach": reach,
    "target_key": target_key,
    "p": p_value,
    "pct_any": share,
    "effect_on": lambda estimate, scale: effect(estimate.effect, scale),
    "interval_on": interval,
}
