"""Stage `preprocess`: raw IDX files into train / val / test arrays, and their class counts.

The validation split (data.val_size, stratified, seeded by data.split_seed) is carved from MNIST's
60,000 training images; the test split is MNIST's 10,000 test images.
"""

from __future__ import annotations

from src import paths
from src.atomic import write_json
from src.cli import OneLineParser, report_user_errors
from src.config import load_params
from src.data.splits import class_counts, make_splits, write_splits


def main(argv: list[str] | None = None) -> None:
    OneLineParser(description=__doc__).parse_args(argv)
    params = load_params()
    splits = make_splits(paths.RAW_DATA, params.data.val_size, params.data.split_seed)
    write_splits(paths.PROCESSED_DATA, splits)
    summary = class_counts(splits)
    write_json(paths.DATA_SUMMARY, summary)
    print(", ".join(f"{name}: {counts['count']}" for name, counts in summary.items()))


if __name__ == "__main__":
    report_user_errors(main)
