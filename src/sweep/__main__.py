"""Train the sweep's units beside its stage, on this machine or another, or show how far the sweep is.

    python -m src.sweep --worker                       # the units of both variants, in params.yaml's storage
    python -m src.sweep --worker --variant bn --storage postgresql://sweep@db-host/optuna
    python -m src.sweep                                # how far each variant's sweep is

A database password is read as PostgreSQL's own clients read it (PGPASSWORD, ~/.pgpass), never from the command line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params, validate_option, with_overrides
from src.stores.optuna_storage import open_storage
from src.stores.workers import HOST
from src.sweep.heartbeat import storage_errors
from src.sweep.plan import SweepPlan
from src.sweep.work import serve, status

WAIT_S = 60.0  # how long a worker looks for a unit to take before it ends


NonNegativeFloat = Annotated[float, Field(ge=0)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description="Train the sweep's units of work beside its stage, or show its progress.")
    parser.add_argument("--worker", action="store_true", help="train units until none is left to take")
    parser.add_argument("--variant", choices=VARIANTS, help="only this variant's units (default: both)")
    parser.add_argument("--storage", help="the Optuna storage, e.g. postgresql://user@host/db (sweep.storage)")
    parser.add_argument(
        "--wait",
        type=float,
        default=WAIT_S,
        help=f"end after this long with no unit to take, while a study is not made yet (default {WAIT_S:g} s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params()
    if args.storage is not None:
        params = with_overrides(params, {"sweep.storage": args.storage})
    wait_s = validate_option(NonNegativeFloat, args.wait, "--wait")
    variants = [args.variant] if args.variant else VARIANTS
    plans = [SweepPlan.of(params.sweep_run, params.sweep, variant) for variant in variants]
    url = params.sweep.storage
    storage = open_storage(url, params.sweep.heartbeat_s)
    with storage_errors(url):
        if not args.worker:
            print("\n".join(status(plans, storage)))
            return
        trained = serve(plans, storage, wait_s)
    print(f"sweep worker {HOST}:{os.getpid()}: trained {len(trained)} unit(s); none left to take")


if __name__ == "__main__":
    report_user_errors(main)
