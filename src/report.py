"""reports/report.md: its context, gathered from the comparison and the metrics, rendered from templates/report.md.j2.

Every sentence with a number is filled from them when the report is written (formatted by src/formats.py): if the
numbers change, the wording changes with them. The verdicts come from src/claims.py; nothing here decides one.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import jinja2
import numpy as np

from src.claims import MapCell
from src.comparison import Comparison
from src.config import DISPLAY_NAMES, Params
from src.formats import FILTERS
from src.metrics import Metrics
from src.outcomes import TunedOutcome

REPORT = Path("reports/report.md")
FIGURES = Path("reports/figures")
PACKAGES = ("torch", "numpy", "scipy", "matplotlib", "mlflow", "optuna", "dvc")
TEMPLATES = Path(__file__).parent / "templates"


def render(comparison: Comparison, metrics: Metrics, figure_names: Sequence[str]) -> str:
    """The whole report as Markdown."""
    return render_report(context(comparison, metrics, figure_names))


def context(comparison: Comparison, metrics: Metrics, figure_names: Sequence[str]) -> dict[str, object]:
    """Every name templates/report.md.j2 uses."""
    params, tuned, sweep = comparison.params, comparison.tuned, comparison.params.sweep
    seeds = tuned["bn"].seeds
    return {
        "claims": comparison.claims,
        "confidence": params.evaluate.confidence,
        "metrics": metrics,
        "targets": params.evaluate.accuracy_targets,
        "population_batches": params.model.population_batches,
        "seeds_text": f"{len(seeds)} seeds ({', '.join(map(str, seeds))})",
        "runs": {variant: _run_facts(outcome) for variant, outcome in tuned.items()},
        "sweep": {
            "rates": [f"{lr:.3g}" for lr in sweep.learning_rates],
            "init_stds": [f"{std:g}" for std in sweep.init_stds],
            "seeds": sweep.seed_list,
            "steps": sweep.steps,
            "paper_init_std": f"{params.model.init_std:g}",
        },
        "map": map_summary(comparison.cells),
        "horizon": comparison.horizons,
        "example": comparison.example,
        "figures": {name: f"{FIGURES.relative_to(REPORT.parent)}/{name}.png" for name in figure_names},
        "config": _config_lines(params),
        "per_digit": {v: per_digit_accuracy([s.confusion for s in o.test.values()]) for v, o in tuned.items()},
    }


def render_report(values: Mapping[str, object]) -> str:
    """templates/report.md.j2 filled with `values`; a name the template uses but `values` lacks is an error."""
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
    return template.render(names=DISPLAY_NAMES, packages=package_versions(), **values)


def package_versions() -> str:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def map_summary(cells: Sequence[MapCell]) -> dict[str, int]:
    """How many robustness-map cells favour BN, favour vanilla, or neither, by the paired interval."""
    sides = [cell.side for cell in cells]
    return {"cells": len(cells), "better": sides.count("above"), "worse": sides.count("below")}


def per_digit_accuracy(confusions: Sequence[np.ndarray]) -> list[float]:
    """Test accuracy per true digit, the mean over seeds of each seed's confusion matrix."""
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = [np.diag(confusion) / confusion.sum(axis=1) for confusion in confusions]
    return np.nanmean(per_seed, axis=0).tolist()


def _run_facts(outcome: TunedOutcome) -> dict:
    training, tuning = outcome.training, outcome.tuning
    return {
        "lr": training.lr,
        "steps": training.steps,
        "batch_size": training.batch_size,
        "device": training.device,
        "tune_steps": tuning.steps,
        "study": f"{tuning.study_name} ({tuning.storage})",
        "trials": f"{tuning.trials_budget} / {tuning.n_complete} / {tuning.n_pruned} / {tuning.n_failed}",
    }


def _config_lines(params: Params) -> dict[str, str]:
    model = params.model
    return {
        "data": f"MNIST, {'binary images (pixel ≥ 128)' if params.data.binarize else 'grey levels scaled to [0, 1]'}",
        "model": f"{model.hidden_layers} hidden layers × {model.hidden_units} sigmoid units, "
        f"weights ~ N(0, σ²), σ = {model.init_std:g} at tuned rates; BN ε = {model.bn_eps:g}, "
        f"moving-average momentum {model.bn_momentum:g}",
        "statistics": f"{params.evaluate.confidence:.0%} t-intervals over seeds, paired by seed between the variants",
    }
