"""The figures draw what they are given: the right numbers, on the right scales, with legends clear of the data; and
the report's figures are drawn from the comparison."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from src.report.drawing import LABELS
from src.report.figure1 import SharedRatePanel
from src.results.tune import TuningTrial

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
