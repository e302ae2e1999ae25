"""Optuna tunes one variant's learning rate, fairly: both variants get the same search space, budget and steps.

    python -m src.tune --variant bn                 # params.yaml's tune section
    python -m src.tune --variant bn --trials 48 --storage postgresql://user@db-host/optuna   # on each machine

The trials of a batch train as one K-member model from one init (tune.seed) on one data order (common random
numbers) and are scored on the validation split; the test split is never read. The study, its storage and identity
are src/study.py; the worker loop, the budget, pruning and dead workers are src/trials.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import optuna
import torch

from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, Params, PositiveInt, load_params, validate_option, with_overrides
from src.data.splits import PROCESSED_DIR, load_split
from src.engine.device import resolve_device
from src.engine.network import build_model
from src.engine.schedule import schedule_for
from src.engine.trainer import OnEval, Trainer, TrainingData, TrainResult
from src.results.files import TuningSummary
from src.tracking import runs as tracking
from src.tune.study import HEARTBEAT_S, best_summary, default_study_name, open_storage, open_study, study_settings
from src.tune.trials import Told, TrainBatch, TrialWorker


def engine_objective(params: Params, variant: str, device: torch.device, data_dir: Path = PROCESSED_DIR) -> TrainBatch:
    """Train K learning rates at once from one init (tune.seed) on one data order; evaluate on the val split."""
    train = load_split(data_dir, "train", device, params.data.binarize)
    val = load_split(data_dir, "val", device, params.data.binarize)

    def train_batch(learning_rates: Sequence[float], on_eval: OnEval) -> TrainResult:
        seeds = [params.tune.seed] * len(learning_rates)
        schedule = schedule_for(params, "tune", learning_rates, data_seeds=[params.tune.seed])
        model = build_model(params.model, variant, seeds, device)
        return Trainer(model, TrainingData(train, val), schedule).run(on_eval=on_eval)

    return train_batch


def tune_variant(
    params: Params, variant: str, study_name: str | None = None, heartbeat_s: int = HEARTBEAT_S
) -> optuna.Study:
    """Join (or start) the variant's study and work on it until it has its budget of finished trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial would bury the progress bar
    device = resolve_device(params.train.device)
    settings = study_settings(params, variant, device.type)
    storage = open_storage(params.tune.storage, heartbeat_s)
    study = open_study(storage, study_name or default_study_name(settings), settings, params.tune)
    train_batch = engine_objective(params, variant, device)

    experiment_id = tracking.configure(params.tracking.experiment)
    tags = {"stage": "tune", "variant": variant, "study_name": study.study_name, "device": str(device)}
    run_params = {"study": settings, "trials": params.tune.trials, "trials_per_batch": params.tune.trials_per_batch}
    with tracking.parent_run(f"tune-{variant}", tags=tags, params=run_params):
        worker = TrialWorker(study, storage, params.tune, heartbeat_s)
        worker.run(train_batch, on_batch=lambda told: log_trials(study.study_name, variant, str(device), told))
        if any(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.get_trials(deepcopy=False)):
            tag_best_run(experiment_id, study.study_name, study.best_trial.number)
    return study


def log_trials(study_name: str, variant: str, device: str, told: Told) -> None:
    """One nested MLflow run per told trial: its learning rate, validation curve and final state."""
    members = [
        tracking.Member(
            name=f"{study_name}-trial{trial.number}",
            tags={"stage": "tune", "variant": variant, "study_name": study_name, "trial": str(trial.number),
                  "device": device, "best_trial": "false"},  # until tag_best_run says otherwise
            params={"lr": trial.params["lr"], "trial": trial.number},
        )
        for trial, _ in told
    ]  # fmt: skip
    runs = tracking.MemberRuns(members)
    runs.log_history(
        [
            {"val_accuracy": [(row["step"], row["accuracy"]) for row in history],
             "val_loss": [(row["step"], row["loss"]) for row in history]}
            for _, history in told
        ]
    )  # fmt: skip
    states = [{"state": "diverged" if trial.user_attrs["diverged"] else trial.state.name} for trial, _ in told]
    runs.finish(tags=states, metrics=[{} for _ in told])


def tag_best_run(experiment_id: str, study_name: str, best_number: int) -> None:
    """best_trial=true on the best trial's run (whichever worker logged it), false on a former best."""
    study_runs = {"stage": "tune", "study_name": study_name}
    tracking.set_run_tags(experiment_id, {**study_runs, "best_trial": "true"}, {"best_trial": "false"})
    tracking.set_run_tags(experiment_id, {**study_runs, "trial": str(best_number)}, {"best_trial": "true"})


def describe(best: TuningSummary) -> str:
    """One line for the terminal: the study, its best learning rate, and how its trials ended."""
    return (
        f"tune@{best.variant}: study {best.study_name}: best lr={best.best_lr:.4g} "
        f"(validation accuracy {best.best_value:.4f}); {best.n_complete} complete, "
        f"{best.n_pruned} pruned, {best.n_failed} failed; budget {best.trials_budget}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description="Tune one variant's learning rate with Optuna (defaults: params.yaml's tune).")
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    # the overrides' ranges are params.yaml's, checked by src/config.py: argparse only converts the text
    parser.add_argument("--trials", type=int, help="trial budget of the study, all workers together (tune.trials)")
    parser.add_argument(
        "--storage", help="SQLAlchemy URL of the Optuna storage, e.g. postgresql://user@host/db (tune.storage)"
    )
    parser.add_argument("--study-name", help="default: bn-mnist-<variant>-<digest of the study's settings>")
    parser.add_argument("--steps", type=int, help="training steps per trial (tune.steps)")
    parser.add_argument("--timeout", type=float, help="ask for no new batch after this many seconds (tune.timeout_s)")
    parser.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, help="seconds between a worker's heartbeats")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {"trials": args.trials, "storage": args.storage, "steps": args.steps, "timeout_s": args.timeout}
    given = {f"tune.{key}": value for key, value in overrides.items() if value is not None}
    params = with_overrides(load_params(), given)
    heartbeat_s = validate_option(PositiveInt, args.heartbeat, "--heartbeat")
    study = tune_variant(params, args.variant, study_name=args.study_name, heartbeat_s=heartbeat_s)
    print(describe(best_summary(study, args.variant, params.tune.storage, params.tune.trials)))


if __name__ == "__main__":
    report_user_errors(main)
