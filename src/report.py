"""reports/report.md: rendered from templates/report.md.j2 with the claims, the metrics and the sweep's map.

Every sentence with a number is filled from the metrics when the report is written: if the numbers change, the
wording changes with them. The verdicts come from src/claims.py; nothing here decides one.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import jinja2
import numpy as np

from src import stats
from src.claims import Claim
from src.scores import target_key

NAMES = {"vanilla": "vanilla", "bn": "BN"}
PACKAGES = ("torch", "numpy", "scipy", "matplotlib", "mlflow", "optuna", "dvc")
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class ExampleUnit:
    """The sigmoid drawn in Figure 1 (b, c), with how its input distribution moved in each variant."""

    seed: int
    unit: int
    drift: Mapping[str, stats.PercentileDrift]
    start: Mapping[str, float]  # p50 at the reference step
    end: Mapping[str, float]  # p50 at the last step


def render_report(context: Mapping[str, object]) -> str:
    """The whole report as Markdown; see templates/report.md.j2 for the names `context` must provide."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,  # a misspelt name is an error, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    environment.filters.update(FILTERS)
    template = environment.get_template("report.md.j2")
    return template.render(names=NAMES, packages=package_versions(), **context)


def package_versions() -> str:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def map_summary(cells: Sequence, confidence: float) -> dict[str, int]:
    """How many robustness-map cells favour BN, favour vanilla, or neither, by the paired interval."""
    verdicts = [stats.verdict(cell.difference, 0.0, "higher") for cell in cells]
    return {"cells": len(cells), "better": verdicts.count("holds"), "worse": verdicts.count("contradicted")}


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if _missing(value) else f"{value:.{digits}%}"


def _pp(value: float | None) -> str:
    return "n/a" if _missing(value) else f"{value * 100:+.2f} pp"


def _num(value: float | None, spec: str) -> str:
    return "n/a" if _missing(value) else f"{value + 0.0:{spec}}"  # + 0.0: no "-0.00"


def _effect(claim: Claim) -> str:
    value = claim.estimate.effect
    if claim.scale == "ratio":
        return _num(value, ".2f") + "×"
    return _pp(value) if claim.scale == "accuracy" else _num(value, "+.3f")


def _interval(claim: Claim) -> str:
    low, high = claim.estimate.ci_low, claim.estimate.ci_high
    if low is None or high is None:
        return f"n/a ({claim.estimate.n} pair{'s' if claim.estimate.n != 1 else ''})"
    if claim.scale == "ratio":
        return f"[{low:.2f}×, {high:.2f}×]"
    if claim.scale == "accuracy":
        return f"[{_pp(low)}, {_pp(high)}]"
    return f"[{low:+.3f}, {high:+.3f}]"


def _estimate_pp(estimate: stats.Estimate) -> str:
    if estimate.ci_low is None or estimate.ci_high is None:
        return "n/a"
    return f"[{_pp(estimate.ci_low)}, {_pp(estimate.ci_high)}]"


def _accuracy_with_sd(summary: Mapping) -> str:
    sd = "" if summary["std"] is None else f" ± {summary['std'] * 100:.2f} pp"
    return _pct(summary["mean"]) + sd


def _accuracy_interval(summary: Mapping) -> str:
    if summary["ci_low"] is None:
        return "n/a (one seed)"
    # a t-interval knows nothing of accuracy's bounds; shown within them
    return f"[{_pct(max(summary['ci_low'], 0.0))}, {_pct(min(summary['ci_high'], 1.0))}]"


def _reach(steps_to: Mapping, seeds: int) -> str:
    median = "never" if steps_to["median"] is None else f"{steps_to['median']:,.0f} steps"
    return f"{median} ({steps_to['n_reached']}/{seeds})"


FILTERS = {
    "pct": _pct,
    "pct0": lambda value: _pct(value, 0),
    "pct1": lambda value: _pct(value, 1),
    "pp": _pp,
    "num2": lambda value: _num(value, ".2f"),
    "num3": lambda value: _num(value, ".3g"),
    "num3f": lambda value: _num(value, ".3f"),
    "num4": lambda value: _num(value, ".4g"),
    "effect": _effect,
    "interval": _interval,
    "ci_pp": _estimate_pp,
    "acc_sd": _accuracy_with_sd,
    "acc_ci": _accuracy_interval,
    "reach": _reach,
    "target_key": target_key,
}


def per_digit_accuracy(confusions: Sequence[np.ndarray]) -> list[float]:
    """Test accuracy per true digit, the mean over seeds of each seed's confusion matrix."""
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = [np.diag(confusion) / confusion.sum(axis=1) for confusion in confusions]
    return np.nanmean(per_seed, axis=0).tolist()
