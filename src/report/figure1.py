"""The paper's Figure 1: (a) test accuracy over training, mean line and min–max band over seeds, and (b, c) the
15/50/85th percentiles of one last-hidden-layer sigmoid's input, one panel per variant; at tuned rates, and at shared
ones with a row per rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from src.report.drawing import (
    COLORS,
    LABELS,
    band_handle,
    compact,
    draw_accuracy,
    draw_percentiles,
    legend_below,
    new_figure,
    percentile_handles,
)


def accuracy_figure(
    steps: Mapping[str, np.ndarray],
    accuracy: Mapping[str, np.ndarray],
    title: str = "(a) Test accuracy; line: mean over seeds, band: min–max over seeds",
) -> Figure:
    """Figure 1(a): test accuracy (seeds, evals) against steps > 0 on a log axis, mean line and min–max band."""
    figure = new_figure((6.4, 4.6))
    axes = figure.subplots()
    draw_accuracy(axes, steps, accuracy)
    axes.set_xlabel("training step (log scale; step 0 not shown)")
    axes.set_ylabel("test accuracy")
    axes.set_title(title)
    legend_below(figure, [*axes.get_lines(), band_handle()], columns=3)
    return figure


def sigmoid_inputs_figure(
    steps: Mapping[str, np.ndarray], percentiles: Mapping[str, np.ndarray], subtitle: str
) -> Figure:
    """Figure 1(b, c): the 15/50/85th percentiles (3, evals) of one sigmoid's input, one panel per variant."""
    figure = new_figure((10, 4.4))
    # one y scale for both panels: a drift in one and its absence in the other are read on the same scale
    panels = figure.subplots(1, len(percentiles), sharey=True, squeeze=False)[0]
    for axes, letter, variant in zip(panels, "bcdefg", percentiles, strict=False):
        draw_percentiles(axes, steps[variant], percentiles[variant], COLORS[variant])
        axes.set_title(f"({letter}) {LABELS[variant]}")
        axes.set_xlabel("training step (log scale)")
    panels[0].set_ylabel("input to the sigmoid")
    figure.suptitle(f"A last-hidden-layer sigmoid's input over training\n{subtitle}")
    legend_below(figure, percentile_handles(), columns=4)
    return figure


@dataclass(frozen=True)
class SharedRatePanel:
    """One row of the shared-rate figure: both variants trained at `lr`; arrays keyed by variant."""

    lr: float
    steps: Mapping[str, np.ndarray]  # (evals,)
    accuracy: Mapping[str, np.ndarray]  # (seeds, evals)
    percentiles: Mapping[str, np.ndarray]  # (3, percentile evals): 15/50/85th of one example unit's input
    percentile_steps: Mapping[str, np.ndarray]


def shared_rate_figure(panels: Sequence[SharedRatePanel], init_std: float) -> Figure:
    """Figure 1 at shared learning rates: one row per panel, columns (a) accuracy, (b) vanilla's and (c) BN's inputs."""
    figure = new_figure((13, 1.2 + 2.9 * len(panels)))
    grid = figure.subplots(len(panels), 3, sharex=True, squeeze=False)
    for (accuracy_axes, *percentile_axes), panel in zip(grid, panels, strict=True):
        draw_accuracy(accuracy_axes, panel.steps, panel.accuracy)
        accuracy_axes.set_ylabel(f"lr = {compact(panel.lr)}\ntest accuracy")
        # (b) and (c) share y within the row so the drift of one is read against the stillness of the other
        percentile_axes[1].sharey(percentile_axes[0])
        for axes, variant in zip(percentile_axes, ("vanilla", "bn"), strict=True):
            draw_percentiles(axes, panel.percentile_steps[variant], panel.percentiles[variant], COLORS[variant])
        percentile_axes[0].set_ylabel("sigmoid input")
    titles = ("(a) test accuracy", f"(b) {LABELS['vanilla']}: sigmoid input", f"(c) {LABELS['bn']}: sigmoid input")
    for axes, title in zip(grid[0], titles, strict=True):
        axes.set_title(title)
    for axes in grid[-1]:
        axes.set_xlabel("training step (log scale)")
    figure.suptitle(f"Both nets train at the same learning rate (one per row), init std σ = {compact(init_std)}")
    accuracy_handles = [
        Line2D([], [], color=COLORS[v], label=f"{LABELS[v]}: mean over seeds") for v in ("vanilla", "bn")
    ]
    legend_below(figure, [*accuracy_handles, band_handle(), *percentile_handles()], columns=7)
    return figure
