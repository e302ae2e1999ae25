"""The figures draw what they are given: the right numbers, on the right scales, with legends clear of the data; and
the report's figures are drawn from the comparison."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba

from src.report.drawing import COLORS, LABELS
from src.report.figure1 import accuracy_figure, shared_rate_figure, sigmoid_inputs_figure
from tests.report.drawn import ACCURACY, BOTH, NAN, PERCENTILES, STEPS, _mean_line, _panels, _xy


def _band(axes: Axes, variant: str) -> np.ndarray:
    rgb = to_rgba(COLORS[variant])[:3]
    (band,) = [fill for fill in axes.collections if np.allclose(fill.get_facecolor()[0][:3], rgb)]
    return _xy(band)


def test_accuracy_is_drawn_on_a_log_axis_as_the_mean_and_range_over_seeds_after_step_0():
    axes = accuracy_figure(dict.fromkeys(BOTH, STEPS), ACCURACY).axes[0]
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
    axes = accuracy_figure({"vanilla": steps}, {"vanilla": accuracy}).axes[0]
    line = _mean_line(axes, "vanilla")
    np.testing.assert_array_equal(line.get_xdata(), [10, 20, 30])  # step 40, where no seed was evaluated, is not drawn
    np.testing.assert_allclose(line.get_ydata(), [0.7, 0.9, 0.95])


def test_the_accuracy_axis_starts_near_70_percent_unless_later_training_goes_lower():
    steps = np.arange(0, 1001, 10)
    early_dip = np.full((1, steps.size), 0.95)
    early_dip[0, 5] = 0.2  # within the first tenth of training: not worth squashing the rest
    late_dip = early_dip.copy()
    late_dip[0, 50] = 0.4
    assert accuracy_figure({"bn": steps}, {"bn": early_dip}).axes[0].get_ylim()[0] == pytest.approx(0.68)
    assert accuracy_figure({"bn": steps}, {"bn": late_dip}).axes[0].get_ylim()[0] < 0.4


def test_sigmoid_inputs_get_one_log_panel_per_variant_on_one_y_scale():
    figure = sigmoid_inputs_figure(dict.fromkeys(BOTH, STEPS), PERCENTILES, "seed 0, unit 3")
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


def test_the_shared_rate_figure_has_a_row_per_learning_rate_with_accuracy_and_both_variants_inputs():
    figure = shared_rate_figure(_panels(), init_std=0.5)
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
