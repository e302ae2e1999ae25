"""Stage edge@variant: each seed's largest usable learning rate, refined between the sweep's grid rates.

Reads sweep@variant's final.csv: for every seed and init std of params.edge, between the largest swept rate that
trained and the next one up, `edge.rates_between` more rates train like the sweep's members (same schedule, seeds,
data orders and initial draws), so the edge is known to a factor finer than the grid's step.
"""

from __future__ import annotations

from src.analysis.outcomes import edge_brackets
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params
from src.results import files
from src.results.files import SweepSummary, read_sweep_final, stage_dir
from src.training.members import MemberTable
from src.training.runner import train_members


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    brackets = edge_brackets(*read_sweep_final(variant, params), params)
    members = MemberTable.refining(brackets, params.edge.rates_between)

    with train_members(params, "edge", variant, members, log_percentiles=False) as trained:
        directory = stage_dir("edge", variant)
        files.write_final(directory, trained.result.final, members)
        summary = SweepSummary(
            variant=variant, members=len(members), steps=params.sweep.steps, device=str(trained.device)
        )
        summary.write(directory)
        trained.finish()
    print(trained.describe(f"edge@{variant}", params.sweep.steps))


if __name__ == "__main__":
    report_user_errors(main)
