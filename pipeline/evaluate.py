"""Stage evaluate: compare the two variants over seeds; write metrics, plot data, figures and the report.

Reads the models, histories and tuning studies of both variants (paths relative to the working directory,
the repository root under `dvc repro`), and logs the comparison to MLflow as one run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from src import figures, tracking
from src.atomic import atomic_directory, write_csv, write_json, write_text
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, Params, load_params
from src.data import PROCESSED_DIR, load_split
from src.evaluate import build_metrics, load_variant, mean_curves
from src.report import ExampleUnit, example_unit, render_report

METRICS = Path("results/metrics.json")
PLOTS = Path("results/plots")
REPORT = Path("reports/report.md")
FIGURES = Path("reports/figures")
# file name -> caption; the report links them relative to itself
FIGURE_CAPTIONS = {
    "test_accuracy.png": "Figure 1(a): test accuracy vs training steps, mean over seeds, band min–max over seeds",
    "sigmoid_inputs.png": "Figure 1(b, c): 15/50/85th percentiles of the input to a last-hidden-layer sigmoid "
    "(the first tracked unit of the first seed)",
    "lr_search.png": "Validation accuracy vs learning rate, every tuning trial",
    "confusion.png": "Test confusion matrices",
}


def main(argv: list[str] | None = None) -> None:
    OneLineParser(description=__doc__).parse_args(argv)
    params = load_params()
    started = time.perf_counter()
    # the models are tiny: the CPU scores them in seconds and gives the same numbers on every machine
    device = torch.device("cpu")
    test = load_split(PROCESSED_DIR, "test", device, params.data.binarize)
    train = load_split(PROCESSED_DIR, "train", device, params.data.binarize)
    results = {variant: load_variant(Path("."), variant, params.model, test, train) for variant in VARIANTS}
    metrics = build_metrics(results, params.evaluate.accuracy_targets, params.evaluate.confidence)
    curves = {quantity: mean_curves(results, quantity) for quantity in ("accuracy", "loss")}
    example = example_unit(results)
    report = render_report(
        metrics,
        results,
        config=_config_lines(params),
        confidence=params.evaluate.confidence,
        targets=params.evaluate.accuracy_targets,
        figures={caption: f"{FIGURES.relative_to(REPORT.parent)}/{name}" for name, caption in FIGURE_CAPTIONS.items()},
        example=example,
    )

    # outputs are written only once everything that can fail has been computed (the figures into a staging
    # directory): a crash leaves the previous outputs whole, not new metrics beside an old report
    with atomic_directory(FIGURES) as staging:
        draw_figures(results, metrics, example, staging)
    write_json(METRICS, metrics)
    for quantity, (steps, columns) in curves.items():
        rows = ({"step": int(step), **{v: _csv_number(columns[v][i]) for v in columns}} for i, step in enumerate(steps))
        write_csv(PLOTS / f"{quantity}.csv", rows, ["step", *columns])
    write_text(REPORT, report)

    log_comparison_run(
        params,
        metrics,
        artifacts=[METRICS, REPORT, *sorted(FIGURES.glob("*.png"))],
        seconds=time.perf_counter() - started,
    )
    print(f"evaluate: wrote {METRICS}, {REPORT} and {len(FIGURE_CAPTIONS)} figures in {FIGURES}/")


def draw_figures(results: Mapping, metrics: Mapping, example: ExampleUnit, directory: Path) -> None:
    """Every file of FIGURE_CAPTIONS, drawn into `directory`."""
    figures.plot_test_accuracy({v: r.curves for v, r in results.items()}, directory / "test_accuracy.png")
    figures.plot_sigmoid_inputs(
        {v: r.sigmoid_inputs[(example.seed, example.unit)] for v, r in results.items()},
        directory / "sigmoid_inputs.png",
        seed=example.seed,
        unit=example.unit,
    )
    figures.plot_lr_search(
        {v: r.trials for v, r in results.items()},
        {v: metrics[v]["lr_search"]["best_lr"] for v in results},
        directory / "lr_search.png",
    )
    figures.plot_confusion(
        {v: sum(scores.confusion for scores in r.test.values()) for v, r in results.items()},
        directory / "confusion.png",
    )


def log_comparison_run(params: Params, metrics: Mapping, artifacts: Iterable[Path], seconds: float) -> None:
    """One MLflow run for the comparison: every number of metrics.json, the report and the figures."""
    tracking.configure(params.tracking.experiment)
    logged_params = {"data": {"binarize": params.data.binarize}, "model": params.model.model_dump(),
                     "evaluate": params.evaluate.model_dump()}  # fmt: skip
    with tracking.stage_run("evaluate", tags={"stage": "evaluate"}, params=logged_params):
        tracking.log_results({**_numeric_leaves(metrics), "evaluate_wall_time_s": seconds}, artifacts)


def _config_lines(params: Params) -> dict[str, str]:
    model = params.model
    return {
        "data": f"MNIST, {'binary images (pixel ≥ 128)' if params.data.binarize else 'grey levels scaled to [0, 1]'}",
        "model": f"{model.hidden_layers} hidden layers × {model.hidden_units} sigmoid units, "
        f"weights ~ N(0, {model.init_std}²); BN ε = {model.bn_eps:g}, momentum {model.bn_momentum:g}",
        "BN inference statistics": model.population_stats.replace("_", " ")
        + (f" over {model.population_batches} mini-batches" if model.population_stats == "full_pass" else ""),
        "statistics": f"{params.evaluate.confidence:.0%} t-intervals over seeds, Welch's t-test for BN − vanilla",
    }


def _numeric_leaves(tree: Mapping, prefix: str = "") -> dict[str, float]:
    """{'bn': {'lr': 2.0}} -> {'bn.lr': 2.0}; None and non-finite values are left out (MLflow wants numbers)."""
    leaves: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            leaves.update(_numeric_leaves(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and math.isfinite(value):
            leaves[f"{prefix}{key}"] = float(value)
    return leaves


def _csv_number(value: float) -> str:
    # an empty cell, not "nan": DVC's plots and spreadsheets read it as a missing point
    return f"{value:.6g}" if math.isfinite(value) else ""


if __name__ == "__main__":
    report_user_errors(main)
