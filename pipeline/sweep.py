"""Stage sweep@variant: one variant over a fixed grid of learning rate × init std × seed, every setting shared.

Both variants run the same grid with the same seeds: the same data order and the same initial draws per seed, so
every BN − vanilla comparison is paired. The grid is cut into units of work (sweep.unit) queued in an Optuna study
(sweep.storage): this stage queues the units not done, trains them, waits for those that workers
(`python -m src.sweep --worker`, here or on other machines) hold, and writes its outputs from every unit's stored
result in the grid's order. A killed stage resumes with `dvc repro`: done units are kept, a unit in training resumes
from its last checkpoint (.checkpoints/).
"""

from __future__ import annotations

from src import results, tracking
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params
from src.data import PROCESSED_DIR, load_split
from src.databases import redact
from src.heartbeat import storage_errors
from src.results import SweepSummary, stage_dir
from src.stage_training import log_training_data
from src.study import open_storage
from src.sweep import SweepPlan, stage_run, work_through
from src.unit_results import gather


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    plan = SweepPlan.of(params, variant)
    url = params.sweep.storage
    storage = open_storage(url, params.sweep.heartbeat_s)
    tracking.configure(params.tracking.experiment)

    with storage_errors(url):
        queue = plan.queue(storage, create=True)
        with stage_run(plan, queue) as made_here:
            trained = work_through(plan, queue, made_here)
            names = [plan.unit_name(unit) for unit in range(len(plan.units))]
            gathered = gather(len(plan.members), queue.results(names))
            directory, members = stage_dir("sweep", variant), plan.members
            results.write_history(directory, gathered.result, members)
            results.write_sigmoid_inputs(directory, gathered.result, members)
            results.write_final(directory, gathered.result.final, members)
            results.write_predictions(directory, gathered.predictions, members)
            SweepSummary(variant=variant, members=len(members), steps=params.sweep.steps,
                         device=str(plan.device)).write(directory)  # fmt: skip
            log_training_data(load_split(PROCESSED_DIR, "train", plan.device, params.data.binarize))
            tracking.log_results({"units": len(plan.units), "units_trained_here": len(trained)}, artifacts=[])
    print(
        f"sweep@{variant}: {len(plan.members)} members in {len(plan.units)} unit(s) of study {queue.study.study_name} "
        f"in {redact(url)}: {len(trained)} trained here, {len(plan.units) - len(trained)} by other workers or before"
    )


if __name__ == "__main__":
    report_user_errors(main)
