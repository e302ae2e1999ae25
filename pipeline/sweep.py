"""Stage sweep@variant: one variant over a fixed grid of learning rate × init std × seed, every setting shared.

Both variants run the same grid with the same seeds: the same data order and the same initial draws per seed, so
every BN − vanilla comparison is paired. A killed run resumes from its last checkpoint (.checkpoints/).
"""

from __future__ import annotations

from src import results
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params
from src.members import MemberTable
from src.results import SweepSummary, stage_dir
from src.stage_training import train_members


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    members = MemberTable.grid(params.sweep)

    # 81 members' sigmoid inputs are in sigmoid_inputs.csv; in MLflow they would bury the accuracy curves
    with train_members(params, "sweep", variant, members, log_percentiles=False) as trained:
        directory = stage_dir("sweep", variant)
        results.write_history(directory, trained.result, members)
        results.write_sigmoid_inputs(directory, trained.result, members)
        results.write_final(directory, trained.result.final, members)
        results.write_predictions(directory, trained.predictions(), members)
        SweepSummary(variant=variant, members=len(members), steps=params.sweep.steps, device=str(trained.device)).write(
            directory
        )
        trained.finish()
    print(trained.describe(f"sweep@{variant}", params.sweep.steps))


if __name__ == "__main__":
    report_user_errors(main)
