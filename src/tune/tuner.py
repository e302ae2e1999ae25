"""Optuna tunes one variant's learning rate, fairly: both variants get the same search space, budget and steps.

The trials of a batch train as one K-member model from one init (tune.seed) on one data order (common random
numbers) and are scored on the validation split; the test split is never read. The study and its identity are
study.py; the worker loop, the budget, pruning and dead workers are trials.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import optuna
import torch

from src import paths
from src.config import TrainingRun, TuneConfig
from src.data.splits import load_split
from src.engine.clock import PhaseClock
from src.engine.device import resolve_device
from src.engine.network import build_model
from src.engine.schedule import schedule_for
from src.engine.trainer import OnEval, Trainer, TrainingData, TrainingHistory
from src.results.tune import TuningSummary
from src.stores.optuna_storage import HEARTBEAT_S, open_storage
from src.tracking import runs, store
from src.tune.study import default_study_name, open_study, study_settings
from src.tune.trials import Told, TrainBatch, TrialWorker


def engine_objective(
    run: TrainingRun, seed: int, variant: str, device: torch.device, clock: PhaseClock | None = None
) -> TrainBatch:
    """Train K learning rates at once from one init (`seed`, tune.seed) on one data order; evaluate on the val split.
    Each batch's phases are added to `clock`."""
    train = load_split(paths.PROCESSED_DATA, "train", device, run.binarize)
    val = load_split(paths.PROCESSED_DATA, "val", device, run.binarize)

    def train_batch(learning_rates: Sequence[float], on_eval: OnEval) -> TrainingHistory:
        schedule = schedule_for(run, learning_rates, data_seeds=[seed])
        model = build_model(run.model, variant, [seed] * len(learning_rates), device)
        trainer = Trainer(model, TrainingData(train, val), schedule)
        result = trainer.run(on_eval=on_eval, label=f"tune@{variant}: a batch of {len(learning_rates)} trials")
        if clock is not None:
            for phase, seconds in trainer.clock.seconds.items():
                clock.seconds[phase] = clock.seconds.get(phase, 0.0) + seconds
        return result

    return train_batch


def tune_variant(
    run: TrainingRun, tune: TuneConfig, variant: str, study_name: str | None = None, heartbeat_s: int = HEARTBEAT_S
) -> optuna.Study:
    """Join (or start) the variant's study and work on it until it has its budget of finished trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial would bury the progress bar
    device = resolve_device(run.device)
    settings = study_settings(run, variant, device.type)
    storage = open_storage(tune.storage, heartbeat_s)
    study = open_study(storage, study_name or default_study_name(settings), settings, tune)
    clock = PhaseClock(device)
    train_batch = engine_objective(run, tune.seed, variant, device, clock)

    store.configure(run.experiment)
    trials_experiment = store.members_experiment(run.experiment, "tune")
    tags = {"stage": "tune", "variant": variant, "study_name": study.study_name, "device": str(device)}
    run_params = {"study": settings, "trials": tune.trials, "trials_per_batch": tune.trials_per_batch}
    with runs.parent_run(f"tune-{variant}", tags=tags, params=run_params, system_metrics=run.system_metrics):
        worker = TrialWorker(study, storage, tune, heartbeat_s)
        worker.run(
            train_batch,
            on_batch=lambda told: log_trials(trials_experiment, study.study_name, variant, str(device), told),
        )
        if any(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.get_trials(deepcopy=False)):
            tag_best_run(trials_experiment, study.study_name, study.best_trial.number)
    if clock.seconds:
        print(f"tune@{variant}: {clock.total():.1f} s of training on {device}; {clock.describe()}", file=sys.stderr)
    return study


def log_trials(experiment_id: str, study_name: str, variant: str, device: str, told: Told) -> None:
    """One MLflow run per told trial in the experiment `experiment_id`, a child of the active stage run: its learning
    rate, validation curve and final state."""
    members = [
        runs.Member(
            name=f"{study_name}-trial{trial.number}",
            tags={
                "stage": "tune",
                "variant": variant,
                "study_name": study_name,
                "trial": str(trial.number),
                "device": device,
                "best_trial": "false",
            },  # until tag_best_run says otherwise
            params={"lr": trial.params["lr"], "trial": trial.number},
        )
        for trial, _ in told
    ]
    trial_runs = runs.MemberRuns(members, experiment_id=experiment_id)
    trial_runs.log_history(
        [
            {
                "val_accuracy": [(row["step"], row["accuracy"]) for row in history],
                "val_loss": [(row["step"], row["loss"]) for row in history],
            }
            for _, history in told
        ]
    )
    states = [{"state": "diverged" if trial.user_attrs["diverged"] else trial.state.name} for trial, _ in told]
    trial_runs.finish(tags=states, metrics=[{} for _ in told])


def tag_best_run(experiment_id: str, study_name: str, best_number: int) -> None:
    """best_trial=true on the best trial's run (whichever worker logged it), false on a former best."""
    study_runs = {"stage": "tune", "study_name": study_name}
    runs.set_run_tags(experiment_id, {**study_runs, "best_trial": "true"}, {"best_trial": "false"})
    runs.set_run_tags(experiment_id, {**study_runs, "trial": str(best_number)}, {"best_trial": "true"})


def describe(best: TuningSummary) -> str:
    """One line for the terminal: the study, its best learning rate, and how its trials ended."""
    return (
        f"tune@{best.variant}: study {best.study_name}: best lr={best.best_lr:.4g} "
        f"(validation accuracy {best.best_value:.4f}); {best.n_complete} complete, "
        f"{best.n_pruned} pruned, {best.n_failed} failed; budget {best.trials_budget}"
    )
