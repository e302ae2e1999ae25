"""Print results/metrics.json (or another metrics file) in 120 columns.

python -m src.metrics [results/metrics.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from src import paths
from src.cli import OneLineParser, report_user_errors
from src.metrics.schema import Metrics
from src.metrics.table import render


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "path", nargs="?", type=Path, default=paths.METRICS, help=f"a metrics file (default: {paths.METRICS})"
    )
    print(render(Metrics.read(parser.parse_args(argv).path)))


if __name__ == "__main__":
    report_user_errors(main)
