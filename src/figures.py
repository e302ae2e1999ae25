"""The report's figures: the paper's Figure 1 (a, b, c), the learning-rate search and the confusion matrices.

Every function takes plain results, draws one PNG with matplotlib's Agg backend (no display needed) and
writes it atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from src.atomic import atomic_path

if TYPE_CHECKING:
    from src.evaluate import Curves, Percentiles, Trial

LABELS = {"vanilla": "without BN", "bn": "with BN"}
COLORS = {"vanilla": "tab:blue", "bn": "tab:red"}
DPI = 150
matplotlib.use("Agg")  # files only: no display, whatever the machine has
# Figure 1(a) in the paper starts its y axis at 0.7 so the end of training is readable; lower only if needed.
ACCURACY_AXIS_FLOOR = 0.7


def plot_test_accuracy(curves: Mapping[str, Curves], path: Path) -> None:
    """Figure 1(a): test accuracy vs steps, the mean over seeds with the min–max range over seeds as a band."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    lowest = ACCURACY_AXIS_FLOOR
    for variant, curve in curves.items():
        mean, low, high = _mean_and_range(curve.accuracy)
        axes.plot(curve.steps, mean, color=COLORS[variant], label=f"{LABELS[variant]} (mean of {len(curve.seeds)})")
        axes.fill_between(curve.steps, low, high, color=COLORS[variant], alpha=0.2, linewidth=0)
        after_start = curve.steps >= 0.1 * curve.steps[-1]
        lowest = min(lowest, float(np.nanmin(low[after_start], initial=lowest)))
    axes.set_ylim(max(0.0, lowest - 0.02), 1.005)  # a curve at 100 % stays visible above the frame
    axes.set_xlabel("training step")
    axes.set_ylabel("test accuracy")
    axes.set_title("(a) Test accuracy; band: min–max over seeds")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    _save(figure, path)


def plot_sigmoid_inputs(percentiles: Mapping[str, Percentiles], path: Path, *, seed: int, unit: int) -> None:
    """Figure 1(b, c): 15/50/85th percentiles of one last-hidden-layer sigmoid's input, one panel per variant.

    The panels share the y axis so a drift in one and its absence in the other are on the same scale.
    """
    figure, panels = plt.subplots(1, len(percentiles), figsize=(10, 4), sharey=True, squeeze=False)
    for axes, letter, (variant, curve) in zip(panels[0], "bcdefg", percentiles.items(), strict=False):
        color = COLORS[variant]
        axes.fill_between(curve.steps, curve.p15, curve.p85, color=color, alpha=0.15, linewidth=0)
        axes.plot(curve.steps, curve.p85, color=color, linestyle="--", label="85th")
        axes.plot(curve.steps, curve.p50, color=color, label="50th")
        axes.plot(curve.steps, curve.p15, color=color, linestyle=":", label="15th")
        axes.set_title(f"({letter}) {LABELS[variant]}")
        axes.set_xlabel("training step")
        axes.grid(alpha=0.3)
        axes.legend(title="percentile", loc="best")
    panels[0][0].set_ylabel("input to the sigmoid")
    figure.suptitle(f"A last-hidden-layer sigmoid's input over training (seed {seed}, unit {unit})")
    _save(figure, path)


def plot_lr_search(trials: Mapping[str, Sequence[Trial]], best_lr: Mapping[str, float | None], path: Path) -> None:
    """Validation accuracy against learning rate for every trial: complete filled, pruned hollow, diverged crossed.

    A trial with no value (failed, or pruned before reporting one) is drawn on the x axis as a triangle.
    """
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for variant, study in trials.items():
        color = COLORS[variant]
        kinds = {
            "complete": (
                [t for t in study if _has_value(t) and t.state == "COMPLETE"],
                {"marker": "o", "color": color},
            ),
            "pruned": (
                [t for t in study if _has_value(t) and t.state == "PRUNED"],
                {"marker": "o", "facecolors": "none", "edgecolors": color},
            ),
            "diverged": ([t for t in study if t.diverged], {"marker": "x", "color": color}),
            "no value": ([t for t in study if not t.diverged and not _has_value(t)], {"marker": "v", "color": color}),
        }
        for kind, (chosen, style) in kinds.items():
            if chosen:
                values = [t.value if _has_value(t) else 0.0 for t in chosen]
                axes.scatter([t.lr for t in chosen], values, label=f"{LABELS[variant]}: {kind}", alpha=0.8, **style)
        if best_lr.get(variant) is not None:
            axes.axvline(best_lr[variant], color=color, linestyle="--", alpha=0.6)
    axes.set_xscale("log")
    axes.set_ylim(-0.03, 1.02)
    axes.set_xlabel("learning rate (dashed: the tuned one)")
    axes.set_ylabel("validation accuracy")
    axes.set_title("Learning-rate search, every trial of both studies")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize="small", loc="lower left")
    _save(figure, path)


def _has_value(trial: Trial) -> bool:
    # a diverged trial is drawn as such whatever value it was given
    return not trial.diverged and trial.value is not None and math.isfinite(trial.value)


def plot_confusion(confusions: Mapping[str, np.ndarray], path: Path) -> None:
    """Test-set confusion matrices (true × predicted), counts summed over seeds, log-scaled so errors show."""
    figure, panels = plt.subplots(1, len(confusions), figsize=(11, 5), squeeze=False)
    for axes, (variant, confusion) in zip(panels[0], confusions.items(), strict=False):
        norm = LogNorm(vmin=0.5, vmax=max(float(confusion.max()), 1.0))
        image = axes.imshow(np.maximum(confusion, 0.5), cmap="viridis", norm=norm)
        classes = confusion.shape[0]
        for true in range(classes):
            for predicted in range(classes):
                count = int(confusion[true, predicted])
                if count:
                    # dark text on the bright end of viridis, light text on the dark end
                    color = "black" if norm(count) > 0.6 else "white"
                    axes.text(predicted, true, str(count), ha="center", va="center", fontsize=6, color=color)
        axes.set_xticks(range(classes))
        axes.set_yticks(range(classes))
        axes.set_xlabel("predicted digit")
        axes.set_ylabel("true digit")
        accuracy = np.trace(confusion) / confusion.sum()
        axes.set_title(f"{LABELS[variant]}: accuracy {accuracy:.2%}")
        figure.colorbar(image, ax=axes, shrink=0.8, label="test images, summed over seeds")
    _save(figure, path)


def _mean_and_range(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # a seed that was not evaluated at a step (NaN) is left out of that step
    finite = np.where(np.isfinite(values), values, np.nan)
    return np.nanmean(finite, axis=0), np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)


def _save(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as temporary:
        # the temporary name ends in .tmp: the format is given, not guessed from it
        figure.savefig(temporary, format="png", dpi=DPI)
    plt.close(figure)
