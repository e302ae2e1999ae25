"""The figures draw what they are given: the right numbers, on the right scales, with legends clear of the data; and
the report's figures are drawn from the comparison."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from src.report import figures
from src.report.drawing import LABELS
from src.report.figures import RobustnessGrid
from tests import synthetic_results
from tests.report.drawn import ACCURACY, BEST_LR, BOTH, NAN, PERCENTILES, STEPS, TRIALS, _mean_line, _panels, _xy


def _grid() -> RobustnessGrid:
    vanilla = np.array([[0.90, 0.95, NAN], [0.50, 0.80, 0.97]])
    bn = np.array([[0.97, 0.973, 0.96], [0.96, 0.97, 0.95]])
    difference = bn - vanilla
    # significant after the map's correction at (0, 0), (1, 0) and (1, 2); not at (0, 1), (1, 1) or the NaN cell
    significant = np.array([[True, False, False], [True, False, True]])
    did_not_train = {"vanilla": np.array([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0]]), "bn": np.zeros((2, 3))}
    both_failed = np.zeros((2, 3), dtype=bool)
    return RobustnessGrid(
        np.array([0.01, 0.0316, 100.0]),
        np.array([0.1, 1.0]),
        vanilla,
        bn,
        difference,
        significant,
        did_not_train,
        both_failed,
        "Benjamini–Hochberg",
    )


def _cell(text) -> tuple[int, int]:
    """(row, column) of a heatmap cell's text."""
    x, y = text.get_position()
    return round(y), round(x)


def _cell_texts(axes: Axes) -> dict[tuple[int, int], str]:
    return {_cell(text): text.get_text() for text in axes.texts}


def _inside(box, points: np.ndarray) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    return (box.x0 <= x) & (x <= box.x1) & (box.y0 <= y) & (y <= box.y1)


def _assert_legends_cover_no_data(figure: Figure) -> None:
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = [*figure.legends, *(axes.get_legend() for axes in figure.axes if axes.get_legend())]
    assert legends, "the figure has no legend to check"
    for axes in figure.axes:
        for artist in [*axes.lines, *axes.collections]:
            points = artist.get_transform().transform(_xy(artist))
            points = points[_inside(axes.bbox, points)]  # what lies outside the axes limits is clipped, not drawn
            for legend in legends:
                covered = _inside(legend.get_window_extent(renderer), points)
                assert not covered.any(), (
                    f"the legend covers {covered.sum()} points of {artist} in {axes.get_title()!r}"
                )


LEGEND_FIGURES = {
    "accuracy": lambda: figures.accuracy_figure(dict.fromkeys(BOTH, STEPS), ACCURACY),
    "sigmoid inputs": lambda: figures.sigmoid_inputs_figure(dict.fromkeys(BOTH, STEPS), PERCENTILES, "seed 0, unit 3"),
    "lr search": lambda: figures.lr_search_figure(TRIALS, BEST_LR),
    "shared rate": lambda: figures.shared_rate_figure(_panels(), init_std=0.5),
}


@pytest.mark.parametrize("build", LEGEND_FIGURES.values(), ids=LEGEND_FIGURES.keys())
def test_no_legend_covers_any_data(build):
    _assert_legends_cover_no_data(build())


def test_the_legend_check_catches_a_legend_over_the_data():
    figure = Figure()
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot(np.linspace(0, 1, 200), np.full(200, 0.5), label="data")
    axes.legend(loc="center")
    with pytest.raises(AssertionError, match="legend covers"):
        _assert_legends_cover_no_data(figure)


def test_confusion_cells_show_their_counts_and_zeros_stay_blank():
    confusion = np.array([[50, 0, 2], [1, 40, 0], [0, 3, 45]])
    (axes, _colorbar, *_) = figures.confusion_figure({"bn": confusion}).axes
    assert _cell_texts(axes) == {(0, 0): "50", (0, 2): "2", (1, 0): "1", (1, 1): "40", (2, 1): "3", (2, 2): "45"}
    assert f"{135 / 141:.2%}" in axes.get_title()


def test_every_robustness_cell_shows_its_number_in_percent_or_percentage_points_and_the_share_at_chance():
    grid = _grid()
    vanilla, bn, difference = figures.robustness_map_figure(grid).axes[:3]
    assert _cell_texts(vanilla) == {
        (0, 0): "90.0",
        (0, 1): "95.0",
        (0, 2): "n/a",
        (1, 0): "50.0\n30% ✗",
        (1, 1): "80.0\n10% ✗",
        (1, 2): "97.0",
    }
    assert _cell_texts(bn)[(0, 1)] == "97.3" and "at chance" in vanilla.get_title()
    texts = _cell_texts(difference)
    assert texts[(0, 1)] == "+2.3" and texts[(1, 1)] == "+17.0" and texts[(1, 2)] == "-2.0*"
    assert [t.get_text() for t in vanilla.get_xticklabels()] == ["0.01", "0.032", "100"]
    assert [t.get_text() for t in vanilla.get_yticklabels()] == ["0.1", "1"] and vanilla.get_ylabel() == "init std σ"


def test_exactly_the_differences_significant_after_the_maps_correction_are_marked_and_it_is_named():
    difference = figures.robustness_map_figure(_grid()).axes[2]
    marked = {cell for cell, text in _cell_texts(difference).items() if text.endswith("*")}
    bold = {_cell(text) for text in difference.texts if text.get_fontweight() == "bold"}
    assert marked == bold == {(0, 0), (1, 0), (1, 2)}
    assert "significant after Benjamini–Hochberg" in difference.get_title()


def test_a_difference_between_two_failed_nets_is_marked_whether_significant_or_not_and_stays_bold_if_significant():
    grid = _grid()
    failed = dataclasses.replace(grid, both_failed=np.array([[True, True, False], [False, False, True]]))
    difference = figures.robustness_map_figure(failed).axes[2]
    texts = _cell_texts(difference)
    assert (texts[(0, 0)], texts[(0, 1)], texts[(1, 2)]) == ("+7.0†*", "+2.3†", "-2.0†*")
    bold = {_cell(text) for text in difference.texts if text.get_fontweight() == "bold"}
    assert bold == {(0, 0), (1, 0), (1, 2)} and "†: neither trained" in difference.get_title()


def test_a_difference_without_a_value_shows_n_a_on_a_scale_centred_at_zero():
    difference = figures.robustness_map_figure(_grid()).axes[2]
    assert _cell_texts(difference)[(0, 2)] == "n/a"
    (image,) = difference.get_images()
    assert image.norm.vmin == -image.norm.vmax == pytest.approx(-46.0)  # ± the largest |difference|, in pp


def test_a_robustness_grid_of_the_wrong_shape_is_refused():
    grid = _grid()
    with pytest.raises(ValueError, match=r"RobustnessGrid.bn must be .* = \(2, 3\), got \(3, 2\)"):
        dataclasses.replace(grid, bn=grid.bn.T)


@pytest.fixture(scope="module")
def comparison(tree):
    return synthetic_results.comparison_of(tree[0])


def _markers(axes: Axes) -> list:
    return [line for line in axes.get_lines() if line.get_marker() not in ("None", None, "")]


def _intervals(axes: Axes) -> list:
    return [line for line in axes.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata()) == 2]


def test_the_specification_figure_draws_one_panel_per_topic_with_each_specifications_effect_and_interval(comparison):
    figure = figures.specification_figure(comparison.claims)
    topics = list(dict.fromkeys(claim.topic.key for claim in comparison.claims))
    assert len(figure.axes) == len(topics) == 5
    for axes, topic in zip(figure.axes, topics, strict=True):
        claim = next(claim for claim in comparison.claims if claim.topic.key == topic)
        assert axes.get_title().startswith(f"{claim.topic.title}: {len(claim.curve)} specifications")
        drawn = [spec for spec in claim.curve if np.isfinite(spec.estimate.effect)]
        markers = _markers(axes)
        assert len(markers) == len(drawn)  # one point per specification with an effect
        assert [m.get_ydata()[0] for m in markers] == sorted(spec.estimate.effect for spec in drawn)
        assert len(_intervals(axes)) == sum(spec.estimate.estimable for spec in claim.curve)
        stars = [m for m in markers if m.get_marker() == "*"]
        assert len(stars) == sum(spec.primary for spec in drawn)
        assert axes.get_yscale() == ("log" if claim.topic.scale == "ratio" else "linear")
        (no_effect,) = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
        assert no_effect.get_ydata()[0] == claim.topic.no_effect


def test_a_specification_is_coloured_by_its_own_verdict_filled_when_shared_and_hollow_when_tuned(comparison):
    claim = comparison.claims[0]  # convergence: 10 hold, 5 not estimable with no effect to draw
    axes = figures.specification_figure(comparison.claims).axes[0]
    markers = _markers(axes)
    assert {to_rgba(m.get_color()) for m in markers} == {to_rgba(figures.VERDICT_COLORS["holds"])}
    faces = [m.get_markerfacecolor() for m in markers]
    assert sum(face == "white" for face in faces) == sum(spec.design == "tuned" for spec in claim.curve) == 5
    assert "10 holds" in axes.get_title() and "5 not estimable" in axes.get_title()
    usable = figures.specification_figure(comparison.claims).axes[3]  # the grid alone: every seed alike, a point
    held = [m for m in _markers(usable) if to_rgba(m.get_color()) == to_rgba(figures.VERDICT_COLORS["holds"])]
    assert len(held) == len(_markers(usable)) == 3 and len(_intervals(usable)) == 3


def test_no_legend_covers_a_specification(comparison):
    _assert_legends_cover_no_data(figures.specification_figure(comparison.claims))


def test_the_report_gets_every_figure_in_order(comparison):
    drawn = figures.report_figures(comparison)
    assert (
        tuple(drawn)
        == figures.FIGURE_NAMES
        == (
            "specifications",
            "test_accuracy",
            "sigmoid_inputs",
            "robustness_map",
            "shared_rates",
            "lr_search",
            "confusion",
        )
    )
    assert all(isinstance(figure, Figure) for figure in drawn.values())


def test_figure_1_draws_the_tuned_runs_and_the_example_sigmoid(comparison):
    drawn = figures.report_figures(comparison)
    accuracy = drawn["test_accuracy"].axes[0]
    for variant, outcome in comparison.tuned.items():
        np.testing.assert_allclose(_mean_line(accuracy, variant).get_ydata(), outcome.curves.accuracy[:, 1:].mean(0))
    example = comparison.example
    assert f"seed {example.seed}, unit {example.unit}" in drawn["sigmoid_inputs"].get_suptitle()
    vanilla_panel = drawn["sigmoid_inputs"].axes[0]
    median = next(line for line in vanilla_panel.get_lines() if line.get_linestyle() == "-")
    curve = comparison.tuned["vanilla"].sigmoid_inputs[(example.seed, example.unit)]
    np.testing.assert_allclose(median.get_ydata(), curve.p50[1:])


def test_the_lr_search_marks_each_variants_tuned_rate(comparison):
    whole = figures.report_figures(comparison)["lr_search"].axes[0]
    for variant, outcome in comparison.tuned.items():
        (line,) = [line for line in whole.get_lines() if line.get_label() == f"{LABELS[variant]}: tuned lr"]
        assert line.get_xdata()[0] == outcome.tuning.best_lr


def test_the_robustness_grid_holds_the_maps_cells_init_std_by_rate(comparison):
    grid = figures.robustness_grid(comparison)
    rates, inits = comparison.params.sweep.learning_rates, comparison.params.sweep.init_stds
    assert grid.learning_rates.tolist() == rates and grid.init_stds.tolist() == inits
    for cell in comparison.cells:
        i, j = inits.index(cell.init_std), rates.index(cell.learning_rate)
        assert (grid.vanilla[i, j], grid.bn[i, j], grid.difference[i, j]) == (
            cell.vanilla,
            cell.bn,
            cell.difference.effect,
        )
        assert grid.significant[i, j] == (cell.side is not None)
        assert {v: grid.did_not_train[v][i, j] for v in ("vanilla", "bn")} == cell.did_not_train
    assert grid.significant.sum() == 5 and grid.correction == "Benjamini–Hochberg"
    assert grid.both_failed.tolist() == [[False, False, False], [False, False, True]]  # init std 1.0, rate 10
    assert grid.did_not_train["vanilla"].tolist() == [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]


def test_a_map_cell_without_a_value_is_drawn_as_n_a(comparison):
    cells = list(comparison.cells)
    cells[0] = dataclasses.replace(cells[0], vanilla=NAN)
    grid = figures.robustness_grid(dataclasses.replace(comparison, cells=cells))
    assert np.isnan(grid.vanilla[0, 0])
    assert _cell_texts(figures.robustness_map_figure(grid).axes[0])[(0, 0)] == "n/a"


def test_a_shared_rate_panel_is_both_variants_at_one_rate_and_init(comparison):
    sweeps = {variant: shared.sweep for variant, shared in comparison.shared.items()}
    panel = figures.shared_rate_panel(sweeps, 10.0, lr_index=2, init_index=1)
    assert panel.lr == 10.0
    for variant, sweep in sweeps.items():
        np.testing.assert_array_equal(panel.accuracy[variant], sweep.accuracy[:, 1, 2])
        np.testing.assert_array_equal(panel.percentiles[variant], sweep.percentiles[0, 1, 2, 0])
        assert panel.steps[variant] is panel.percentile_steps[variant] is sweep.steps
