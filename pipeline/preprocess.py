"""Stage `preprocess`: raw IDX files into train / val / test arrays, and their class counts.

The validation split (data.val_size, stratified, seeded by data.split_seed) is carved from MNIST's
60,000 training images; the test split is MNIST's 10,000 test images.
"""

from __future__ import annotations

from pathlib import Path

from src.atomic import write_json
from src.cli import OneLineParser, report_user_errors
from src.config import load_params
from src.data.splits import PROCESSED_DIR, RAW_DIR, class_counts, make_splits, write_splits

SUMMARY_PATH = Path("results/data_summary.json")


def main(argv: list[str] | None = None) -> None:
    OneLineParser(description=__doc__).parse_args(argv)
    params = load_params()
    splits = make_splits(RAW_DIR, params.data.val_size, params.data.split_seed)
    write_splits(PROCESSED_DIR, splits)
    summary = class_counts(splits)
    write_json(SUMMARY_PATH, summary)
    print(", ".join(f"{name}: {counts['count']}" for name, counts in summary.items()))


if __name__ == "__main__":
    report_user_errors(main)
