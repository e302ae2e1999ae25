"""Stage sweep@variant: one variant over a fixed grid of learning rate × init std × seed, every setting shared.

Both variants run the same grid with the same seeds: the same data order and the same initial draws per seed, so
every BN − vanilla comparison is paired. The grid is cut into units of work (sweep.unit) queued in an Optuna study
(sweep.storage): this stage queues the units not done, trains them, waits for those that workers
(`python -m src.sweep --worker`, here or on other machines) hold, and writes its outputs from every unit's stored
result in the grid's order. A killed stage resumes with `dvc repro`: done units are kept, a unit in training resumes
from its last checkpoint (.checkpoints/).
"""

from __future__ import annotations

from src import paths
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, load_params
from src.data.splits import load_split
from src.results.members import write_final, write_history, write_predictions, write_sigmoid_inputs
from src.results.sweep import SweepSummary
from src.stores.databases import redact
from src.stores.optuna_storage import open_storage
from src.sweep.heartbeat import storage_errors
from src.sweep.plan import SweepPlan
from src.sweep.unit_result import gather
from src.sweep.work import stage_run, work_through
from src.tracking import runs, store
from src.training.runner import log_training_data


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    plan = SweepPlan.of(params.sweep_run, params.sweep, variant)
    url = params.sweep.storage
    storage = open_storage(url, params.sweep.heartbeat_s)
    store.configure(params.tracking.experiment)

    with storage_errors(url):
        queue = plan.queue(storage, create=True)
        with stage_run(plan, queue) as made_here:
            trained = work_through(plan, queue, made_here)
            names = [plan.unit_name(unit) for unit in range(len(plan.units))]
            gathered = gather(len(plan.members), queue.results(names))
            directory, members = paths.stage_dir("sweep", variant), plan.members
            write_history(directory, gathered.result, members)
            write_sigmoid_inputs(directory, gathered.result, members)
            write_final(directory, gathered.result.final, members)
            write_predictions(directory, gathered.predictions, members)
            device = str(plan.device)
            SweepSummary(variant=variant, members=len(members), steps=params.sweep.steps, device=device).write(
                directory
            )
            log_training_data(load_split(paths.PROCESSED_DATA, "train", plan.device, params.data.binarize))
            runs.log_results({"units": len(plan.units), "units_trained_here": len(trained)}, artifacts=[])
    print(
        f"sweep@{variant}: {len(plan.members)} members in {len(plan.units)} unit(s) of study {queue.study.study_name} "
        f"in {redact(url)}: {len(trained)} trained here, {len(plan.units) - len(trained)} by other workers or before"
    )


if __name__ == "__main__":
    report_user_errors(main)
