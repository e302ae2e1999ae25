"""results/metrics.json: built from the comparison with a fixed schema of plain JSON values (each primary claim with
its design, test, n, interval, p-value before and after the family's correction, verdict and specification counts;
every specification curve; the map with its correction and both counts), written and read back as it was built;
results/headline.json, the few numbers DVC compares; and the file printed for a person (`python -m src.metrics`)
within 120 columns, every claim and every cell."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from src.metrics.schema import Metrics


def test_the_file_reads_back_as_it_was_built(built, metrics_file):
    assert Metrics.read(metrics_file) == built
    assert json.loads(metrics_file.read_text(), parse_constant=pytest.fail) == built.model_dump()


def test_each_accuracy_target_is_its_own_key_in_the_file_and_one_mapping_in_code(built, metrics_file):
    written = json.loads(metrics_file.read_text())["bn"]
    assert [key for key in written if key.startswith("steps_to")] == ["steps_to_90", "steps_to_95", "steps_to_99"]
    steps_to = Metrics.read(metrics_file).bn.steps_to
    assert list(steps_to) == ["90", "95", "99"]
    assert steps_to["95"].model_dump() == written["steps_to_95"] == built.bn.steps_to["95"].model_dump()


def user_error(path) -> str:
    """The one line `python -m src.metrics path` prints for a bad metrics file, with exit status 2 and no output."""
    completed = subprocess.run([sys.executable, "-m", "src.metrics", str(path)], capture_output=True, text=True)
    assert completed.returncode == 2 and completed.stdout == "", completed.stderr
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), completed.stderr
    return lines[0]


def test_a_metrics_file_of_another_shape_is_one_line_naming_what_is_missing(tmp_path):
    old = {
        "claims": {
            "higher_accuracy": {
                "verdict": "holds",
                "statistic": "s",
                "scale": "accuracy",
                "effect": 0.002,
                "ci_low": 0.001,
                "ci_high": 0.003,
                "n": 5,
            }
        }
    }
    (tmp_path / "metrics.json").write_text(json.dumps(old))  # as written before claims carried their design and test
    line = user_error(tmp_path / "metrics.json")
    assert "missing key 'claims.higher_accuracy.design'" in line and "missing key 'specifications'" in line
    assert line.endswith("re-run `dvc repro evaluate` to rewrite it")


def test_a_missing_file_is_one_line(tmp_path):
    assert "no such file (run `dvc repro evaluate` first)" in user_error(tmp_path / "none.json")


@pytest.mark.parametrize("content", ["{not json", ""])
def test_a_file_that_is_not_json_is_one_line(tmp_path, content):
    (tmp_path / "metrics.json").write_text(content)
    assert "not valid JSON" in user_error(tmp_path / "metrics.json")


def test_json_that_is_not_a_mapping_is_one_line(tmp_path):
    (tmp_path / "metrics.json").write_text("[1, 2]")
    assert "Input should be a valid dictionary" in user_error(tmp_path / "metrics.json")


def test_a_directory_in_place_of_the_file_is_one_line(tmp_path):
    assert "cannot be read (Is a directory)" in user_error(tmp_path)
