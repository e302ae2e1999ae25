"""reports/report.md: its context, gathered from the comparison and the metrics, rendered from templates/report.md.j2.

Every sentence with a number is filled from them when the report is written (spelt by src/metrics/number_format.py):
if the numbers change, the wording changes with them. The reading (`reading`) is generated from the claims the same
way; the README quotes the table at a glance (src/metrics/table.py). The verdicts come from src/analysis/claims.py;
nothing here decides one.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import jinja2
import numpy as np

from src import paths
from src.analysis.claims import SECTIONS, TOPICS, Claim, MapCell
from src.analysis.comparison import Comparison
from src.analysis.outcomes import TunedOutcome
from src.config import DISPLAY_NAMES, Params
from src.metrics import number_format
from src.metrics.build import design_text
from src.metrics.schema import MapMetrics, Metrics
from src.metrics.table import glance_table

PACKAGES = ("torch", "numpy", "scipy", "matplotlib", "mlflow", "optuna", "dvc")
TEMPLATES = Path(__file__).parent / "templates"
READING = "### The reading"  # the report's section the README quotes word for word


def render(comparison: Comparison, metrics: Metrics, figure_names: Sequence[str]) -> str:
    """The whole report as Markdown."""
    return render_report(context(comparison, metrics, figure_names))


def context(comparison: Comparison, metrics: Metrics, figure_names: Sequence[str]) -> dict[str, object]:
    """Every name templates/report.md.j2 uses."""
    params, tuned, sweep = comparison.params, comparison.tuned, comparison.params.sweep
    settings, seeds = params.evaluate, tuned["bn"].seeds
    return {
        "claims": comparison.claims,
        "curves": {
            claim.topic.key: list(zip(claim.curve, claim.spec_verdicts(), strict=True)) for claim in comparison.claims
        },
        "topics": TOPICS,
        "reading": reading(comparison.claims, metrics),
        "glance": glance_table(metrics.claims),
        "confidence": settings.confidence,
        "alpha": settings.alpha,
        "correction": number_format.CORRECTIONS[settings.correction],
        "interval": number_format.INTERVALS[settings.interval],
        "tests": {
            "seeds": number_format.TESTS[settings.seed_test].format(n=len(seeds)),
            "accuracy": number_format.TESTS[
                "two_level_bootstrap" if settings.accuracy_test == "seeds_and_images" else settings.seed_test
            ].format(n=len(seeds)),
        },
        "did_not_train_below": settings.did_not_train_below,
        "drift_reference": settings.drift_reference,
        "metrics": metrics,
        "targets": settings.accuracy_targets,
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
        "map": metrics.robustness_map,
        "horizon": comparison.horizons,
        "example": comparison.example,
        "figures": {name: f"{paths.FIGURES.relative_to(paths.REPORT.parent)}/{name}.png" for name in figure_names},
        "config": _config_lines(params),
        "per_digit": {variant: per_digit_accuracy(outcome.confusion()) for variant, outcome in tuned.items()},
    }


def reading(claims: Sequence[Claim], metrics: Metrics) -> list[str]:
    """The short reading, one sentence per primary claim and one for the map, generated from their numbers."""
    sentences = [_claim_sentence(claim) for claim in claims]
    grid = metrics.robustness_map
    sentences.append(
        f"- Across the sweep's {grid.cells} cells, BN is significantly higher in {grid.better} and lower in "
        f"{grid.worse} after {grid.correction} ({grid.better_uncorrected} and {grid.worse_uncorrected} before)."
        + _failed_both(grid)
    )
    return sentences


def _failed_both(grid: MapMetrics) -> str:
    """Which significant cells, on either side, compare two failures: neither net trained in any seed."""
    cells = [cell for row in grid.grid.values() for cell in row.values() if cell.side is not None]
    failed = [cell for cell in cells if cell.both_failed]
    if not failed:
        return ""
    sides = sorted({"higher" if cell.side == "above" else "lower" for cell in failed})
    cell_or_cells = "is a cell" if len(failed) == 1 else "are cells"
    return (
        f" {len(failed)} of those {len(cells)} ({' or '.join(sides)}) {cell_or_cells}"
        " where neither net trains in any seed: a difference between two failed nets, not a gain or loss from BN."
    )


def _claim_sentence(claim: Claim) -> str:
    estimate, scale = claim.estimate, claim.topic.scale
    # with no pairs there is no effect to give: the verdict's reason says why
    found = (
        ""
        if estimate.n == 0
        else f"{number_format.effect(estimate.effect, scale)} {number_format.interval(estimate, scale)}, "
    )
    p = number_format.p_value(claim.adjusted_p)
    verdict = {
        "holds": f"**holds** (p {p} after the family's correction)",
        "contradicted": f"**contradicted**: BN is on the other side (p {p} corrected)",
        "not shown": f"**not shown** (p {p} after the family's correction)",
        "not estimable": "**not estimable**: "
        # no pairs at all: the specification says why (no rate where both nets train); else the pairs all agree
        + (claim.primary.note if claim.estimate.n == 0 else "its paired values do not vary across seeds"),
    }[claim.verdict]
    others = {v: n for v, n in claim.agreement.items() if v != claim.verdict}
    disagree = "; ".join(f"{n} {v}" for v, n in sorted(others.items()))
    agreement = f"{claim.agreeing} of {len(claim.design_curve)} {claim.primary.design}-design specifications agree"
    agreement += f" ({disagree})" if disagree else ""
    needed = f" About {claim.seeds_needed} paired seeds would decide an effect this size." if claim.seeds_needed else ""
    return f"- {claim.topic.title}, {claim.primary.design} design: {found}{verdict}. {agreement}.{needed}"


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
    environment.filters.update(number_format.FILTERS)
    environment.filters.update({"section": lambda key: SECTIONS[key], "design": design_text})
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
    """How many robustness-map cells favour BN, favour vanilla, or neither, after the map's correction."""
    sides = [cell.side for cell in cells]
    return {"cells": len(cells), "better": sides.count("above"), "worse": sides.count("below")}


def per_digit_accuracy(confusion: np.ndarray) -> list[float]:
    """Test accuracy per true digit, from a confusion matrix summed over seeds (every seed sees the same images)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.diag(confusion) / confusion.sum(axis=1)).tolist()


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
    model, settings = params.model, params.evaluate
    return {
        "data": f"MNIST, {'binary images (pixel ≥ 128)' if params.data.binarize else 'grey levels scaled to [0, 1]'}",
        "model": f"{model.hidden_layers} hidden layers × {model.hidden_units} sigmoid units, "
        f"weights ~ N(0, σ²), σ = {model.init_std:g} at tuned rates; BN ε = {model.bn_eps:g}, "
        f"moving-average momentum {model.bn_momentum:g}",
        "statistics": f"paired by seed between the variants; {settings.seed_test.replace('_', '-')} tests, "
        f"each interval a {number_format.INTERVALS[settings.interval]}, "
        f"{settings.resamples:,} bootstrap resamples (seed {settings.bootstrap_seed}); primary claims corrected by "
        f"{number_format.CORRECTIONS[settings.correction]}, the map's cells by "
        f"{number_format.CORRECTIONS[settings.map_correction]}",
        "learning-rate edges": f"refined between the swept rates with {params.edge.rates_between} more rates per "
        f"grid step (edge@, init stds {', '.join(f'{s:g}' for s in params.edge.init_stds)})",
    }
