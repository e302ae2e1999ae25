"""Stage sweep@variant: one variant over a fixed grid of learning rate × init std × seed, every setting shared.

Both variants run the same grid with the same seeds: the same data order and the same initial draws per seed, so
every BN − vanilla comparison is paired. The grid is cut into units of work (sweep.unit) queued in an Optuna study
(sweep.storage): this stage queues the units not done, trains them, waits for those that workers
(`python -m src.sweep --worker`, here or on other machines) hold, and writes its outputs from every unit's stored
result in the grid's order. A killed stage resumes with `dvc repro`: done units are kept, a unit in training resumes
from its last checkpoint (.checkpoints/).
"""

from __future__ import annotations

from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params
from src.data.splits import PROCESSED_DIR, load_split
from src.results import files
from src.results.files import SweepSummary, stage_dir
from src.stores.databases import redact
from src.sweep.heartbeat import storage_errors
from src.sweep.unit_result import gather
from src.sweep.work import SweepPlan, stage_run, work_through
from src.tracking import runs
from src.training.runner import log_training_data
from src.tune.study import open_storage


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    plan = SweepPlan.of(params, variant)
    url = params.sweep.storage
    storage = open_storage(url, params.sweep.heartbeat_s)
    runs.configure(params.tracking.experiment)

    with storage_errors(url):
        queue = plan.queue(storage, create=True)
        with stage_run(plan, queue) as made_here:
            trained = work_through(plan, queue, made_here)
            names = [plan.unit_name(unit) for unit in range(len(plan.units))]
            gathered = gather(len(plan.members), queue.results(names))
            directory, members = stage_dir("sweep", variant), plan.members
            files.write_history(directory, gathered.result, members)
            files.write_sigmoid_inputs(directory, gathered.result, members)
            files.write_final(directory, gathered.result.final, members)
            files.write_predictions(directory, gathered.predictions, members)
            SweepSummary(variant=variant, members=len(members), steps=params.sweep.steps,
                         device=str(plan.device)).write(directory)  # fmt: skip
            log_training_data(load_split(PROCESSED_DIR, "train", plan.device, params.data.binarize))
            runs.log_results({"units": len(plan.units), "units_trained_here": len(trained)}, artifacts=[])
    print(
        f"sweep@{variant}: {len(plan.members)} members in {len(plan.units)} unit(s) of study {queue.study.study_name} "
        f"in {redact(url)}: {len(trained)} trained here, {len(plan.units) - len(trained)} by other workers or before"
    )


if __name__ == "__main__":
    report_user_errors(main)
