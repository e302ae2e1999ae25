"""Stage tune@variant: Optuna tunes one variant's learning rate; the best and every trial land in results/tune."""

from __future__ import annotations

from src import paths
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params
from src.results.tune import write_trials
from src.tune.study import best_summary, finished_trials
from src.tune.tuner import describe, tune_variant


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()

    study = tune_variant(params.tune_run, params.tune, variant)

    directory = paths.stage_dir("tune", variant)
    best = best_summary(study, variant, params.tune.storage, params.tune.trials)
    best.write(directory)
    write_trials(directory, finished_trials(study))
    print(describe(best))


if __name__ == "__main__":
    report_user_errors(main)
