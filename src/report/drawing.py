"""The drawing kit every figure of the report shares: one colour and label per variant, figures drawn by the Agg
canvas (no display needed, no pyplot state), legends below the axes, curves on log-step axes, heatmap cells, and an
atomic PNG writer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from src.atomic import atomic_path

# The learning-rate search's zoom shows the trials this close to the best value: where the choice is made.
ZOOM_WIDTH = 0.02
TRIAL_MARKERS = {  # a trial's kind: its legend text and marker
    "complete": ("complete", {"marker": "o"}),
    "pruned": ("pruned (value when pruned)", {"marker": "o", "markerfacecolor": "none"}),
    "diverged": ("diverged (drawn at 0)", {"marker": "x"}),
    "no value": ("no value: failed, or pruned before reporting (drawn at 0)", {"marker": "v"}),
}


LABELS = {"vanilla": "without BN", "bn": "with BN"}


COLORS = {"vanilla": "tab:blue", "bn": "tab:red"}


DPI = 150


# Figure 1(a) in the paper starts its y axis at 0.7 so the end of training is readable; lower only if needed.
ACCURACY_AXIS_FLOOR = 0.7


PERCENTILE_STYLES = {"15th": ":", "50th": "-", "85th": "--"}  # the rows of a (3, evals) percentile array, in order


def save(figure: Figure, path: str | Path) -> None:
    """Write `figure` to `path` as a PNG, whole or not at all."""
    with atomic_path(path) as temporary:
        # the temporary name ends in .tmp: the format is given, not guessed from it
        figure.savefig(temporary, format="png", dpi=DPI)


def new_figure(size: tuple[float, float]) -> Figure:
    # a Figure of its own canvas, outside pyplot: nothing global to close, and canvas.draw() works for tests
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def legend_below(figure: Figure, handles: Sequence, columns: int) -> None:
    # below the axes, never over the data
    figure.legend(handles=handles, loc="outside lower center", ncols=columns, frameon=False, fontsize="small")


def positive_steps(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # a log axis cannot show step 0
    steps = np.asarray(steps)
    keep = steps > 0
    return steps[keep], np.asarray(values, dtype=float)[..., keep]


def draw_accuracy(axes: Axes, steps: Mapping[str, np.ndarray], accuracy: Mapping[str, np.ndarray]) -> None:
    lowest = ACCURACY_AXIS_FLOOR
    for variant, values in accuracy.items():
        drawn, values = positive_steps(steps[variant], values)
        # a seed not evaluated at a step (NaN) is left out of that step; a step no seed reached is left out
        evaluated = np.isfinite(values).any(axis=0)
        drawn, values = drawn[evaluated], values[:, evaluated]
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        color = COLORS[variant]
        axes.fill_between(drawn, low, high, color=color, alpha=0.2, linewidth=0)
        axes.plot(drawn, np.nanmean(values, axis=0), color=color, label=f"{LABELS[variant]}: mean over seeds")
        after_start = drawn >= 0.1 * np.max(steps[variant], initial=0)
        lowest = min(lowest, float(np.min(low[after_start], initial=lowest)))
    axes.set_xscale("log")
    axes.set_ylim(max(0.0, lowest - 0.02), 1.005)  # a curve at 100 % stays visible below the frame
    axes.grid(alpha=0.3, which="both")


def draw_percentiles(axes: Axes, steps: np.ndarray, percentiles: np.ndarray, color: str) -> None:
    steps, percentiles = positive_steps(steps, percentiles)
    axes.fill_between(steps, percentiles[0], percentiles[2], color=color, alpha=0.15, linewidth=0)
    for values, (name, style) in zip(percentiles, PERCENTILE_STYLES.items(), strict=True):
        axes.plot(steps, values, color=color, linestyle=style, label=f"{name} percentile")
    axes.set_xscale("log")
    axes.grid(alpha=0.3, which="both")


def band_handle() -> Patch:
    return Patch(color="0.5", alpha=0.3, linewidth=0, label="min–max over seeds")


def percentile_handles() -> list:
    lines = [
        Line2D([], [], color="0.3", linestyle=style, label=f"{name} percentile")
        for name, style in PERCENTILE_STYLES.items()
    ]
    return [*lines, Patch(color="0.5", alpha=0.25, linewidth=0, label="15–85th range")]


def cell_text(axes: Axes, x: int, y: int, text: str, background, **style) -> None:
    # dark text on a light cell, light text on a dark one
    red, green, blue, _ = to_rgba(background)
    color = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
    axes.text(x, y, text, ha="center", va="center", color=color, **style)


NEUTRAL = "0.8"  # the colour of a cell with no value


def heatmap(axes: Axes, values: np.ndarray, texts: Sequence[Sequence[str]], cmap: Colormap, norm: Normalize):
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        text, background = ("n/a", NEUTRAL) if np.isnan(value) else (texts[row][column], cmap(norm(value)))
        weight = "bold" if text.endswith("*") else "normal"
        cell_text(axes, column, row, text, background, fontsize=7, fontweight=weight)
    return image


def compact(number: float) -> str:
    """Two significant digits without trailing zeros: 0.0316 -> "0.032", 100.0 -> "100"."""
    return f"{float(f'{number:.2g}'):g}"
