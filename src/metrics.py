"""Print results/metrics.json as a person reads it, within 120 columns: `python -m src.metrics`.

`dvc metrics show` sets every key of every metrics file side by side in one row, hundreds of columns here;
`dvc metrics diff` stays the way to compare two runs, one metric a line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

from src.cli import OneLineParser, report_user_errors
from src.errors import StudyError
from src.results import read_json

METRICS = Path("results/metrics.json")
WIDTH = 120


def claims_table(claims: Mapping[str, Mapping]) -> list[str]:
    """One line per claim of the paper: its verdict, effect and confidence interval."""
    rows = [f"{'claim':<24}{'verdict':<14}{'effect':>11}  interval", "-" * 72]
    for key, claim in claims.items():
        scale = claim["scale"]
        interval = f"[{_effect(claim['ci_low'], scale)}, {_effect(claim['ci_high'], scale)}]"
        rows.append(f"{key:<24}{claim['verdict']:<14}{_effect(claim['effect'], scale):>11}  {interval}")
    return rows


def variants_table(metrics: Mapping) -> list[str]:
    """train@: each variant at its own tuned rate, side by side."""
    targets = sorted(key for key in metrics["vanilla"] if key.startswith("steps_to_"))
    cells: dict[str, Callable[[Mapping], str]] = {
        "learning rate (tuned)": lambda m: f"{m['lr']:.4g}",
        "final test accuracy (BN: Algorithm 2)": lambda m: _percent(m["test_accuracy"]["mean"]),
        "final test accuracy (moving averages)": lambda m: _percent(m["test_accuracy_moving_average"]),
        "final test loss": lambda m: f"{m['test_loss_mean']:.3f}",
        **{
            f"steps to {target.removeprefix('steps_to_')} % (median of seeds)": (
                lambda m, target=target: _steps(m[target]["median"])
            )
            for target in targets
        },
        "diverged seeds": lambda m: f"{m['n_diverged']} of {m['n_seeds']}",
    }
    rows = [f"{'train@, each variant at its tuned rate':<44}{'vanilla':>14}{'BN':>14}", "-" * 72]
    rows += [f"{name:<44}{cell(metrics['vanilla']):>14}{cell(metrics['bn']):>14}" for name, cell in cells.items()]
    return rows


def map_table(grid: Mapping[str, Mapping[str, Mapping]]) -> list[str]:
    """sweep@: BN − vanilla final test accuracy per (init std, lr) cell, * where its interval excludes 0."""
    rates = [key.removeprefix("lr_") for key in next(iter(grid.values()))]
    rows = [
        "sweep@: BN − vanilla final test accuracy in pp, mean of seeds; * where the paired interval excludes 0",
        "init std / lr".ljust(14) + "".join(f"{rate:>10}" for rate in rates),
    ]
    for init_std, cells in grid.items():
        texts = [f"{100 * cell['difference']:+9.1f}{'*' if _excludes_zero(cell) else ' '}" for cell in cells.values()]
        rows.append(f"{init_std.removeprefix('init_std_'):<14}" + "".join(texts))
    return rows


def render(metrics: Mapping) -> str:
    return "\n".join(
        [*claims_table(metrics["claims"]), "", *variants_table(metrics), "", *map_table(metrics["robustness_map"])]
    )


def _excludes_zero(cell: Mapping) -> bool:
    return cell["ci_low"] is not None and (cell["ci_low"] > 0 or cell["ci_high"] < 0)


def _effect(value: float | None, scale: str) -> str:
    if value is None:
        return "n/a"
    if scale == "ratio":
        return f"{value:.2f}×"
    return f"{100 * value:+.2f} pp" if scale == "accuracy" else f"{value:+.3f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _steps(value: float | None) -> str:
    return "not reached" if value is None else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path, default=METRICS, help=f"a metrics file (default: {METRICS})")
    path = parser.parse_args(argv).path
    try:
        text = render(read_json(path))
    except (KeyError, TypeError, AttributeError) as error:  # written by another version of the study, or not by it
        raise StudyError(
            f"{path}: not a metrics file of this study (no {error} where expected); `dvc repro evaluate` rewrites it"
        ) from None
    print(text)


if __name__ == "__main__":
    report_user_errors(main)
