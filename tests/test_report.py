"""The report is generated from the claims and the metrics: every number in it follows them, none is typed by hand."""

from __future__ import annotations

import copy
import dataclasses
import re

import jinja2
import numpy as np
import pytest

from src import comparison as comparison_module
from src import stats
from src.claims import Claim
from src.report import FILTERS, map_summary, per_digit_accuracy, render_report
from src.robustness import MapCell
from tests import synthetic_results


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("repo")
    synthetic_results.write_results_tree(root, repo_root)
    return synthetic_results.comparison_of(root)


@pytest.fixture(scope="module")
def report(comparison) -> str:
    return comparison.report()


@pytest.fixture(scope="module")
def context(comparison) -> dict:
    """What the comparison hands the template."""
    captured = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(comparison_module, "render_report", lambda context: captured.update(context) or "")
        comparison.report()
    return captured


def test_the_what_holds_table_has_one_row_per_claim_with_the_verdict_of_the_metrics(comparison, report):
    rows = _table(report, "| claim | verdict |")
    assert len(rows) == len(comparison.claims) == 5
    for row, claim in zip(rows, comparison.claims, strict=True):
        assert row[0] == claim.title
        assert row[1] == f"**{comparison.metrics['claims'][claim.key]['verdict']}**"
        assert row[2] == claim.statistic and row[5] == claim.design


def test_the_what_holds_table_gives_each_effect_and_interval_on_its_scale(report):
    rows = {row[0]: row for row in _table(report, "| claim | verdict |")}
    assert rows["BN converges faster"][3:5] == ["0.44×", "[0.44×, 0.44×]"]
    assert rows["BN allows a higher learning rate"][3:5] == ["10.00×", "[10.00×, 10.00×]"]
    assert rows["BN makes training robust to the initialisation"][3:5] == ["+86.07 pp", "[+85.71 pp, +86.43 pp]"]
    assert rows["BN keeps the sigmoid-input distribution stable"][3] == "-0.744"


def test_a_claims_note_follows_the_table(report):
    assert "\n- BN allows a higher learning rate: BN trained at the largest rate swept in 3 of 3 seeds" in report


@pytest.mark.parametrize(
    ("estimate", "verdict", "effect", "interval"),
    [
        (stats.Estimate(0.5, 0.4, 0.6, 3), "holds", "0.50×", "[0.40×, 0.60×]"),
        (stats.Estimate(1.3, 1.1, 1.5, 4), "contradicted", "1.30×", "[1.10×, 1.50×]"),
        (stats.Estimate(0.9, None, None, 1), "not shown", "0.90×", "n/a (1 pair)"),
    ],
)
def test_the_claims_rows_follow_the_claims_they_are_given(comparison, estimate, verdict, effect, interval):
    claims = [
        _convergence_with(claim, estimate) if claim.key == "faster_convergence" else claim
        for claim in comparison.claims
    ]
    assert claims[0].verdict == verdict
    report = dataclasses.replace(comparison, claims=claims).report()
    row = _table(report, "| claim | verdict |")[0]
    assert row[:2] == ["BN converges faster", f"**{verdict}**"] and row[3:5] == [effect, interval]


def test_the_report_says_which_bn_rule_each_number_uses_and_gives_the_final_accuracy_under_both(comparison, report):
    assert "Every point of a curve scores BN with the moving averages it keeps while training" in report
    assert "The final numbers score the trained network under Algorithm 2: the mean of 2 training" in report
    rows = {row[0]: row[1:] for row in _table(report, "| | vanilla | BN |")}
    bn = comparison.metrics["bn"]
    algorithm_2 = rows["final test accuracy, Algorithm 2 (mean ± std over seeds)"][1]
    assert algorithm_2 == f"{bn['test_accuracy']['mean']:.2%} ± {bn['test_accuracy']['std'] * 100:.2f} pp"
    moving = rows["final test accuracy, moving averages (the curve's last point)"][1]
    assert moving == f"{bn['test_accuracy_moving_average']:.2%}"
    assert algorithm_2.split()[0] != moving  # two rules, two numbers


def test_the_numbers_follow_the_metrics(comparison, report):
    metrics = copy.deepcopy(comparison.metrics)
    metrics["bn"]["test_accuracy_moving_average"] = 0.5
    metrics["vanilla"]["steps_to_95"] = {"median": 12345.0, "n_reached": 2}
    metrics["bn"]["sigmoid_input_drift"]["relative"] = 0.123
    changed = dataclasses.replace(comparison, metrics=metrics).report()
    rows = {row[0]: row[1:] for row in _table(changed, "| | vanilla | BN |")}
    assert rows["final test accuracy, moving averages (the curve's last point)"][1] == "50.00%"
    assert rows["steps to 95 % (median, seeds reaching)"][0] == "12,345 steps (2/3)"
    assert rows["sigmoid-input drift, 10 % of training → end (mean over units and seeds)"][1] == "0.123"
    before = {row[0]: row[1:] for row in _table(report, "| | vanilla | BN |")}
    assert before["steps to 95 % (median, seeds reaching)"][0] == "800 steps (3/3)"


def test_the_sweep_paragraph_counts_the_maps_cells(comparison, report):
    sentence = " ".join(report.split())
    assert "BN is higher with the interval excluding 0 in **4** of 6 cells, lower in **1**" in sentence
    assert "the interval includes 0 in the other 1." in sentence
    # every cell turned against BN: the sentence follows
    worse = stats.Estimate(-0.1, -0.2, -0.05, 3)
    cells = [dataclasses.replace(cell, difference=worse) for cell in comparison.cells]
    sentence = " ".join(dataclasses.replace(comparison, cells=cells).report().split())
    assert "in **0** of 6 cells, lower in **6**, and the interval includes 0 in the other 0." in sentence


def test_the_horizon_table_has_one_row_per_variant(report):
    rows = {row[0]: row[1:] for row in _table(report, "| | tuned rate | nearest swept |")}
    assert rows == {
        "vanilla": ["0.5", "1", "1", "+0.00 pp", "[+0.00 pp, +0.00 pp]", "yes"],
        "BN": ["5", "10", "1", "+1.00 pp", "[+1.00 pp, +1.00 pp]", "no"],
    }


def test_the_report_has_no_missing_number_spelt_as_nan_or_none(report):
    assert not re.search(r"\b(nan|None|inf)\b", report, flags=re.IGNORECASE)


def test_the_context_renders_the_report(context, report):
    assert render_report(context) == report


def test_a_name_the_template_uses_but_the_context_lacks_is_an_error_not_an_empty_cell(context):
    runs = copy.deepcopy(context["runs"])
    del runs["bn"]["study"]  # rendered as plain text: without StrictUndefined it would silently be empty
    with pytest.raises(jinja2.UndefinedError, match="study"):
        render_report({**context, "runs": runs})
    with pytest.raises(jinja2.UndefinedError, match="seeds_text"):
        render_report({name: value for name, value in context.items() if name != "seeds_text"})


def test_rendering_does_not_modify_the_metrics(comparison):
    before = copy.deepcopy(comparison.metrics)
    comparison.report()
    assert comparison.metrics == before


def test_an_interval_is_written_on_its_claims_scale():
    def claim(scale, estimate):
        return Claim("k", "title", "design", "statistic", scale, estimate, "higher")

    interval, effect = FILTERS["interval"], FILTERS["effect"]
    assert interval(claim("accuracy", stats.Estimate(0.01, 0.005, 0.015, 3))) == "[+0.50 pp, +1.50 pp]"
    assert interval(claim("plain", stats.Estimate(-0.2, -0.25, -0.15, 3))) == "[-0.250, -0.150]"
    assert interval(claim("ratio", stats.Estimate(2.0, None, None, 0))) == "n/a (0 pairs)"
    assert effect(claim("accuracy", stats.Estimate(float("nan"), None, None, 0))) == "n/a"


def test_the_map_summary_counts_cells_by_which_side_of_zero_their_interval_lies():
    def cell(low, high):
        return MapCell(0.1, 1.0, 0.9, 0.9, stats.Estimate((low + high) / 2, low, high, 3))

    cells = [cell(0.01, 0.02), cell(0.01, 0.03), cell(-0.02, -0.01), cell(-0.01, 0.01), cell(0.0, 0.02)]
    cells.append(MapCell(0.1, 1.0, 0.9, 0.9, stats.Estimate(0.01, None, None, 1)))
    assert map_summary(cells, 0.95) == {"cells": 6, "better": 2, "worse": 1}


def test_per_digit_accuracy_averages_the_seeds_that_saw_the_digit():
    one = np.diag([5.0] * 10)
    other = np.diag([5.0] * 10)
    other[0] = [1, 4, 0, 0, 0, 0, 0, 0, 0, 0]  # digit 0: 1 of 5
    other[9] = 0  # no 9 in this seed's split
    accuracy = per_digit_accuracy([one, other])
    assert accuracy[0] == pytest.approx(0.6) and accuracy[9] == 1.0 and accuracy[1:9] == [1.0] * 8


def _convergence_with(claim: Claim, estimate: stats.Estimate) -> Claim:
    """The convergence claim (a ratio, BN favoured below 1) decided on another estimate."""
    return dataclasses.replace(claim, estimate=estimate)  # its verdict follows from the estimate


def _table(report: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header line starts with `header`, below its separator line."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows
