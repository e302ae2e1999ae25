"""Print results/metrics.json (or another metrics file) in 120 columns, or its verdicts as the README's table.

python -m src.metrics [results/metrics.json] [--markdown]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from src import paths
from src.cli import OneLineParser, report_user_errors
from src.metrics.schema import Metrics
from src.metrics.table import glance_table, render


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "path", nargs="?", type=Path, default=paths.METRICS, help=f"a metrics file (default: {paths.METRICS})"
    )
    parser.add_argument("--markdown", action="store_true", help="only the primary claims, as a Markdown table")
    args = parser.parse_args(argv)
    metrics = Metrics.read(args.path)
    print("\n".join(glance_table(metrics.claims)) if args.markdown else render(metrics))


if __name__ == "__main__":
    report_user_errors(main)
