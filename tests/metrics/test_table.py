"""results/metrics.json: built from the comparison with a fixed schema of plain JSON values (each primary claim with
its design, test, n, interval, p-value before and after the family's correction, verdict and specification counts;
every specification curve; the map with its correction and both counts), written and read back as it was built;
results/headline.json, the few numbers DVC compares; and the file printed for a person (`python -m src.metrics`)
within 120 columns, every claim and every cell."""

from __future__ import annotations

import json
import subprocess
import sys

from src.metrics import number_format
from src.metrics.schema import MapCellMetrics
from src.metrics.table import WIDTH, claims_table, glance_table, map_table, variants_table


def _printed(path) -> list[str]:
    completed = subprocess.run([sys.executable, "-m", "src.metrics", str(path)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def test_every_line_fits_120_columns_and_every_claim_and_cell_is_there(metrics_file):
    lines = _printed(metrics_file)
    assert max(len(line) for line in lines) <= WIDTH
    content = json.loads(metrics_file.read_text())
    for key, claim in content["claims"].items():
        (line,) = [line for line in lines if line.startswith(f"{key} ")]
        assert f" {claim['verdict']} " in line
        assert line.endswith(f"{claim['specifications']['agreeing']} of {claim['specifications']['total']}")
    header = next(index for index, line in enumerate(lines) if line.startswith("init std / lr"))
    grid = content["robustness_map"]["grid"]
    map_rows = [line.split() for line in lines[header + 1 :]]
    assert [row[0] for row in map_rows] == [key.removeprefix("init_std_") for key in grid]
    assert [len(row) - 1 for row in map_rows] == [len(cells) for cells in grid.values()]
    assert "significant after Benjamini–Hochberg" in lines[header - 1]


def test_the_terminal_writes_each_effect_and_interval_as_the_report_does(built, comparison):
    lines = claims_table(built.claims)
    for claim in comparison.claims:
        (line,) = [line for line in lines if line.startswith(f"{claim.key} ")]
        effect, interval = number_format.FILTERS["effect"](claim), number_format.FILTERS["interval"](claim)
        assert f" {effect}  {interval}" in line and f" {claim.verdict} " in line


def test_the_variants_table_writes_every_target_and_a_missing_number_as_n_a(built):
    rows = {row[:44].strip(): row[44:].split() for row in variants_table(built)[2:]}
    assert rows["steps to 99 % (median of seeds)"] == ["not", "reached", "not", "reached"]
    assert rows["steps to 95 % (median of seeds)"] == ["800", "300"]
    assert rows["learning rate (tuned)"] == ["0.2", "5"]
    no_loss = built.model_copy(update={"bn": built.bn.model_copy(update={"test_loss_mean": None})})
    rows = {row[:44].strip(): row[44:].split() for row in variants_table(no_loss)[2:]}
    assert rows["final test loss"][1] == "n/a"


def test_a_cell_is_starred_only_when_it_is_significant_after_the_maps_correction(built):
    def cell(effect: float, side: str | None, side_uncorrected: str | None, both_failed=False) -> MapCellMetrics:
        return MapCellMetrics(
            effect=effect,
            ci_low=None,
            ci_high=None,
            p_value=None,
            n=10,
            vanilla=0.9,
            bn=0.9 + effect,
            p_adjusted=None,
            side=side,
            side_uncorrected=side_uncorrected,
            did_not_train_vanilla=0.0,
            did_not_train_bn=0.0,
            both_failed=both_failed,
        )

    grid = {
        "init_std_0.1": {
            "lr_1": cell(0.02, "above", "above"),
            "lr_10": cell(0.02, None, "above"),
            "lr_100": cell(-0.04, "below", "below"),
            "lr_1000": cell(0.01, None, None),
        }
    }
    lines = map_table(built.robustness_map.model_copy(update={"grid": grid}))
    (row,) = lines[lines.index(next(line for line in lines if line.startswith("init std / lr"))) + 1 :]
    assert row.split() == ["0.1", "+2.0*", "+2.0", "-4.0*", "+1.0"]


def test_a_cell_where_neither_net_trained_is_marked_on_either_side_significant_or_not(built):
    grid = {row: dict(cells) for row, cells in built.robustness_map.grid.items()}
    first = next(iter(grid))
    rates = list(grid[first])
    marked = {rates[0]: ("above", True), rates[1]: ("below", True), rates[2]: (None, True)}
    for rate, (side, failed) in marked.items():
        grid[first][rate] = grid[first][rate].model_copy(update={"side": side, "both_failed": failed})
    lines = map_table(built.robustness_map.model_copy(update={"grid": grid}))
    assert "† neither net trained in any seed" in lines[1] and max(len(line) for line in lines) <= WIDTH
    cells = next(line for line in lines if line.startswith(first.removeprefix("init_std_") + " ")).split()[1:]
    assert [cell.lstrip("+-.0123456789") for cell in cells] == ["*†", "*†", "†"]


def test_the_glance_table_is_a_markdown_row_per_primary_claim_narrow_enough_for_the_readme(built):
    rows = glance_table(built.claims)
    assert rows[0].startswith("| claim | design | verdict |") and len(rows) == 2 + len(built.claims)
    assert all(len(row) <= 120 for row in rows) and all(row.startswith("| ") and row.endswith(" |") for row in rows[2:])
    for row, (key, claim) in zip(rows[2:], built.claims.items(), strict=True):
        cells = row.strip("| ").split(" | ")
        assert cells[1] == key.rsplit("_", 1)[1] and cells[2] == f"**{claim.verdict}**"
        effect = number_format.effect(claim.effect, claim.scale)
        assert cells[3] == f"{effect} {number_format.interval(claim.estimate, claim.scale)}"
