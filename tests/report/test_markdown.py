"""The report is generated from the claims and the metrics: every number in it follows them, none is typed by hand,
and its reading is one sentence per claim whose words follow that claim's verdict, numbers and specifications."""

from __future__ import annotations

import copy
import dataclasses
import math
import re

import jinja2
import numpy as np
import pytest

from src.analysis import stats
from src.analysis.claims import SECTIONS, MapCell
from src.config import VARIANTS
from src.metrics import number_format, schema
from src.metrics.build import build, design_text
from src.metrics.table import glance_table
from src.report import figures, markdown
from src.report.markdown import map_summary, per_digit_accuracy, reading, render_report
from tests import synthetic_results


@pytest.fixture(scope="module")
def comparison(tree):
    return synthetic_results.comparison_of(tree[0])


@pytest.fixture(scope="module")
def numbers(comparison) -> schema.Metrics:
    return build(comparison)


def render(comparison, numbers: schema.Metrics) -> str:
    return markdown.render(comparison, numbers, figures.FIGURE_NAMES)


@pytest.fixture(scope="module")
def text(comparison, numbers) -> str:
    return render(comparison, numbers)


@pytest.fixture(scope="module")
def context(comparison, numbers) -> dict:
    """What the report hands the template."""
    return markdown.context(comparison, numbers, figures.FIGURE_NAMES)


# --- at a glance: the table the README quotes --------------------------------------------------------------------


def test_the_report_opens_with_the_table_the_metrics_print_for_the_readme(numbers, text):
    glance = text.split("## At a glance\n", 1)[1].split("\n## ", 1)[0]
    assert [line for line in glance.splitlines() if line.startswith("|")] == glance_table(numbers.claims)


# --- what holds: one row per primary claim ----------------------------------------------------------------------

HOLDS_TABLE = "| claim | source | design | verdict |"


def test_the_what_holds_table_has_one_row_per_primary_claim_with_its_source_design_and_verdict(comparison, text):
    rows = _table(text, HOLDS_TABLE)
    assert len(rows) == len(comparison.claims) == 8
    for row, claim in zip(rows, comparison.claims, strict=True):
        assert row[0] == claim.topic.title and row[1] == SECTIONS[claim.topic.section]
        assert row[2] == design_text(claim.primary) and row[3] == f"**{claim.verdict}**"


def test_the_what_holds_table_gives_each_effect_interval_p_value_and_agreement_on_its_scale(comparison, text):
    shared_accuracy = _shared_accuracy_differences()
    assert (shared_accuracy > 0).all()
    for row, claim in zip(_table(text, HOLDS_TABLE), comparison.claims, strict=True):
        estimate = claim.estimate
        assert row[4:6] == [
            number_format.effect(estimate.effect, claim.scale),
            number_format.interval(estimate, claim.scale),
        ]
        assert row[6] == f"{number_format.p_value(estimate.p_value)} ({number_format.p_value(claim.adjusted_p)})"
        assert row[7] == f"{claim.agreeing} of {len(claim.design_curve)}"
    rows = {(row[0], row[2].split(":")[0]): row for row in _table(text, HOLDS_TABLE)}
    assert rows[("BN allows a higher learning rate", "shared")][4] == "15.85×"
    assert rows[("BN reaches a higher accuracy", "shared")][4:8] == [
        "+2.10 pp",
        _studentized_pp(shared_accuracy, comparison.params.evaluate),  # [+1.69 pp, +2.51 pp]
        "0.002 (0.016)",  # BN higher in all 10 seeds: of the 2^10 sign flips only this one and its mirror as extreme
        "3 of 6",  # the shared design's: the tuned design's three are not counted
    ]


def test_each_claims_statistic_design_and_note_follow_the_table(text):
    assert (
        "\n- **BN allows a higher learning rate, shared**: largest learning rate that trains (no divergence, final "
        "test accuracy at least the usable cut), BN / vanilla (geometric mean over seeds); shared: both nets at the "
        "same rates (sweep@, init std 0.1); refined edge; BN's edge is a lower bound in 1 seed(s): it trained at every "
        "rate tried.\n"
    ) in text


@pytest.mark.parametrize(
    ("estimate", "verdict", "effect", "interval"),
    [
        (stats.Estimate(0.5, 0.4, 0.6, 10, 0.002), "holds", "0.50×", "[0.40×, 0.60×]"),
        (stats.Estimate(1.3, 1.1, 1.5, 10, 0.002), "contradicted", "1.30×", "[1.10×, 1.50×]"),
        (stats.Estimate(0.9, None, None, 1), "not estimable", "0.90×", "n/a (1 pair)"),
    ],
)
def test_the_claims_rows_follow_the_claims_they_are_given(comparison, numbers, estimate, verdict, effect, interval):
    claims = [_with(comparison.claims[0], estimate, verdict), *comparison.claims[1:]]
    row = _table(render(dataclasses.replace(comparison, claims=claims), numbers), HOLDS_TABLE)[0]
    assert row[0] == "BN converges faster" and row[3:6] == [f"**{verdict}**", effect, interval]


# --- the reading: generated from the claims ----------------------------------------------------------------------


def test_the_reading_is_one_sentence_per_primary_claim_and_one_for_the_map_each_in_the_report(
    comparison, numbers, text
):
    sentences = reading(comparison.claims, numbers)
    assert len(sentences) == len(comparison.claims) + 1
    section = text.split(markdown.READING, 1)[1].split("\n## ", 1)[0]
    assert [line for line in section.splitlines() if line.startswith("- ")] == sentences


def test_a_claim_that_holds_reads_with_its_effect_interval_corrected_p_and_its_specifications(comparison, numbers):
    sentence = reading(comparison.claims, numbers)[2]
    interval = _studentized_pp(_shared_accuracy_differences(), comparison.params.evaluate)
    assert sentence == (
        f"- BN reaches a higher accuracy, shared design: +2.10 pp {interval}, **holds** (p 0.016 after the "
        "family's correction). 3 of 6 shared-design specifications agree (3 not estimable)."
    )
    assert reading(comparison.claims, numbers)[-2].endswith(
        "4 of 4 shared-design specifications agree."
    )  # no one disagrees


def test_a_claim_not_shown_reads_so_and_says_how_many_seeds_would_decide_it(comparison, numbers):
    claim = _with(
        comparison.claims[2],
        stats.Estimate(0.004, -0.002, 0.01, 10, 0.2, "sign_flip", "BCa", 0.01),
        "not shown",
        adjusted_p=0.4,
    )
    assert claim.seeds_needed == stats.seeds_needed(claim.estimate, 0.05 / 8)
    (sentence, *_) = reading([claim], numbers)
    assert sentence == (
        "- BN reaches a higher accuracy, shared design: +0.40 pp [-0.20 pp, +1.00 pp], **not shown** (p 0.4 after the "
        f"family's correction). 0 of 6 shared-design specifications agree (3 holds; 3 not estimable). About "
        f"{claim.seeds_needed} "
        "paired seeds would decide an effect this size."
    )


def test_a_contradicted_claim_reads_that_bn_is_on_the_other_side(comparison, numbers):
    claim = _with(comparison.claims[1], stats.Estimate(1.5, 1.2, 1.8, 10, 0.002), "contradicted", adjusted_p=0.016)
    (sentence, *_) = reading([claim], numbers)
    assert "1.50× [1.20×, 1.80×], **contradicted**: BN is on the other side (p 0.016 corrected)." in sentence


@pytest.mark.parametrize(
    ("estimate", "note", "why"),
    [
        (stats.Estimate(math.nan, None, None, 0), "no swept rate where both nets train", "no swept rate where both"),
        (stats.Estimate(0.02, None, None, 10), "rates 0.1, 1", "its paired values do not vary across seeds"),
    ],
    ids=["no pairs", "no spread"],
)
def test_a_claim_not_estimable_reads_why(comparison, numbers, estimate, note, why):
    claim = _with(comparison.claims[2], estimate, "not estimable", adjusted_p=None, note=note)
    (sentence, *_) = reading([claim], numbers)
    assert f"**not estimable**: {why}" in sentence and "About" not in sentence
    assert ("n/a" not in sentence) == (estimate.n == 0)  # with no pairs, no effect or interval to give


def test_the_maps_sentence_follows_its_counts_and_correction(comparison, numbers):
    assert reading(comparison.claims, numbers)[-1] == (
        "- Across the sweep's 6 cells, BN is significantly higher in 4 and lower in 1 after Benjamini–Hochberg "
        "(4 and 1 before)."
    )
    changed = numbers.robustness_map.model_copy(
        update={"better": 2, "worse": 0, "better_uncorrected": 5, "worse_uncorrected": 1, "correction": "Holm"}
    )
    assert reading(comparison.claims, numbers.model_copy(update={"robustness_map": changed}))[-1] == (
        "- Across the sweep's 6 cells, BN is significantly higher in 2 and lower in 0 after Holm (5 and 1 before)."
    )


def _with_both_failed(numbers, side: str, **shares) -> schema.Metrics:
    """`numbers` with the first significant cell on `side` marked as one where neither net trained."""
    grid = {row: dict(cells) for row, cells in numbers.robustness_map.grid.items()}
    row, name = next((row, name) for row, cells in grid.items() for name, cell in cells.items() if cell.side == side)
    grid[row][name] = grid[row][name].model_copy(update={"both_failed": True, **shares})
    return numbers.model_copy(update={"robustness_map": numbers.robustness_map.model_copy(update={"grid": grid})})


def test_the_maps_sentence_names_significant_cells_where_neither_net_trains(comparison, numbers):
    both_failed = _with_both_failed(numbers, "below", did_not_train_vanilla=1.0, did_not_train_bn=1.0)
    assert reading(comparison.claims, both_failed)[-1].endswith(
        "(4 and 1 before). 1 of those 5 (lower) is a cell where neither net trains in any seed: a difference between "
        "two failed nets, not a gain or loss from BN."
    )


def test_the_maps_sentence_names_a_higher_cell_where_neither_net_trains_though_not_every_seed_is_at_chance(
    comparison, numbers
):
    # BN one seed above chance and below the usable cut (the sweep's init std 1, rate 100): failed all the same
    both_failed = _with_both_failed(numbers, "above", did_not_train_vanilla=1.0, did_not_train_bn=0.9)
    both_failed = _with_both_failed(both_failed, "below")
    assert reading(comparison.claims, both_failed)[-1].endswith(
        "(4 and 1 before). 2 of those 5 (higher or lower) are cells where neither net trains in any seed: a difference "
        "between two failed nets, not a gain or loss from BN."
    )
    assert reading(comparison.claims, numbers)[-1].endswith("(4 and 1 before).")  # no significant cell failed both


# --- every specification ---------------------------------------------------------------------------------------


def test_each_topic_has_a_table_of_its_specifications_with_the_primary_ones_starred(comparison, text):
    topics = {claim.topic.key: claim for claim in comparison.claims}
    for claim in topics.values():
        heading = f"### {claim.topic.title} ({SECTIONS[claim.topic.section]})"
        rows = _table(text.split(heading, 1)[1], "| | design | choice |")
        assert len(rows) == len(claim.curve)
        for row, spec, verdict in zip(rows, claim.curve, claim.spec_verdicts(), strict=True):
            assert row[0] == ("★" if spec.primary else "") and row[1].startswith(spec.design)
            assert row[2].startswith(spec.choice) and row[-1] == verdict
            assert row[3] == number_format.effect(spec.estimate.effect, claim.scale)
    convergence = _table(text.split("### BN converges faster", 1)[1], "| | design | choice |")
    assert convergence[2] == [
        "",
        "shared, init 1",
        "50 % of the climb; no swept rate where both nets train",
        "n/a",
        "n/a (0 pairs)",
        "n/a",
        "not estimable",
    ]


# --- the tuned runs, the sweep, the horizon ------------------------------------------------------------------------


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
                update={"steps_to": {**vanilla.steps_to, "95": schema.StepsTo(median=12345.0, n_reached=2)}}
            ),
        }
    )
    rows = {row[0]: row[1:] for row in _table(render(comparison, changed), "| | vanilla | BN |")}
    assert rows["final test accuracy, moving averages (the curve's last point)"][1] == "50.00%"
    assert rows["steps to 95 % (median, seeds reaching)"][0] == "12,345 steps (2/10)"
    assert rows["sigmoid-input drift, 1% of training → end (mean over units and seeds)"][1] == "0.123"
    before = {row[0]: row[1:] for row in _table(text, "| | vanilla | BN |")}
    assert before["steps to 95 % (median, seeds reaching)"][0] == "800 steps (10/10)"


def test_the_sweep_paragraph_counts_the_maps_cells_after_and_before_its_correction(comparison, numbers, text):
    sentence = " ".join(text.split())
    assert (
        "the 6 cells corrected as one family by Benjamini–Hochberg: BN is significantly higher in **4** of 6 cells and "
        "lower in **1** (4 and 1 before the correction). A run that ends below 20% test accuracy did not train"
    ) in sentence
    changed = numbers.robustness_map.model_copy(update={"better": 0, "worse": 6, "better_uncorrected": 1})
    sentence = " ".join(render(comparison, numbers.model_copy(update={"robustness_map": changed})).split())
    assert "higher in **0** of 6 cells and lower in **6** (1 and 1 before the correction)" in sentence


def test_the_horizon_table_has_one_row_per_variant(comparison, text):
    rows = {row[0]: row[1:] for row in _table(text, "| | tuned rate | nearest swept |")}
    # BN's best swept rate (1) against the one nearest its tuned rate (10), at init std 0.1, seed by seed
    bn = synthetic_results.sweep_final_accuracy("bn")[:, 0]
    assert rows == {
        "vanilla": ["0.2", "0.1", "0.1", "+0.00 pp", "n/a (10 pairs)", "yes"],
        "BN": ["5", "10", "1", "+2.20 pp", _studentized_pp(bn[:, 1] - bn[:, 2], comparison.params.evaluate), "no"],
    }  # BN's interval: [+1.52 pp, +2.88 pp]


def test_the_example_sigmoid_is_described_under_its_figure(text):
    assert "*The sigmoid drawn: seed 0, unit 0." in text
    # vanilla's inputs slide and widen (15–85 spread 2 + 4 × the fraction of training), BN's stay put
    assert "vanilla: median -0.20 → -2.00, 15–85 spread 2.40 → 6.00; BN: median 0.00 → 0.00, 15–85 spread 2.00" in text


def test_what_was_run_names_the_tests_corrections_and_edges(text):
    assert (
        "- statistics: paired by seed between the variants; sign-flip tests, each interval a studentized bootstrap "
        "interval (symmetric bootstrap-t), 999 bootstrap resamples (seed 0); primary claims corrected by Holm, the "
        "map's cells by Benjamini–Hochberg"
    ) in text
    assert (
        "- learning-rate edges: refined between the swept rates with 5 more rates per grid step (edge@, init stds 0.1)"
    )


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


def test_the_map_summary_counts_cells_by_their_side_after_the_correction():
    def cell(p_value: float, adjusted_p: float, effect: float = 0.01) -> MapCell:
        difference = stats.Estimate(effect, effect - 0.005, effect + 0.005, 10, p_value)
        shares = {"vanilla": 0.0, "bn": 0.0}
        return MapCell(0.1, 1.0, 0.9, 0.9 + effect, difference, adjusted_p, shares, 0.05, {"vanilla": 1.0, "bn": 1.0})

    cells = [cell(0.002, 0.01), cell(0.01, 0.03), cell(0.002, 0.01, -0.01), cell(0.03, 0.09), cell(0.5, 0.5)]
    cells.append(MapCell(0.1, 1.0, 0.9, 0.9, stats.Estimate(0.0, None, None, 10), None, {}, 0.05, {}))
    assert map_summary(cells) == {"cells": 6, "better": 2, "worse": 1}


def test_per_digit_accuracy_is_each_digits_share_right_of_a_confusion_summed_over_seeds():
    one = np.diag([5.0] * 10)
    other = np.diag([5.0] * 10)
    other[0] = [1, 4, 0, 0, 0, 0, 0, 0, 0, 0]  # digit 0: 1 of 5
    accuracy = per_digit_accuracy(one + other)
    assert accuracy[0] == pytest.approx(0.6) and accuracy[1:] == [1.0] * 9


def _with(claim, estimate: stats.Estimate, verdict: str, adjusted_p: float | None = 0.016, note: str = ""):
    """`claim` decided on another primary estimate, with the verdict and corrected p-value that go with it."""
    primary = dataclasses.replace(claim.primary, estimate=estimate, note=note)
    return dataclasses.replace(claim, primary=primary, verdict=verdict, adjusted_p=adjusted_p)


def _shared_accuracy_differences() -> np.ndarray:
    """Per seed, BN − vanilla final accuracy at init std 0.1 averaged over rates 0.1 and 1, where both nets train:
    the shared design's accuracy claim, from the synthetic sweep's table."""
    final = {variant: synthetic_results.sweep_final_accuracy(variant)[:, 0, :2].mean(axis=1) for variant in VARIANTS}
    return final["bn"] - final["vanilla"]


def _studentized_pp(differences: np.ndarray, settings) -> str:
    """The symmetric bootstrap-t interval of the mean of `differences` in pp, written out here apart from
    src/analysis: mean ± q·s/√n, q the `confidence` quantile (an order statistic) of |mean* − mean| / (s*/√n) over
    the plan's seeded resamples of the seeds."""
    n, mean = differences.size, differences.mean()
    drawn = np.random.default_rng(settings.bootstrap_seed).integers(n, size=(settings.resamples, n))
    resampled = differences[drawn]
    t = np.sort(np.abs(resampled.mean(axis=1) - mean) / (resampled.std(axis=1, ddof=1) / math.sqrt(n)))
    half_width = t[math.ceil(settings.confidence * t.size) - 1] * differences.std(ddof=1) / math.sqrt(n)
    return f"[{100 * (mean - half_width):+.2f} pp, {100 * (mean + half_width):+.2f} pp]"


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
