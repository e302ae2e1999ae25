"""Stage tune@variant: Optuna tunes one variant's learning rate; the best and every trial land in results/tune."""

from __future__ import annotations

from pathlib import Path

from src.atomic import write_csv, write_json
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params
from src.results import TRIALS
from src.study import best_summary, trial_rows
from src.tune import describe, tune_variant


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()

    study = tune_variant(params, variant)

    out = Path("results/tune") / variant
    best = best_summary(study, variant, params.tune.storage, params.tune.trials)
    write_json(out / "best.json", best)
    write_csv(out / "trials.csv", trial_rows(study), TRIALS)
    print(describe(best))


if __name__ == "__main__":
    report_user_errors(main)
