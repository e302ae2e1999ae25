"""The figures draw what they are given: the right numbers, on the right scales, with legends clear of the data; and
the report's figures are drawn from the comparison."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from src.report import figures
from src.report.drawing import COLORS, LABELS, save
from src.report.figure1 import SharedRatePanel
from src.report.figures import RobustnessGrid
from src.results.tune import TuningTrial
from tests import synthetic_results

STEPS = np.arange(0, 5001, 500)
BOTH = ("vanilla", "bn")
NAN = float("nan")


def _accuracy(seeds: int, time_constant: float) -> np.ndarray:
    return np.array([1 - 0.9 * np.exp(-STEPS / (time_constant * (1 + 0.1 * s))) for s in range(seeds)])


ACCURACY = {"vanilla": _accuracy(3, 1500), "bn": _accuracy(2, 300)}
PERCENTILES = {
    "vanilla": np.array([-1 - STEPS / 2000, -STEPS / 3000, 1 + STEPS / 5000]),
    "bn": np.array([np.full(STEPS.shape, -1.0), np.zeros(STEPS.shape), np.ones(STEPS.shape)]),
}
# best value 0.98 (bn, lr 2); within 2 pp of it: lr 0.05 … 5. Far off: lr 0.001 (0.90), 0.3 (0.95) and the zeros.
TRIALS = {
    "vanilla": [
        TuningTrial(0, 0.001, 0.90, "COMPLETE", False),
        TuningTrial(1, 0.05, 0.965, "COMPLETE", False),
        TuningTrial(2, 0.1, 0.97, "COMPLETE", False),
        TuningTrial(3, 0.3, 0.95, "PRUNED", False),
        TuningTrial(4, 30.0, NAN, "PRUNED", True),
        TuningTrial(5, 3.0, None, "FAIL", False),
    ],
    "bn": [
        TuningTrial(0, 0.5, 0.975, "COMPLETE", False),
        TuningTrial(1, 2.0, 0.98, "COMPLETE", False),
        TuningTrial(2, 5.0, 0.962, "PRUNED", False),
        TuningTrial(3, 100.0, 0.0, "COMPLETE", True),
    ],
}
BEST_LR = {"vanilla": 0.1, "bn": 2.0}


def _grid() -> RobustnessGrid:
    vanilla = np.array([[0.90, 0.95, NAN], [0.50, 0.80, 0.97]])
    bn = np.array([[0.97, 0.973, 0.96], [0.96, 0.97, 0.95]])
    difference = bn - vanilla
    # significant after the map's correction at (0, 0), (1, 0) and (1, 2); not at (0, 1), (1, 1) or the NaN cell
    significant = np.array([[True, False, False], [True, False, True]])
    did_not_train = {"vanilla": np.array([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0]]), "bn": np.zeros((2, 3))}
    return RobustnessGrid(
        np.array([0.01, 0.0316, 100.0]),
        np.array([0.1, 1.0]),
        vanilla,
        bn,
        difference,
        significant,
        did_not_train,
        "Benjamini–Hochberg",
    )


def _panels() -> list[SharedRatePanel]:
    steps = dict.fromkeys(BOTH, STEPS)
    return [SharedRatePanel(lr, steps, ACCURACY, PERCENTILES, steps) for lr in (0.1, 1.0)]


def _mean_line(axes: Axes, variant: str):
    (line,) = [line for line in axes.get_lines() if line.get_label().startswith(f"{LABELS[variant]}: mean")]
    return line


def _xy(artist) -> np.ndarray:
    """The data points of a line, or the vertices of a filled band."""
    if hasattr(artist, "get_xydata"):
        return artist.get_xydata()
    return np.concatenate([path.vertices for path in artist.get_paths()])


def _band(axes: Axes, variant: str) -> np.ndarray:
    rgb = to_rgba(COLORS[variant])[:3]
    (band,) = [fill for fill in axes.collections if np.allclose(fill.get_facecolor()[0][:3], rgb)]
    return _xy(band)


def _trial_line(axes: Axes, variant: str, kind: str):
    (line,) = [line for line in axes.get_lines() if line.get_label().startswith(f"{LABELS[variant]}: {kind}")]
    return line


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


def test_accuracy_is_drawn_on_a_log_axis_as_the_mean_and_range_over_seeds_after_step_0():
    axes = figures.accuracy_figure(dict.fromkeys(BOTH, STEPS), ACCURACY).axes[0]
    assert axes.get_xscale() == "log"
    assert "log" in axes.get_xlabel()
    for variant in BOTH:
        line, drawn = _mean_line(axes, variant), ACCURACY[variant][:, 1:]
        np.testing.assert_array_equal(line.get_xdata(), STEPS[1:])
        np.testing.assert_allclose(line.get_ydata(), drawn.mean(axis=0))
        band = _band(axes, variant)
        assert band[:, 1].min() == pytest.approx(drawn.min()) and band[:, 1].max() == pytest.approx(drawn.max())
    for artist in [*axes.get_lines(), *axes.collections]:
        assert np.all(_xy(artist)[:, 0] > 0), "step 0 cannot be drawn on a log axis"


def test_a_seed_not_evaluated_at_a_step_is_left_out_of_that_step():
    steps = np.array([0, 10, 20, 30, 40])
    accuracy = np.array([[0.5, 0.8, 0.9, 0.95, NAN], [0.5, 0.6, NAN, NAN, NAN]])
    axes = figures.accuracy_figure({"vanilla": steps}, {"vanilla": accuracy}).axes[0]
    line = _mean_line(axes, "vanilla")
    np.testing.assert_array_equal(line.get_xdata(), [10, 20, 30])  # step 40, where no seed was evaluated, is not drawn
    np.testing.assert_allclose(line.get_ydata(), [0.7, 0.9, 0.95])


def test_the_accuracy_axis_starts_near_70_percent_unless_later_training_goes_lower():
    steps = np.arange(0, 1001, 10)
    early_dip = np.full((1, steps.size), 0.95)
    early_dip[0, 5] = 0.2  # within the first tenth of training: not worth squashing the rest
    late_dip = early_dip.copy()
    late_dip[0, 50] = 0.4
    assert figures.accuracy_figure({"bn": steps}, {"bn": early_dip}).axes[0].get_ylim()[0] == pytest.approx(0.68)
    assert figures.accuracy_figure({"bn": steps}, {"bn": late_dip}).axes[0].get_ylim()[0] < 0.4


def test_sigmoid_inputs_get_one_log_panel_per_variant_on_one_y_scale():
    figure = figures.sigmoid_inputs_figure(dict.fromkeys(BOTH, STEPS), PERCENTILES, "seed 0, unit 3")
    panels = figure.axes
    assert len(panels) == 2 and panels[0].get_shared_y_axes().joined(*panels)
    assert "seed 0, unit 3" in figure.get_suptitle()
    for axes, variant in zip(panels, BOTH, strict=True):
        assert axes.get_xscale() == "log" and LABELS[variant] in axes.get_title()
        lines = {line.get_linestyle(): line for line in axes.get_lines()}
        for row, style in enumerate((":", "-", "--")):  # 15th, 50th, 85th
            np.testing.assert_array_equal(lines[style].get_xdata(), STEPS[1:])
            np.testing.assert_allclose(lines[style].get_ydata(), PERCENTILES[variant][row, 1:])
        band = _band(axes, variant)
        assert band[:, 1].min() == pytest.approx(PERCENTILES[variant][0, 1:].min())
        assert band[:, 1].max() == pytest.approx(PERCENTILES[variant][2, 1:].max())


def test_pruned_trials_are_hollow_and_labelled_as_value_when_pruned():
    figure = figures.lr_search_figure(TRIALS, BEST_LR)
    whole = figure.axes[0]
    pruned, complete = _trial_line(whole, "bn", "pruned"), _trial_line(whole, "bn", "complete")
    assert pruned.get_markerfacecolor() == "none" and complete.get_markerfacecolor() != "none"
    np.testing.assert_array_equal(pruned.get_xydata(), [[5.0, 0.962]])
    (legend,) = figure.legends
    (entry,) = [h for h in legend.legend_handles if "value when pruned" in h.get_label()]
    assert entry.get_markerfacecolor() == "none"


def test_diverged_and_valueless_trials_sit_at_zero_as_crosses_and_triangles():
    whole = figures.lr_search_figure(TRIALS, BEST_LR).axes[0]
    for variant, lr in (("vanilla", 30.0), ("bn", 100.0)):  # bn's was COMPLETE with a value: diverged wins
        diverged = _trial_line(whole, variant, "diverged")
        assert diverged.get_marker() == "x"
        np.testing.assert_array_equal(diverged.get_xydata(), [[lr, 0.0]])
    failed = _trial_line(whole, "vanilla", "no value")
    assert failed.get_marker() == "v"
    np.testing.assert_array_equal(failed.get_xydata(), [[3.0, 0.0]])


def test_the_lr_search_shows_the_whole_search_and_a_zoom_on_where_the_choice_is_made():
    whole, zoom = figures.lr_search_figure(TRIALS, BEST_LR).axes
    assert whole.get_xscale() == zoom.get_xscale() == "log"
    assert whole.get_ylim()[0] < 0 and whole.get_ylim()[1] > 1
    (low_x, high_x), (low_y, high_y) = zoom.get_xlim(), zoom.get_ylim()
    for lr in [*BEST_LR.values(), 0.05, 5.0]:  # the tuned rates and the ends of the 2-pp window
        assert low_x < lr < high_x
    assert low_x > 0.001 and high_x < 30.0  # the far-off trials are out of the zoom
    assert 0.98 - 0.03 <= low_y < 0.97 and 0.98 < high_y <= 1.0  # holds each study's best trial, 0.97 and 0.98


def test_the_zoom_holds_a_tuned_rate_even_away_from_the_best_trials():
    zoom = figures.lr_search_figure(TRIALS, {"vanilla": 0.01, "bn": 2.0}).axes[1]
    assert zoom.get_xlim()[0] < 0.01


def test_a_search_where_no_trial_has_a_value_still_draws():
    failed = {"vanilla": [TuningTrial(0, 1.0, None, "FAIL", False)]}
    assert "no trial has a value" in figures.lr_search_figure(failed, {"vanilla": None}).axes[1].get_title()


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


def test_a_difference_without_a_value_shows_n_a_on_a_scale_centred_at_zero():
    difference = figures.robustness_map_figure(_grid()).axes[2]
    assert _cell_texts(difference)[(0, 2)] == "n/a"
    (image,) = difference.get_images()
    assert image.norm.vmin == -image.norm.vmax == pytest.approx(-46.0)  # ± the largest |difference|, in pp


def test_a_robustness_grid_of_the_wrong_shape_is_refused():
    grid = _grid()
    with pytest.raises(ValueError, match=r"RobustnessGrid.bn must be .* = \(2, 3\), got \(3, 2\)"):
        dataclasses.replace(grid, bn=grid.bn.T)


def test_the_shared_rate_figure_has_a_row_per_learning_rate_with_accuracy_and_both_variants_inputs():
    figure = figures.shared_rate_figure(_panels(), init_std=0.5)
    grid = {(a.get_subplotspec().rowspan.start, a.get_subplotspec().colspan.start): a for a in figure.axes}
    assert sorted(grid) == [(row, column) for row in range(2) for column in range(3)]
    assert "same learning rate" in figure.get_suptitle() and "0.5" in figure.get_suptitle()
    for row, lr in enumerate(("0.1", "1")):
        assert f"lr = {lr}" in grid[row, 0].get_ylabel()
        for variant in BOTH:
            np.testing.assert_allclose(
                _mean_line(grid[row, 0], variant).get_ydata(), ACCURACY[variant][:, 1:].mean(axis=0)
            )
        vanilla, bn = grid[row, 1], grid[row, 2]
        assert vanilla.get_shared_y_axes().joined(vanilla, bn)
        for axes, variant in ((vanilla, "vanilla"), (bn, "bn")):
            median = next(line for line in axes.get_lines() if line.get_linestyle() == "-")
            np.testing.assert_allclose(median.get_ydata(), PERCENTILES[variant][1, 1:])
            assert axes.get_xscale() == "log"


def test_save_writes_a_whole_png_of_a_readable_size_and_no_temporary_file(tmp_path):
    path = tmp_path / "figures" / "test_accuracy.png"
    save(figures.accuracy_figure(dict.fromkeys(BOTH, STEPS), ACCURACY), path)
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    width, height = struct.unpack(">II", header[16:24])
    assert 600 <= width <= 4000 and 400 <= height <= 3000, f"{width}×{height}"
    assert [p.name for p in path.parent.iterdir()] == ["test_accuracy.png"], "a temporary file was left behind"


# --- the specification curves ----------------------------------------------------------------------------------


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
    usable = figures.specification_figure(comparison.claims).axes[3]  # the grid alone: an effect, no interval
    grey = [m for m in _markers(usable) if to_rgba(m.get_color()) == to_rgba(figures.VERDICT_COLORS["not estimable"])]
    assert len(grey) == 2 and len(_intervals(usable)) == 1


def test_no_legend_covers_a_specification(comparison):
    _assert_legends_cover_no_data(figures.specification_figure(comparison.claims))


# --- the report's figures, from the comparison ---------------------------------------------------------------


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
