"""Stage edge@variant: each seed's largest usable learning rate, refined between the sweep's grid rates.

Reads sweep@variant's final.csv: for every seed and init std of params.edge, between the largest swept rate that
trained and the next one up, `edge.rates_between` more rates train like the sweep's members (same schedule, seeds,
data orders and initial draws), so the edge is known to a factor finer than the grid's step.
"""

from __future__ import annotations

from src import paths
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params
from src.results.edge import EdgeSummary
from src.results.members import write_final
from src.results.sweep import read_sweep_final
from src.training.members import MemberTable, edge_brackets
from src.training.runner import train_members


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    swept = read_sweep_final(variant, params.sweep)
    brackets = edge_brackets(*swept, params.sweep, params.edge, params.evaluate.usable_accuracy)
    members = MemberTable.refining(brackets, params.edge.rates_between)

    with train_members(params.edge_run, variant, members, log_percentiles=False) as trained:
        with trained.clock.phase("export"):
            directory = paths.stage_dir("edge", variant)
            write_final(directory, trained.result.final, members)
            device = str(trained.device)
            EdgeSummary(variant=variant, members=len(members), steps=params.sweep.steps, device=device).write(directory)
        trained.finish()
    print(trained.describe(f"edge@{variant}", params.sweep.steps))


if __name__ == "__main__":
    report_user_errors(main)
