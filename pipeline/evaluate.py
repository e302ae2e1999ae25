"""Stage evaluate: decide the paper's claims from train@, sweep@ and tune@; write metrics, plots, figures, report.

Reads the models, histories, sweeps and tuning studies of both variants (paths relative to the working directory,
the repository root under `dvc repro`), and logs the comparison to MLflow as one run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from src import figures, tracking
from src.atomic import atomic_directory, write_csv, write_json, write_text
from src.cli import OneLineParser, report_user_errors
from src.comparison import FIGURES, REPORT, compare
from src.config import Params, load_params

METRICS = Path("results/metrics.json")
PLOTS = Path("results/plots")


def main(argv: list[str] | None = None) -> None:
    OneLineParser(description=__doc__).parse_args(argv)
    params = load_params()
    started = time.perf_counter()
    comparison = compare(params)
    report = comparison.report()

    # outputs are written only once everything that can fail has been computed (the figures into a staging
    # directory): a crash leaves the previous outputs whole, not new metrics beside an old report
    with atomic_directory(FIGURES) as staging:
        for name, figure in comparison.figures().items():
            figures.save(figure, staging / f"{name}.png")
    write_json(METRICS, comparison.metrics)
    for quantity, (steps, columns) in comparison.plot_curves().items():
        rows = ({"step": int(step), **{v: _csv_number(columns[v][i]) for v in columns}} for i, step in enumerate(steps))
        write_csv(PLOTS / f"{quantity}.csv", rows, ["step", *columns])
    write_text(REPORT, report)

    log_comparison_run(
        params,
        comparison.metrics,
        artifacts=[METRICS, REPORT, *sorted(FIGURES.glob("*.png"))],
        seconds=time.perf_counter() - started,
    )
    verdicts = ", ".join(f"{claim.key}: {claim.verdict}" for claim in comparison.claims)
    print(f"evaluate: {verdicts}; wrote {METRICS}, {REPORT} and the figures in {FIGURES}/")


def log_comparison_run(params: Params, metrics: Mapping, artifacts: Iterable[Path], seconds: float) -> None:
    """One MLflow run for the comparison: every number of metrics.json, the report and the figures."""
    tracking.configure(params.tracking.experiment)
    logged_params = {"data": {"binarize": params.data.binarize}, "model": params.model.model_dump(),
                     "evaluate": params.evaluate.model_dump()}  # fmt: skip
    with tracking.stage_run("evaluate", tags={"stage": "evaluate"}, params=logged_params):
        tracking.log_results({**metrics, "evaluate_wall_time_s": seconds}, artifacts)


def _csv_number(value: float) -> str:
    # an empty cell, not "nan": DVC's plots and spreadsheets read it as a missing point
    return f"{value:.6g}" if math.isfinite(value) else ""


if __name__ == "__main__":
    report_user_errors(main)
