"""metrics.json printed for a person within 120 columns: the verdicts, both variants at their tuned rates, the map."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from src.analysis.claims import TOPICS
from src.metrics import number_format
from src.metrics.schema import ClaimMetrics, MapMetrics, Metrics, VariantMetrics, nan_as_missing

WIDTH = 120


def claims_table(claims: Mapping[str, ClaimMetrics]) -> list[str]:
    """One line per primary claim: its verdict after the correction, effect, interval and how many specifications
    of its design agree."""
    rows = [
        f"{'claim':<32}{'verdict':<15}{'effect':>11}  {'interval':<24}its design's specifications agreeing",
        "-" * 120,
    ]
    for key, claim in claims.items():
        effect = number_format.effect(nan_as_missing(claim.effect), claim.scale)
        interval = number_format.interval(claim.estimate, claim.scale)
        agreeing = f"{claim.specifications['agreeing']} of {claim.specifications['total']}"
        rows.append(f"{key:<32}{claim.verdict:<15}{effect:>11}  {interval:<24}{agreeing}")
    return rows


def glance_table(claims: Mapping[str, ClaimMetrics]) -> list[str]:
    """The primary claims as a Markdown table narrow enough for the README, which quotes it from the report."""
    corrections = ", ".join(dict.fromkeys(claim.correction for claim in claims.values()))
    rows = [
        f"| claim | design | verdict | effect [interval] | p ({corrections}) | its design's specifications agreeing |",
        "|---|---|---|---|---|---|",
    ]
    for key, claim in claims.items():
        topic, design = key.rsplit("_", 1)
        interval = number_format.interval(claim.estimate, claim.scale)
        # with no pairs there is no effect: the interval's cell says so ("n/a (0 pairs)")
        found = interval if claim.effect is None else f"{number_format.effect(claim.effect, claim.scale)} {interval}"
        agreeing = f"{claim.specifications['agreeing']} of {claim.specifications['total']}"
        p_value = number_format.p_value(claim.p_adjusted)
        rows.append(f"| {TOPICS[topic].short} | {design} | **{claim.verdict}** | {found} | {p_value} | {agreeing} |")
    return rows


def variants_table(metrics: Metrics) -> list[str]:
    """train@: each variant at its own tuned rate, side by side."""
    cells: dict[str, Callable[[VariantMetrics], str]] = {
        "learning rate (tuned)": lambda m: number_format.number(m.lr, ".4g"),
        "final test accuracy (BN: Algorithm 2)": lambda m: number_format.percent(m.test_accuracy.mean),
        "final test accuracy (moving averages)": lambda m: number_format.percent(m.test_accuracy_moving_average),
        "final test loss": lambda m: number_format.number(m.test_loss_mean, ".3f"),
        **{
            f"steps to {target} % (median of seeds)": lambda m, target=target: number_format.steps(
                m.steps_to[target].median
            )
            for target in metrics.vanilla.steps_to
        },
        "diverged seeds": lambda m: f"{m.n_diverged} of {m.n_seeds}",
    }
    rows = [f"{'train@, each variant at its tuned rate':<44}{'vanilla':>14}{'BN':>14}", "-" * 72]
    rows += [f"{name:<44}{cell(metrics.vanilla):>14}{cell(metrics.bn):>14}" for name, cell in cells.items()]
    return rows


def map_table(robustness_map: MapMetrics) -> list[str]:
    """sweep@: BN − vanilla final test accuracy per (init std, lr) cell, * where significant after the correction,
    † where neither net trained in any seed."""
    grid = robustness_map.grid
    rates = [key.removeprefix("lr_") for key in next(iter(grid.values()))]
    rows = [
        "sweep@: BN − vanilla final test accuracy in pp, mean of seeds",
        f"* significant after {robustness_map.correction}; † neither net trained in any seed",
        "init std / lr".ljust(14) + "".join(f"{rate:>10}" for rate in rates),
    ]
    for init_std, cells in grid.items():
        texts = [
            f"{100 * nan_as_missing(cell.effect):+8.1f}{'*' * bool(cell.side) + '†' * cell.both_failed:<2}"
            for cell in cells.values()
        ]
        rows.append(f"{init_std.removeprefix('init_std_'):<14}" + "".join(texts))
    return rows


def render(metrics: Metrics) -> str:
    return "\n".join(
        [*claims_table(metrics.claims), "", *variants_table(metrics), "", *map_table(metrics.robustness_map)]
    )
