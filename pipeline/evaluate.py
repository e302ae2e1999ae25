"""Stage evaluate: decide the paper's claims from train@, sweep@ and tune@; write metrics, plots, figures, report.

Reads the models, histories, sweeps and tuning studies of both variants (paths relative to the working directory,
the repository root under `dvc repro`), and logs the comparison to MLflow as one run.
"""

from __future__ import annotations

import math
import time

from src import paths
from src.analysis.comparison import compare
from src.analysis.outcomes import mean_curves
from src.atomic import atomic_directory, write_csv, write_json, write_text
from src.cli import OneLineParser, report_user_errors
from src.config import STAGE_PARAMS, load_params
from src.metrics.build import build
from src.report import figures, markdown
from src.report.drawing import save
from src.tracking import runs, store


def main(argv: list[str] | None = None) -> None:
    OneLineParser(description=__doc__).parse_args(argv)
    params = load_params()
    started = time.perf_counter()
    comparison = compare(params)
    numbers = build(comparison)
    drawn = figures.report_figures(comparison)
    text = markdown.render(comparison, numbers, list(drawn))

    # outputs are written only once everything that can fail has been computed (the figures into a staging
    # directory): a crash leaves the previous outputs whole, not new metrics beside an old report
    with atomic_directory(paths.FIGURES) as staging:
        for name, figure in drawn.items():
            save(figure, staging / f"{name}.png")
    numbers.write(paths.METRICS)
    write_json(paths.HEADLINE, numbers.headline())
    for quantity in ("accuracy", "loss"):
        steps, columns = mean_curves(comparison.tuned, quantity)
        rows = ({"step": int(step), **{v: _csv_number(columns[v][i]) for v in columns}} for i, step in enumerate(steps))
        write_csv(paths.PLOTS / f"{quantity}.csv", rows, ["step", *columns])
    write_text(paths.REPORT, text)

    store.configure(params.tracking.experiment)
    with runs.parent_run("evaluate", tags={"stage": "evaluate"}, params=params.listed(STAGE_PARAMS["evaluate"])):
        artifacts = [paths.METRICS, paths.REPORT, *sorted(paths.FIGURES.glob("*.png"))]
        seconds = time.perf_counter() - started
        runs.log_results({**numbers.model_dump(), "evaluate_wall_time_s": seconds}, artifacts)
    verdicts = ", ".join(f"{claim.key}: {claim.verdict}" for claim in comparison.claims)
    print(f"evaluate: {verdicts}; wrote {paths.METRICS}, {paths.REPORT} and the figures in {paths.FIGURES}/")


def _csv_number(value: float) -> str:
    # an empty cell, not "nan": DVC's plots and spreadsheets read it as a missing point
    return f"{value:.6g}" if math.isfinite(value) else ""


if __name__ == "__main__":
    report_user_errors(main)
