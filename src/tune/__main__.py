"""Tune one variant's learning rate from the command line, as tune@ does, or as one more worker of its study.

python -m src.tune --variant bn                 # params.yaml's tune section
python -m src.tune --variant bn --trials 48 --storage postgresql://user@db-host/optuna   # on each machine
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, PositiveInt, load_params, validate_option, with_overrides
from src.stores.optuna_storage import HEARTBEAT_S
from src.tune.study import best_summary
from src.tune.tuner import describe, tune_variant


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description="Tune one variant's learning rate with Optuna (defaults: params.yaml's tune).")
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    # the overrides' ranges are params.yaml's, checked by src/config.py: argparse only converts the text
    parser.add_argument("--trials", type=int, help="trial budget of the study, all workers together (tune.trials)")
    parser.add_argument(
        "--storage", help="SQLAlchemy URL of the Optuna storage, e.g. postgresql://user@host/db (tune.storage)"
    )
    parser.add_argument("--study-name", help="default: bn-mnist-<variant>-<digest of the study's settings>")
    parser.add_argument("--steps", type=int, help="training steps per trial (tune.steps)")
    parser.add_argument("--timeout", type=float, help="ask for no new batch after this many seconds (tune.timeout_s)")
    parser.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, help="seconds between a worker's heartbeats")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {"trials": args.trials, "storage": args.storage, "steps": args.steps, "timeout_s": args.timeout}
    given = {f"tune.{key}": value for key, value in overrides.items() if value is not None}
    params = with_overrides(load_params(), given)
    heartbeat_s = validate_option(PositiveInt, args.heartbeat, "--heartbeat")
    study = tune_variant(
        params.tune_run, params.tune, args.variant, study_name=args.study_name, heartbeat_s=heartbeat_s
    )
    print(describe(best_summary(study, args.variant, params.tune.storage, params.tune.trials)))


if __name__ == "__main__":
    report_user_errors(main)
