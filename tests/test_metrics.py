"""`python -m src.metrics`: the metrics a person reads, within 120 columns, every claim and every sweep cell."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from src import metrics
from tests import synthetic_results


@pytest.fixture(scope="module")
def metrics_file(tree):
    """The metrics.json the evaluate stage would write for a synthetic results tree."""
    root = tree[0]
    path = root / "metrics.json"
    path.write_text(json.dumps(synthetic_results.comparison_of(root).metrics))
    return path


def test_every_line_fits_120_columns_and_every_claim_and_cell_is_there(metrics_file):
    printed = subprocess.run(
        [sys.executable, "-m", "src.metrics", str(metrics_file)], capture_output=True, text=True, check=True
    ).stdout
    lines = printed.splitlines()
    assert max(len(line) for line in lines) <= metrics.WIDTH
    content = json.loads(metrics_file.read_text())
    for key, claim in content["claims"].items():
        (line,) = [line for line in lines if line.startswith(key)]
        assert claim["verdict"] in line
    header = next(index for index, line in enumerate(lines) if line.startswith("init std / lr"))
    map_rows = [line.split() for line in lines[header + 1 :]]
    assert [row[0] for row in map_rows] == [key.removeprefix("init_std_") for key in content["robustness_map"]]
    assert [len(row) - 1 for row in map_rows] == [len(cells) for cells in content["robustness_map"].values()]


def test_effects_are_shown_on_their_scale():
    assert metrics._effect(0.0023, "accuracy") == "+0.23 pp"
    assert metrics._effect(0.7455, "ratio") == "0.75×"
    assert metrics._effect(0.072, "plain") == "+0.072"
    assert metrics._effect(None, "ratio") == "n/a"


def test_a_cell_is_starred_only_when_its_interval_excludes_zero():
    grid = {"init_std_0.1": {"lr_1": {"difference": 0.02, "ci_low": 0.01, "ci_high": 0.03},
                             "lr_10": {"difference": 0.02, "ci_low": -0.01, "ci_high": 0.05},
                             "lr_100": {"difference": -0.04, "ci_low": -0.06, "ci_high": -0.02}}}  # fmt: skip
    (row,) = metrics.map_table(grid)[2:]
    assert row.split() == ["0.1", "+2.0*", "+2.0", "-4.0*"]


def user_error(path) -> str:
    """The one line `python -m src.metrics path` prints for a bad metrics file, with exit status 2 and no output."""
    completed = subprocess.run([sys.executable, "-m", "src.metrics", str(path)], capture_output=True, text=True)
    assert completed.returncode == 2 and completed.stdout == "", completed.stderr
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), completed.stderr
    return lines[0]


def test_a_metrics_file_of_another_shape_is_one_line_naming_what_is_missing(tmp_path):
    old = {"claims": {"higher_accuracy": {"verdict": "holds", "effect": 0.002, "ci_low": 0.001, "ci_high": 0.003}}}
    (tmp_path / "metrics.json").write_text(json.dumps(old))  # as written before claims carried their scale
    line = user_error(tmp_path / "metrics.json")
    assert "metrics.json: not a metrics file of this study (no 'scale' where expected)" in line


def test_a_missing_file_is_one_line(tmp_path):
    assert "no such file" in user_error(tmp_path / "none.json")


@pytest.mark.parametrize("content", ["{not json", ""])
def test_a_file_that_is_not_json_is_one_line(tmp_path, content):
    (tmp_path / "metrics.json").write_text(content)
    assert "not valid JSON" in user_error(tmp_path / "metrics.json")


def test_json_that_is_not_a_mapping_is_one_line(tmp_path):
    (tmp_path / "metrics.json").write_text("[1, 2]")
    assert "not a metrics file of this study" in user_error(tmp_path / "metrics.json")
