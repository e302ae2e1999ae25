"""The figures draw what they are given: the right numbers, on the right scales, with legends clear of the data; and
the report's figures are drawn from the comparison."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from src.report.drawing import LABELS
from src.report.tuning_figure import lr_search_figure
from src.results.tune import TuningTrial
from tests.report.drawn import BEST_LR, TRIALS


def _trial_line(axes: Axes, variant: str, kind: str):
    (line,) = [line for line in axes.get_lines() if line.get_label().startswith(f"{LABELS[variant]}: {kind}")]
    return line


def test_pruned_trials_are_hollow_and_labelled_as_value_when_pruned():
    figure = lr_search_figure(TRIALS, BEST_LR)
    whole = figure.axes[0]
    pruned, complete = _trial_line(whole, "bn", "pruned"), _trial_line(whole, "bn", "complete")
    assert pruned.get_markerfacecolor() == "none" and complete.get_markerfacecolor() != "none"
    np.testing.assert_array_equal(pruned.get_xydata(), [[5.0, 0.962]])
    (legend,) = figure.legends
    (entry,) = [h for h in legend.legend_handles if "value when pruned" in h.get_label()]
    assert entry.get_markerfacecolor() == "none"


def test_diverged_and_valueless_trials_sit_at_zero_as_crosses_and_triangles():
    whole = lr_search_figure(TRIALS, BEST_LR).axes[0]
    for variant, lr in (("vanilla", 30.0), ("bn", 100.0)):  # bn's was COMPLETE with a value: diverged wins
        diverged = _trial_line(whole, variant, "diverged")
        assert diverged.get_marker() == "x"
        np.testing.assert_array_equal(diverged.get_xydata(), [[lr, 0.0]])
    failed = _trial_line(whole, "vanilla", "no value")
    assert failed.get_marker() == "v"
    np.testing.assert_array_equal(failed.get_xydata(), [[3.0, 0.0]])


def test_the_lr_search_shows_the_whole_search_and_a_zoom_on_where_the_choice_is_made():
    whole, zoom = lr_search_figure(TRIALS, BEST_LR).axes
    assert whole.get_xscale() == zoom.get_xscale() == "log"
    assert whole.get_ylim()[0] < 0 and whole.get_ylim()[1] > 1
    (low_x, high_x), (low_y, high_y) = zoom.get_xlim(), zoom.get_ylim()
    for lr in [*BEST_LR.values(), 0.05, 5.0]:  # the tuned rates and the ends of the 2-pp window
        assert low_x < lr < high_x
    assert low_x > 0.001 and high_x < 30.0  # the far-off trials are out of the zoom
    assert 0.98 - 0.03 <= low_y < 0.97 and 0.98 < high_y <= 1.0  # holds each study's best trial, 0.97 and 0.98


def test_the_zoom_holds_a_tuned_rate_even_away_from_the_best_trials():
    zoom = lr_search_figure(TRIALS, {"vanilla": 0.01, "bn": 2.0}).axes[1]
    assert zoom.get_xlim()[0] < 0.01


def test_a_search_where_no_trial_has_a_value_still_draws():
    failed = {"vanilla": [TuningTrial(0, 1.0, None, "FAIL", False)]}
    assert "no trial has a value" in lr_search_figure(failed, {"vanilla": None}).axes[1].get_title()
