"""Stage `download`: the four MNIST files into data/raw, each verified by the SHA-256 of its decompressed bytes.

Sources are tried in order: $MNIST_MIRROR (a directory or URL) when set, then params.yaml's data.mirrors.
"""

from __future__ import annotations

import os

from src import paths
from src.cli import OneLineParser, report_user_errors
from src.config import load_params
from src.data.download import download_mnist, mirror_list


def main(argv: list[str] | None = None) -> None:
    OneLineParser(description=__doc__).parse_args(argv)
    params = load_params()
    sources = mirror_list(params.data.mirrors, os.environ.get("MNIST_MIRROR"))
    origins = download_mnist(paths.RAW_DATA, sources, params.data.timeout_s)
    for name, origin in origins.items():
        print(f"{paths.RAW_DATA / name}: {origin}")


if __name__ == "__main__":
    report_user_errors(main)
