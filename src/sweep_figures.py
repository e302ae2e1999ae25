"""The sweep's figures: the robustness map (accuracy per learning rate × init std, and BN − vanilla) and the paper's
Figure 1 at shared learning rates, as small multiples. Plain values in, a matplotlib Figure out (see src/figures.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from src.figures import (
    COLORS,
    LABELS,
    band_handle,
    cell_text,
    draw_accuracy,
    draw_percentiles,
    legend_below,
    new_figure,
    percentile_handles,
)

NEUTRAL = "0.8"  # the colour of a cell with no value


@dataclass(frozen=True)
class RobustnessGrid:
    """Final test accuracy over init std (rows, I) × learning rate (columns, L), each array (I, L); CIs NaN if none."""

    learning_rates: np.ndarray
    init_stds: np.ndarray
    vanilla: np.ndarray
    bn: np.ndarray
    difference: np.ndarray  # BN − vanilla, mean over paired seeds
    ci_low: np.ndarray
    ci_high: np.ndarray
    confidence: float

    def __post_init__(self) -> None:
        expected = (len(self.init_stds), len(self.learning_rates))
        for name in ("vanilla", "bn", "difference", "ci_low", "ci_high"):
            shape = np.shape(getattr(self, name))
            if shape != expected:
                raise ValueError(f"RobustnessGrid.{name} must be (init_stds, learning_rates) = {expected}, got {shape}")


@dataclass(frozen=True)
class SharedRatePanel:
    """One row of the shared-rate figure: both variants trained at `lr`; arrays keyed by variant."""

    lr: float
    steps: Mapping[str, np.ndarray]  # (evals,)
    accuracy: Mapping[str, np.ndarray]  # (seeds, evals)
    percentiles: Mapping[str, np.ndarray]  # (3, percentile evals): 15/50/85th of one example unit's input
    percentile_steps: Mapping[str, np.ndarray]


def robustness_map_figure(grid: RobustnessGrid) -> Figure:
    """Heatmaps over init std × learning rate: each variant's accuracy (%), and BN − vanilla (pp) with CI marks."""
    rows, columns = grid.vanilla.shape
    figure = new_figure((4.2 + 1.3 * columns, 2.2 + 0.45 * rows))
    panels = figure.subplots(1, 3, sharey=True)
    accuracy_norm = Normalize(0, 100)
    viridis = matplotlib.colormaps["viridis"].with_extremes(bad=NEUTRAL)
    for axes, variant in zip(panels[:2], ("vanilla", "bn"), strict=True):
        percent = 100 * getattr(grid, variant)
        image = _heatmap(axes, percent, [[f"{v:.1f}" for v in row] for row in percent], viridis, accuracy_norm)
        axes.set_title(f"{LABELS[variant]}: test accuracy (%)")
    figure.colorbar(image, ax=panels[:2], location="bottom", shrink=0.6, aspect=40, label="test accuracy (%)")

    difference = 100 * grid.difference
    # symmetric limits put "no difference" on the diverging map's neutral middle
    limit = max(float(np.nanmax(np.abs(difference), initial=0.0)), 1.0)
    excludes_zero = (grid.ci_low > 0) | (grid.ci_high < 0)
    texts = [
        [f"{d:+.1f}" + ("*" if marked else "") for d, marked in zip(row, marks, strict=True)]
        for row, marks in zip(difference, excludes_zero, strict=True)
    ]
    diverging = matplotlib.colormaps["RdBu_r"].with_extremes(bad=NEUTRAL)
    image = _heatmap(panels[2], difference, texts, diverging, Normalize(-limit, limit))
    panels[2].set_title(f"BN − vanilla (pp); bold *: {grid.confidence:.0%} CI excludes 0")
    figure.colorbar(image, ax=panels[2], location="bottom", shrink=0.9, aspect=20, label="BN − vanilla (pp)")

    for axes in panels:
        axes.set_xticks(range(columns), [_compact(lr) for lr in grid.learning_rates])
        axes.set_xlabel("learning rate")
    panels[0].set_yticks(range(rows), [_compact(std) for std in grid.init_stds])
    panels[0].set_ylabel("init std σ")
    figure.suptitle("Final test accuracy, mean over seeds, across learning rate and weight-init std")
    return figure


def shared_rate_figure(panels: Sequence[SharedRatePanel], init_std: float) -> Figure:
    """Figure 1 at shared learning rates: one row per panel, columns (a) accuracy, (b) vanilla's and (c) BN's inputs."""
    figure = new_figure((13, 1.2 + 2.9 * len(panels)))
    grid = figure.subplots(len(panels), 3, sharex=True, squeeze=False)
    for (accuracy_axes, *percentile_axes), panel in zip(grid, panels, strict=True):
        draw_accuracy(accuracy_axes, panel.steps, panel.accuracy)
        accuracy_axes.set_ylabel(f"lr = {_compact(panel.lr)}\ntest accuracy")
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
    figure.suptitle(f"Both nets train at the same learning rate (one per row), init std σ = {_compact(init_std)}")
    accuracy_handles = [
        Line2D([], [], color=COLORS[v], label=f"{LABELS[v]}: mean over seeds") for v in ("vanilla", "bn")
    ]
    legend_below(figure, [*accuracy_handles, band_handle(), *percentile_handles()], columns=7)
    return figure


def _heatmap(axes: Axes, values: np.ndarray, texts: Sequence[Sequence[str]], cmap: Colormap, norm: Normalize):
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        text, background = ("n/a", NEUTRAL) if np.isnan(value) else (texts[row][column], cmap(norm(value)))
        weight = "bold" if text.endswith("*") else "normal"
        cell_text(axes, column, row, text, background, fontsize=7, fontweight=weight)
    return image


def _compact(number: float) -> str:
    """Two significant digits without trailing zeros: 0.0316 -> "0.032", 100.0 -> "100"."""
    return f"{float(f'{number:.2g}'):g}"
