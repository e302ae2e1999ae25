"""The learning-rate search: validation accuracy against learning rate for every trial of both studies, and a zoom on
where the tuned rate was chosen."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from src.report.drawing import COLORS, LABELS, legend_below, new_figure
from src.results.tune import TuningTrial

# The learning-rate search's zoom shows the trials this close to the best value: where the choice is made.
ZOOM_WIDTH = 0.02


TRIAL_MARKERS = {  # a trial's kind: its legend text and marker
    "complete": ("complete", {"marker": "o"}),
    "pruned": ("pruned (value when pruned)", {"marker": "o", "markerfacecolor": "none"}),
    "diverged": ("diverged (drawn at 0)", {"marker": "x"}),
    "no value": ("no value: failed, or pruned before reporting (drawn at 0)", {"marker": "v"}),
}


def lr_search_figure(trials: Mapping[str, Sequence[TuningTrial]], best_lr: Mapping[str, float | None]) -> Figure:
    """Validation accuracy against learning rate for every trial: the whole search, and a zoom on where it is decided.

    Complete trials are filled, pruned ones hollow; diverged (×) and value-less (▼) trials sit at 0.
    """
    figure = new_figure((12, 5.2))
    whole, zoom = figure.subplots(1, 2)
    for axes in (whole, zoom):
        _draw_trials(axes, trials, best_lr)
        axes.set_xscale("log")
        axes.set_xlabel("learning rate (log scale; dashed: the tuned one)")
        axes.grid(alpha=0.3, which="both")
    whole.set_ylim(-0.03, 1.03)
    whole.set_ylabel("validation accuracy")
    whole.set_title("(a) Every trial of both studies")
    limits = _zoom_limits(trials, best_lr)
    if limits is None:
        zoom.set_title("(b) Zoom: no trial has a value")
    else:
        zoom.set_xlim(limits[0])
        zoom.set_ylim(limits[1])
        zoom.set_title(f"(b) Zoom: trials within {ZOOM_WIDTH * 100:g} pp of the best value")
    handles = _trial_legend_handles(trials, best_lr)
    legend_below(figure, handles, columns=math.ceil(len(handles) / 2))
    return figure


def _kind(trial: TuningTrial) -> str:
    # a diverged trial is drawn as such whatever value it was given; a failed trial's value means nothing
    if trial.diverged:
        return "diverged"
    if trial.value is None or not math.isfinite(trial.value) or trial.state == "FAIL":
        return "no value"
    return "complete" if trial.state == "COMPLETE" else "pruned"


def _draw_trials(axes: Axes, trials: Mapping[str, Sequence[TuningTrial]], best_lr: Mapping[str, float | None]) -> None:
    for variant, study in trials.items():
        color = COLORS[variant]
        for kind, (text, style) in TRIAL_MARKERS.items():
            chosen = [t for t in study if _kind(t) == kind]
            if chosen:
                values = [t.value if kind in ("complete", "pruned") else 0.0 for t in chosen]
                label = f"{LABELS[variant]}: {text}"
                axes.plot(
                    [t.lr for t in chosen], values, linestyle="none", color=color, alpha=0.8, label=label, **style
                )
        if best_lr.get(variant) is not None:
            axes.axvline(best_lr[variant], color=color, linestyle="--", alpha=0.6, label=f"{LABELS[variant]}: tuned lr")


def _trial_legend_handles(trials: Mapping[str, Sequence[TuningTrial]], best_lr: Mapping[str, float | None]) -> list:
    # colour says the variant, the marker says the kind: one entry each rather than one per pair
    variants = [
        Line2D([], [], color=COLORS[v], linestyle="--", label=f"{LABELS[v]}, tuned lr {best_lr[v]:.3g}")
        if best_lr.get(v) is not None
        else Patch(color=COLORS[v], label=f"{LABELS[v]}, no tuned lr")
        for v in trials
    ]
    present = {_kind(t) for study in trials.values() for t in study}
    kinds = [
        Line2D([], [], linestyle="none", color="0.35", label=text, **style)
        for kind, (text, style) in TRIAL_MARKERS.items()
        if kind in present
    ]
    return variants + kinds


def _zoom_limits(
    trials: Mapping[str, Sequence[TuningTrial]], best_lr: Mapping[str, float | None]
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(x, y) limits around the trials within ZOOM_WIDTH of the best value, the tuned lrs and each study's best."""
    valued = {v: [t for t in study if _kind(t) in ("complete", "pruned")] for v, study in trials.items()}
    everything = [t for study in valued.values() for t in study]
    if not everything:
        return None
    complete = [t for t in everything if t.state == "COMPLETE"]
    best = max(t.value for t in complete or everything)
    study_bests = [max(study, key=lambda t: (t.state == "COMPLETE", t.value)) for study in valued.values() if study]
    shown = [t for t in everything if t.value >= best - ZOOM_WIDTH] + study_bests
    lrs = [t.lr for t in shown] + [lr for lr in best_lr.values() if lr is not None]
    low, high = min(lrs), max(lrs)
    pad = 10 ** max(0.1 * math.log10(high / low), 0.1)  # decades of room, so edge markers are whole
    values = [t.value for t in shown]
    margin = 0.1 * ZOOM_WIDTH
    return (low / pad, high * pad), (min(*values, best - ZOOM_WIDTH) - margin, min(max(values) + margin, 1.0))
