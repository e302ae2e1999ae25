"""Stage evaluate: decide the paper's claims from train@, sweep@ and tune@; write metrics, plots, figures, report.

Reads the models, histories, sweeps and tuning studies of both variants (paths relative to the working directory,
the repository root under `dvc repro`), and logs the comparison to MLflow as one run.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from src import figures, metrics, provenance, report, tracking
from src.atomic import atomic_directory, write_csv, write_json, write_text
from src.cli import OneLineParser, report_user_errors
from src.comparison import compare
from src.config import load_params
from src.outcomes import mean_curves

PLOTS = Path("results/plots")


def main(argv: list[str] | None = None) -> None:
    OneLineParser(description=__doc__).parse_args(argv)
    params = load_params()
    started = time.perf_counter()
    comparison = compare(params)
    numbers = metrics.build(comparison)
    drawn = figures.report_figures(comparison)
    text = report.render(comparison, numbers, list(drawn))

    # outputs are written only once everything that can fail has been computed (the figures into a staging
    # directory): a crash leaves the previous outputs whole, not new metrics beside an old report
    with atomic_directory(report.FIGURES) as staging:
        for name, figure in drawn.items():
            figures.save(figure, staging / f"{name}.png")
    numbers.write(metrics.METRICS)
    write_json(metrics.HEADLINE, numbers.headline())
    for quantity in ("accuracy", "loss"):
        steps, columns = mean_curves(comparison.tuned, quantity)
        rows = ({"step": int(step), **{v: _csv_number(columns[v][i]) for v in columns}} for i, step in enumerate(steps))
        write_csv(PLOTS / f"{quantity}.csv", rows, ["step", *columns])
    write_text(report.REPORT, text)

    tracking.configure(params.tracking.experiment)
    logged_params = provenance.stage_params(params, "evaluate")
    with tracking.parent_run("evaluate", tags={"stage": "evaluate"}, params=logged_params):
        artifacts = [metrics.METRICS, report.REPORT, *sorted(report.FIGURES.glob("*.png"))]
        seconds = time.perf_counter() - started
        tracking.log_results({**numbers.model_dump(), "evaluate_wall_time_s": seconds}, artifacts)
    verdicts = ", ".join(f"{claim.key}: {claim.verdict}" for claim in comparison.claims)
    print(f"evaluate: {verdicts}; wrote {metrics.METRICS}, {report.REPORT} and the figures in {report.FIGURES}/")


def _csv_number(value: float) -> str:
    # an empty cell, not "nan": DVC's plots and spreadsheets read it as a missing point
    return f"{value:.6g}" if math.isfinite(value) else ""


if __name__ == "__main__":
    report_user_errors(main)
