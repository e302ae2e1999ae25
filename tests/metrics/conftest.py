"""results/metrics.json: built from the comparison with a fixed schema of plain JSON values (each primary claim with
its design, test, n, interval, p-value before and after the family's correction, verdict and specification counts;
every specification curve; the map with its correction and both counts), written and read back as it was built;
results/headline.json, the few numbers DVC compares; and the file printed for a person (`python -m src.metrics`)
within 120 columns, every claim and every cell."""

from __future__ import annotations

import pytest

from src.metrics.build import build
from src.metrics.schema import Metrics
from tests import synthetic_results


@pytest.fixture(scope="module")
def comparison(tree):
    return synthetic_results.comparison_of(tree[0])


@pytest.fixture(scope="module")
def built(comparison) -> Metrics:
    return build(comparison)


@pytest.fixture(scope="module")
def content(built) -> dict:
    """The metrics as results/metrics.json holds them."""
    return built.model_dump()


@pytest.fixture(scope="module")
def metrics_file(tree, built):
    """The metrics.json the evaluate stage would write for the synthetic results tree."""
    path = tree[0] / "metrics.json"
    built.write(path)
    return path
