"""The report is generated from the claims and the metrics: every number in it follows them, none is typed by hand."""

from __future__ import annotations

import copy
import dataclasses
import re

import jinja2
import numpy as np
import pytest

from src import figures, metrics, report, stats
from src.claims import Claim, MapCell
from src.report import map_summary, per_digit_accuracy, render_report
from tests import synthetic_results


@pytest.fixture(scope="module")
def comparison(tree):
    return synthetic_results.comparison_of(tree[0])


@pytest.fixture(scope="module")
def numbers(comparison) -> metrics.Metrics:
    return metrics.build(comparison)


def render(comparison, numbers: metrics.Metrics) -> str:
    return report.render(comparison, numbers, figures.FIGURE_NAMES)


@pytest.fixture(scope="module")
def text(comparison, numbers) -> str:
    return render(comparison, numbers)


@pytest.fixture(scope="module")
def context(comparison, numbers) -> dict:
    """What the report hands the template."""
    return report.context(comparison, numbers, figures.FIGURE_NAMES)


def test_the_what_holds_table_has_one_row_per_claim_with_the_verdict_of_the_metrics(comparison, numbers, text):
    rows = _table(text, "| claim | verdict |")
    assert len(rows) == len(comparison.claims) == 5
    for row, claim in zip(rows, comparison.claims, strict=True):
        assert row[0] == claim.title
        assert row[1] == f"**{numbers.claims[claim.key].verdict}**"
        assert row[2] == claim.statistic and row[5] == claim.design


def test_the_what_holds_table_gives_each_effect_and_interval_on_its_scale(text):
    rows = {row[0]: row for row in _table(text, "| claim | verdict |")}
    assert rows["BN converges faster"][3:5] == ["0.44×", "[0.44×, 0.44×]"]
    assert rows["BN allows a higher learning rate"][3:5] == ["10.00×", "[10.00×, 10.00×]"]
    assert rows["BN makes training robust to the initialisation"][3:5] == ["+86.07 pp", "[+85.71 pp, +86.43 pp]"]
    assert rows["BN keeps the sigmoid-input distribution stable"][3] == "-0.744"


def test_a_claims_note_follows_the_table(text):
    assert "\n- BN allows a higher learning rate: BN trained at the largest rate swept in 3 of 3 seeds" in text


@pytest.mark.parametrize(
    ("estimate", "verdict", "effect", "interval"),
    [
        (stats.Estimate(0.5, 0.4, 0.6, 3), "holds", "0.50×", "[0.40×, 0.60×]"),
        (stats.Estimate(1.3, 1.1, 1.5, 4), "contradicted", "1.30×", "[1.10×, 1.50×]"),
        (stats.Estimate(0.9, None, None, 1), "not shown", "0.90×", "n/a (1 pair)"),
    ],
)
def test_the_claims_rows_follow_the_claims_they_are_given(comparison, numbers, estimate, verdict, effect, interval):
    claims = [
        _convergence_with(claim, estimate) if claim.key == "faster_convergence" else claim
        for claim in comparison.claims
    ]
    assert claims[0].verdict == verdict
    changed = render(dataclasses.replace(comparison, claims=claims), numbers)
    row = _table(changed, "| claim | verdict |")[0]
    assert row[:2] == ["BN converges faster", f"**{verdict}**"] and row[3:5] == [effect, interval]


def test_the_report_says_which_bn_rule_each_number_uses_and_gives_the_final_accuracy_under_both(numbers, text):
    assert "Every point of a curve scores BN with the moving averages it keeps while training" in text
    assert "The final numbers score the trained network under Algorithm 2: the mean of 2 training" in text
    rows = {row[0]: row[1:] for row in _table(text, "| | vanilla | BN |")}
    bn = numbers.bn
    algorithm_2 = rows["final test accuracy, Algorithm 2 (mean ± std over seeds)"][1]
    assert algorithm_2 == f"{bn.test_accuracy.mean:.2%} ± {bn.test_accuracy.std * 100:.2f} pp"
    moving = rows["final test accuracy, moving averages (the curve's last point)"][1]
    assert moving == f"{bn.test_accuracy_moving_average:.2%}"
    assert algorithm_2.split()[0] != moving  # two rules, two numbers


def test_the_numbers_follow_the_metrics(comparison, numbers, text):
    bn, vanilla = numbers.bn, numbers.vanilla
    changed = numbers.model_copy(
        update={
            "bn": bn.model_copy(
                update={
                    "test_accuracy_moving_average": 0.5,
                    "sigmoid_input_drift": bn.sigmoid_input_drift.model_copy(update={"relative": 0.123}),
                }
            ),
            "vanilla": vanilla.model_copy(
                update={"steps_to": {**vanilla.steps_to, "95": metrics.StepsTo(median=12345.0, n_reached=2)}}
            ),
        }
    )
    rows = {row[0]: row[1:] for row in _table(render(comparison, changed), "| | vanilla | BN |")}
    assert rows["final test accuracy, moving averages (the curve's last point)"][1] == "50.00%"
    assert rows["steps to 95 % (median, seeds reaching)"][0] == "12,345 steps (2/3)"
    assert rows["sigmoid-input drift, 10 % of training → end (mean over units and seeds)"][1] == "0.123"
    before = {row[0]: row[1:] for row in _table(text, "| | vanilla | BN |")}
    assert before["steps to 95 % (median, seeds reaching)"][0] == "800 steps (3/3)"


def test_the_sweep_paragraph_counts_the_maps_cells(comparison, numbers, text):
    sentence = " ".join(text.split())
    assert "BN is higher with the interval excluding 0 in **4** of 6 cells, lower in **1**" in sentence
    assert "the interval includes 0 in the other 1." in sentence
    # every cell turned against BN: the sentence follows
    worse = stats.Estimate(-0.1, -0.2, -0.05, 3)
    cells = [dataclasses.replace(cell, difference=worse) for cell in comparison.cells]
    sentence = " ".join(render(dataclasses.replace(comparison, cells=cells), numbers).split())
    assert "in **0** of 6 cells, lower in **6**, and the interval includes 0 in the other 0." in sentence


def test_the_horizon_table_has_one_row_per_variant(text):
    rows = {row[0]: row[1:] for row in _table(text, "| | tuned rate | nearest swept |")}
    assert rows == {
        "vanilla": ["0.5", "1", "1", "+0.00 pp", "[+0.00 pp, +0.00 pp]", "yes"],
        "BN": ["5", "10", "1", "+1.00 pp", "[+1.00 pp, +1.00 pp]", "no"],
    }


def test_the_example_sigmoid_is_described_under_its_figure(text):
    assert "*The sigmoid drawn: seed 0, unit 0." in text
    # vanilla's inputs slide and widen (15–85 spread 2 + 4 × the fraction of training), BN's stay put
    assert "vanilla: median -0.20 → -2.00, 15–85 spread 2.40 → 6.00; BN: median 0.00 → 0.00, 15–85 spread 2.00" in text


def test_every_figure_is_linked_beside_the_report(text):
    for name in figures.FIGURE_NAMES:
        assert f"](figures/{name}.png)" in text


def test_the_report_has_no_missing_number_spelt_as_nan_or_none(text):
    assert not re.search(r"\b(nan|None|inf)\b", text, flags=re.IGNORECASE)


def test_the_context_renders_the_report(context, text):
    assert render_report(context) == text


def test_a_name_the_template_uses_but_the_context_lacks_is_an_error_not_an_empty_cell(context):
    runs = copy.deepcopy(context["runs"])
    del runs["bn"]["study"]  # rendered as plain text: without StrictUndefined it would silently be empty
    with pytest.raises(jinja2.UndefinedError, match="study"):
        render_report({**context, "runs": runs})
    with pytest.raises(jinja2.UndefinedError, match="seeds_text"):
        render_report({name: value for name, value in context.items() if name != "seeds_text"})


def test_rendering_does_not_modify_the_metrics(comparison, numbers):
    before = numbers.model_dump()
    render(comparison, numbers)
    assert numbers.model_dump() == before


def test_the_map_summary_counts_cells_by_which_side_of_zero_their_interval_lies():
    def cell(low, high):
        return MapCell(0.1, 1.0, 0.9, 0.9, stats.Estimate((low + high) / 2, low, high, 3))

    cells = [cell(0.01, 0.02), cell(0.01, 0.03), cell(-0.02, -0.01), cell(-0.01, 0.01), cell(0.0, 0.02)]
    cells.append(MapCell(0.1, 1.0, 0.9, 0.9, stats.Estimate(0.01, None, None, 1)))
    assert map_summary(cells) == {"cells": 6, "better": 2, "worse": 1}


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


def _table(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header line starts with `header`, below its separator line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows
