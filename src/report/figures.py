"""The report's figures, drawn with the kit of drawing.py.

train@: the paper's Figure 1 (a, b, c), the learning-rate search and the confusion matrices; sweep@: the robustness
map (accuracy per learning rate × init std, and BN − vanilla) and Figure 1 at shared learning rates; the claims'
specification curves. Each figure function takes plain values and returns a matplotlib Figure; `report_figures`
hands them the comparison's numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from src.analysis.claims import Claim
from src.analysis.comparison import Comparison
from src.metrics import number_format
from src.report.drawing import LABELS, NEUTRAL, cell_text, compact, heatmap, legend_below, new_figure
from src.report.figure1 import SharedRatePanel, accuracy_figure, shared_rate_figure, sigmoid_inputs_figure
from src.report.tuning_figure import lr_search_figure
from src.results.sweep import SweepResults


def confusion_figure(confusions: Mapping[str, np.ndarray]) -> Figure:
    """Test-set confusion matrices (true × predicted), counts summed over seeds, log-scaled so errors show."""
    figure = new_figure((11, 5))
    panels = figure.subplots(1, len(confusions), squeeze=False)[0]
    for axes, (variant, confusion) in zip(panels, confusions.items(), strict=False):
        norm = LogNorm(vmin=0.5, vmax=max(float(confusion.max()), 1.0))
        cmap = matplotlib.colormaps["viridis"]
        image = axes.imshow(np.maximum(confusion, 0.5), cmap=cmap, norm=norm)
        for (true, predicted), count in np.ndenumerate(confusion):
            if count:
                cell_text(axes, predicted, true, str(int(count)), cmap(norm(count)), fontsize=6)
        classes = confusion.shape[0]
        axes.set_xticks(range(classes))
        axes.set_yticks(range(classes))
        axes.set_xlabel("predicted digit")
        axes.set_ylabel("true digit")
        axes.set_title(f"{LABELS[variant]}: accuracy {np.trace(confusion) / confusion.sum():.2%}")
        figure.colorbar(image, ax=axes, shrink=0.8, label="test images, summed over seeds")
    return figure


# --- sweep@: the robustness map and Figure 1 at shared rates --------------------------------------------------


@dataclass(frozen=True)
class RobustnessGrid:
    """Final test accuracy over init std (rows, I) × learning rate (columns, L), each array (I, L); CIs NaN if none."""

    learning_rates: np.ndarray
    init_stds: np.ndarray
    vanilla: np.ndarray
    bn: np.ndarray
    difference: np.ndarray  # BN − vanilla, mean over paired seeds
    significant: np.ndarray  # bool: BN − vanilla is significant after the map's correction
    did_not_train: Mapping[str, np.ndarray]  # per variant (I, L): the share of its seeds that ended at chance
    both_failed: np.ndarray  # bool: no seed of either net trained, so BN − vanilla compares two failures
    correction: str  # the map's correction, named in the title

    def __post_init__(self) -> None:
        expected = (len(self.init_stds), len(self.learning_rates))
        for name in ("vanilla", "bn", "difference", "significant", "both_failed"):
            shape = np.shape(getattr(self, name))
            if shape != expected:
                raise ValueError(f"RobustnessGrid.{name} must be (init_stds, learning_rates) = {expected}, got {shape}")


def robustness_map_figure(grid: RobustnessGrid) -> Figure:
    """Heatmaps over init std × learning rate: each variant's accuracy (%), and BN − vanilla (pp) with CI marks."""
    rows, columns = grid.vanilla.shape
    figure = new_figure((4.2 + 1.5 * columns, 2.4 + 0.6 * rows))
    panels = figure.subplots(1, 3, sharey=True)
    accuracy_norm = Normalize(0, 100)
    viridis = matplotlib.colormaps["viridis"].with_extremes(bad=NEUTRAL)
    for axes, variant in zip(panels[:2], ("vanilla", "bn"), strict=True):
        percent, failed = 100 * getattr(grid, variant), grid.did_not_train[variant]
        texts = [
            [
                f"{value:.1f}" + (f"\n{share:.0%} ✗" if share > 0 else "")
                for value, share in zip(row, shares, strict=True)
            ]
            for row, shares in zip(percent, failed, strict=True)
        ]
        image = heatmap(axes, percent, texts, viridis, accuracy_norm)
        axes.set_title(f"{LABELS[variant]}: test accuracy (%); ✗: share of seeds left at chance")
    figure.colorbar(image, ax=panels[:2], location="bottom", shrink=0.6, aspect=40, label="test accuracy (%)")

    difference = 100 * grid.difference
    # symmetric limits put "no difference" on the diverging map's neutral middle
    limit = max(float(np.nanmax(np.abs(difference), initial=0.0)), 1.0)
    # † before *: a cell's text ending in * is drawn bold
    texts = [
        [f"{d:+.1f}{'†' if failed else ''}{'*' if marked else ''}" for d, failed, marked in zip(*row, strict=True)]
        for row in zip(difference, grid.both_failed, grid.significant, strict=True)
    ]
    diverging = matplotlib.colormaps["RdBu_r"].with_extremes(bad=NEUTRAL)
    image = heatmap(panels[2], difference, texts, diverging, Normalize(-limit, limit))
    panels[2].set_title(f"BN − vanilla (pp); bold *: significant after {grid.correction}; †: neither trained")
    figure.colorbar(image, ax=panels[2], location="bottom", shrink=0.9, aspect=20, label="BN − vanilla (pp)")

    for axes in panels:
        axes.set_xticks(range(columns), [compact(lr) for lr in grid.learning_rates])
        axes.set_xlabel("learning rate")
    panels[0].set_yticks(range(rows), [compact(std) for std in grid.init_stds])
    panels[0].set_ylabel("init std σ")
    figure.suptitle("Final test accuracy, mean over seeds, across learning rate and weight-init std")
    return figure


# --- the specification curves ------------------------------------------------------------------------------------

VERDICT_COLORS = {"holds": "tab:green", "contradicted": "tab:red", "not shown": "0.45", "not estimable": "0.8"}


def specification_figure(claims: Sequence[Claim]) -> Figure:
    """One panel per claim topic: the effect and interval under every specification, sorted by effect, coloured by
    its verdict (each on its own), shared designs filled and tuned ones hollow, the primary ones starred."""
    topics = list(dict.fromkeys(claim.topic.key for claim in claims))
    by_topic = {claim.topic.key: claim for claim in claims}
    figure = new_figure((11, 1.0 + 2.3 * len(topics)))
    for axes, topic in zip(figure.subplots(len(topics), 1, squeeze=False)[:, 0], topics, strict=True):
        _draw_curve(axes, by_topic[topic])
    handles = [Patch(color=color, label=verdict) for verdict, color in VERDICT_COLORS.items()]
    handles += [
        Line2D([], [], linestyle="none", marker="o", color="0.3", label="shared rates"),
        Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", color="0.3", label="tuned rates"),
        Line2D([], [], linestyle="none", marker="*", markersize=12, color="0.3", label="primary"),
    ]
    legend_below(figure, handles, columns=len(handles))
    return figure


def _draw_curve(axes: Axes, claim: Claim) -> None:
    topic, verdicts = claim.topic, claim.spec_verdicts()
    order = sorted(
        range(len(claim.curve)),
        key=lambda k: (np.isnan(claim.curve[k].estimate.effect), claim.curve[k].estimate.effect),
    )
    for x, k in enumerate(order):
        spec, color = claim.curve[k], VERDICT_COLORS[verdicts[k]]
        estimate = spec.estimate
        if estimate.estimable:
            axes.plot([x, x], [estimate.ci_low, estimate.ci_high], color=color, linewidth=1.5)
        if np.isfinite(estimate.effect):
            face = color if spec.design == "shared" else "white"
            style = {"marker": "*", "markersize": 12} if spec.primary else {"marker": "o", "markersize": 5}
            axes.plot(x, estimate.effect, linestyle="none", color=color, markerfacecolor=face, **style)
    axes.axhline(topic.no_effect, color="0.3", linewidth=0.8, linestyle="--")
    if topic.scale == "ratio":
        axes.set_yscale("log")
    axes.set_xticks([])
    axes.set_xlim(-0.7, len(order) - 0.3)
    axes.set_ylabel({"ratio": "BN / vanilla", "accuracy": "BN − vanilla", "plain": "BN − vanilla"}[topic.scale])
    counts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(Counter(verdicts).items()))
    axes.set_title(f"{topic.title}: {len(verdicts)} specifications, each on its own ({counts})", fontsize="medium")
    axes.grid(alpha=0.3, axis="y", which="both")


# --- the report's figures, from the comparison -------------------------------------------------------------------

FIGURE_NAMES = (
    "specifications",
    "test_accuracy",
    "sigmoid_inputs",
    "robustness_map",
    "shared_rates",
    "lr_search",
    "confusion",
)


def report_figures(comparison: Comparison) -> dict[str, Figure]:
    """file stem -> figure, every figure of the report (FIGURE_NAMES)."""
    tuned, example = comparison.tuned, comparison.example
    sweeps = {variant: shared.sweep for variant, shared in comparison.shared.items()}
    params = comparison.params
    unit = (example.seed, example.unit)
    paper_init = params.sweep.init_stds.index(params.model.init_std)
    figures = {
        "specifications": specification_figure(comparison.claims),
        "test_accuracy": accuracy_figure(
            {v: o.curves.steps for v, o in tuned.items()}, {v: o.curves.accuracy for v, o in tuned.items()}
        ),
        "sigmoid_inputs": sigmoid_inputs_figure(
            {v: o.sigmoid_inputs[unit].steps for v, o in tuned.items()},
            {v: o.sigmoid_inputs[unit].stacked() for v, o in tuned.items()},
            subtitle=f"seed {example.seed}, unit {example.unit}, each variant at its tuned rate",
        ),
        "robustness_map": robustness_map_figure(robustness_grid(comparison)),
        "shared_rates": shared_rate_figure(
            [
                shared_rate_panel(sweeps, lr, params.sweep.lr_index(lr), paper_init)
                for lr in params.evaluate.figure1_lrs
            ],
            params.model.init_std,
        ),
        "lr_search": lr_search_figure(
            {v: o.trials for v, o in tuned.items()}, {v: o.tuning.best_lr for v, o in tuned.items()}
        ),
        "confusion": confusion_figure({variant: outcome.confusion() for variant, outcome in tuned.items()}),
    }
    return {name: figures[name] for name in FIGURE_NAMES}


def robustness_grid(comparison: Comparison) -> RobustnessGrid:
    sweep = comparison.params.sweep
    shape = (len(sweep.init_stds), len(sweep.learning_rates))

    def grid(value) -> np.ndarray:
        return np.array([np.nan if value(cell) is None else value(cell) for cell in comparison.cells]).reshape(shape)

    return RobustnessGrid(
        learning_rates=np.array(sweep.learning_rates),
        init_stds=np.array(sweep.init_stds),
        vanilla=grid(lambda cell: cell.vanilla),
        bn=grid(lambda cell: cell.bn),
        difference=grid(lambda cell: cell.difference.effect),
        significant=np.array([cell.side is not None for cell in comparison.cells]).reshape(shape),
        did_not_train={v: grid(lambda cell, v=v: cell.did_not_train[v]) for v in ("vanilla", "bn")},
        both_failed=np.array([cell.both_failed for cell in comparison.cells]).reshape(shape),
        correction=number_format.CORRECTIONS[comparison.params.evaluate.map_correction],
    )


def shared_rate_panel(
    sweeps: Mapping[str, SweepResults], learning_rate: float, lr_index: int, init_index: int
) -> SharedRatePanel:
    """Both variants at one shared rate and init: accuracy per seed, and seed 0's first tracked sigmoid."""
    return SharedRatePanel(
        lr=learning_rate,
        steps={v: sweep.steps for v, sweep in sweeps.items()},
        accuracy={v: sweep.accuracy[:, init_index, lr_index] for v, sweep in sweeps.items()},
        percentiles={v: sweep.percentiles[0, init_index, lr_index, 0] for v, sweep in sweeps.items()},
        percentile_steps={v: sweep.steps for v, sweep in sweeps.items()},
    )
