"""Optuna tunes one variant's learning rate, fairly: both variants get the same search space, budget and steps.

A worker asks a batch of trials from the study (src/study.py: storage, budget, heartbeats, dead workers' trials),
trains them together as one K-member model (one init seed and one data order for all: common random numbers),
and tells each result. The rules:

- Objective: validation accuracy after `tune.steps` steps (the test split is never read). A trial whose loss
  turns NaN or infinite scores 0.0, below any trial that trained, so it is never the best and TPE steers away;
  it is COMPLETE with user attrs diverged=True and accuracy_at_divergence.
- Pruning: after `tune.pruning_warmup_evals` evaluations, a trial below the median of the completed trials at
  the same step is PRUNED and stops updating (the engine freezes it); its value is its last reported accuracy.
- Waiting: a worker whose free slots are all held by running trials waits for them instead of leaving, so a
  dead worker's trials are always picked up.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, Trial, TrialState
from tqdm import tqdm

from src import tracking
from src.cli import OneLineParser, UsageError, report_user_errors
from src.config import VARIANTS, Params, TuneConfig, load_params
from src.data import PROCESSED_DIR, load_split
from src.engine import Evaluation, Trainer, TrainingData, TrainResult, resolve_device, schedule_for
from src.models import build_model
from src.study import (
    FINISHED,
    GRACE_HEARTBEATS,
    HEARTBEAT_S,
    claim_trials,
    count,
    default_study_name,
    fail_dead_trials,
    heartbeats,
    open_storage,
    open_study,
    redact,
    study_settings,
)

DIVERGED_VALUE = 0.0
POLL_S = 1  # how often a waiting worker looks whether the trials it waits for have ended

OnEval = Callable[[Evaluation], Sequence[bool] | None]
TrainBatch = Callable[[Sequence[float], OnEval], TrainResult]


# --- the worker: batches of trials ---------------------------------------------------------------------------


def sampler_for_batch(seed: int, first_trial: int, trials_per_batch: int) -> optuna.samplers.TPESampler:
    """TPE seeded by (tune.seed, the batch's first trial number): one worker is reproducible, and workers
    that start together still draw different learning rates. The first batch is random."""
    batch_seed = int(np.random.SeedSequence([seed, first_trial]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=batch_seed, n_startup_trials=trials_per_batch)


@dataclass(frozen=True)
class Plan:
    """What one worker does: params.yaml's tune section (with the command line's overrides) as plain values."""

    budget: int
    trials_per_batch: int
    lr_min: float
    lr_max: float
    steps: int
    seed: int
    timeout_s: float | None = None
    heartbeat_s: int = HEARTBEAT_S

    @classmethod
    def from_config(cls, tune: TuneConfig, heartbeat_s: int = HEARTBEAT_S) -> Plan:
        return cls(
            budget=tune.trials,
            trials_per_batch=tune.trials_per_batch,
            lr_min=tune.lr_min,
            lr_max=tune.lr_max,
            steps=tune.steps,
            seed=tune.seed,
            timeout_s=tune.timeout_s,
            heartbeat_s=heartbeat_s,
        )


Told = list[tuple[FrozenTrial, list[dict]]]  # each told trial with its evaluation history


def run_worker(
    study: optuna.Study,
    storage: RDBStorage,
    train_batch: TrainBatch,
    plan: Plan,
    on_batch: Callable[[Told], None] | None = None,
) -> None:
    """Run batches of trials until the study has `plan.budget` finished trials (or the timeout has passed)."""
    deadline = None if plan.timeout_s is None else time.monotonic() + plan.timeout_s
    waiting = False
    with tqdm(total=plan.budget, desc=study.study_name, unit="trial", disable=not sys.stderr.isatty()) as bar:
        while deadline is None or time.monotonic() < deadline:
            fail_dead_trials(study, GRACE_HEARTBEATS * plan.heartbeat_s)
            trials = study.get_trials(deepcopy=False)
            finished, running = count(trials, FINISHED), count(trials, (TrialState.RUNNING,))
            _show_progress(bar, study, finished, trials)
            if finished >= plan.budget:
                return
            free = plan.budget - finished - running
            if free <= 0:
                if not waiting:
                    print(
                        f"{study.study_name}: waiting for {running} trial(s) running elsewhere "
                        f"(a dead worker's are retried after {GRACE_HEARTBEATS * plan.heartbeat_s} s)",
                        file=sys.stderr,
                    )
                waiting = True
                time.sleep(min(plan.heartbeat_s, POLL_S))
                continue
            waiting = False
            claimed = claim_trials(study, storage, plan.budget, min(plan.trials_per_batch, free))
            if claimed:
                study.sampler = sampler_for_batch(plan.seed, claimed[0].number, plan.trials_per_batch)
                told = run_batch(study, storage, claimed, train_batch, plan)
                if on_batch is not None:
                    on_batch(told)


def _show_progress(bar: tqdm, study: optuna.Study, finished: int, trials: Sequence[FrozenTrial]) -> None:
    bar.n = min(finished, bar.total)
    if count(trials, (TrialState.COMPLETE,)):
        bar.set_postfix(best=f"{study.best_value:.4f}", lr=f"{study.best_params['lr']:.3g}", refresh=False)
    bar.refresh()


def run_batch(
    study: optuna.Study,
    storage: RDBStorage,
    trials: Sequence[Trial],
    train_batch: TrainBatch,
    plan: Plan,
) -> Told:
    """Train `trials` together, report each evaluation for pruning, and tell every result."""
    with heartbeats(storage, trials, plan.heartbeat_s):
        try:
            learning_rates = [trial.suggest_float("lr", plan.lr_min, plan.lr_max, log=True) for trial in trials]
            monitor = PruningMonitor(trials, last_step=plan.steps)
            result = train_batch(learning_rates, monitor.on_eval)
        except BaseException:
            for trial in trials:  # failed trials do not count: the budget is filled by others
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
    told = []
    for member, trial in enumerate(trials):
        if monitor.lost[member]:
            continue  # failed as stale by another worker while training; its retry stands in for it
        history = member_history(result, member, until=monitor.ended[member])
        final_accuracy = result.final.accuracy[member]
        try:
            told.append((tell_result(study, trial, history, final_accuracy, pruned=monitor.pruned[member]), history))
        except UpdateFinishedTrialError:
            continue
    return told


class PruningMonitor:
    """The engine's on_eval: reports each live trial's validation accuracy and stops the pruned ones."""

    def __init__(self, trials: Sequence[Trial], last_step: int):
        self.trials, self.last_step = trials, last_step
        self.pruned = [False] * len(trials)
        self.lost = [False] * len(trials)
        self.ended = [last_step] * len(trials)  # the step each trial's history ends at

    def on_eval(self, evaluation: Evaluation) -> list[bool]:
        for member, trial in enumerate(self.trials):
            if self.ended[member] < evaluation.step or evaluation.diverged[member]:
                self.ended[member] = min(self.ended[member], evaluation.step)
                continue
            try:
                trial.report(evaluation.accuracy[member], evaluation.step)
                # a trial that reached the last step has finished its training: it completes, never pruned
                if evaluation.step < self.last_step and trial.should_prune():
                    self.pruned[member], self.ended[member] = True, evaluation.step
            except UpdateFinishedTrialError:
                self.lost[member], self.ended[member] = True, evaluation.step
        return [pruned or lost for pruned, lost in zip(self.pruned, self.lost, strict=True)]


def member_history(result: TrainResult, member: int, until: int) -> list[dict]:
    """One trial's evaluations up to step `until`: {step, accuracy, loss, diverged}."""
    return [
        {
            "step": step,
            "accuracy": float(result.accuracy[i, member]),
            "loss": float(result.loss[i, member]),
            "diverged": bool(result.diverged[i, member]),
        }
        for i, step in enumerate(result.eval_steps)
        if step <= until
    ]


def tell_result(
    study: optuna.Study, trial: Trial, history: list[dict], final_accuracy: float, *, pruned: bool
) -> FrozenTrial:
    """Tell one trial's outcome: PRUNED, or COMPLETE with its final validation accuracy (0.0 when diverged).

    The final accuracy is the trained network's under BN's population statistics (Algorithm 2); the pruning
    decisions saw the moving averages BN has while it trains."""
    diverged = any(row["diverged"] for row in history)
    trial.set_user_attr("diverged", diverged)
    if diverged:
        trial.set_user_attr("accuracy_at_divergence", next(row["accuracy"] for row in history if row["diverged"]))
        return study.tell(trial, DIVERGED_VALUE)
    if pruned:
        return study.tell(trial, state=TrialState.PRUNED)
    return study.tell(trial, final_accuracy)


# --- the objective: the vectorised engine on the validation split ---------------------------------------------


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


# --- tracking and results ------------------------------------------------------------------------------------


def log_trials(study_name: str, variant: str, device: str, told: Told) -> None:
    """One nested MLflow run per told trial: its learning rate, validation curve and final state."""
    for trial, history in told:
        tracking.log_member_run(
            f"{study_name}-trial{trial.number}",
            tags={
                "stage": "tune",
                "variant": variant,
                "study_name": study_name,
                "trial": str(trial.number),
                "state": "diverged" if trial.user_attrs["diverged"] else trial.state.name,
                "device": device,
                "best_trial": "false",  # until tag_best_run says otherwise
            },
            params={"lr": trial.params["lr"], "trial": trial.number},
            metrics={
                "val_accuracy": [(row["step"], row["accuracy"]) for row in history],
                "val_loss": [(row["step"], row["loss"]) for row in history],
            },
        )


def tag_best_run(experiment_id: str, study_name: str, best_number: int) -> None:
    """best_trial=true on the best trial's run (whichever worker logged it), false on a former best."""
    study_runs = {"stage": "tune", "study_name": study_name}
    tracking.set_run_tags(experiment_id, {**study_runs, "best_trial": "true"}, {"best_trial": "false"})
    tracking.set_run_tags(experiment_id, {**study_runs, "trial": str(best_number)}, {"best_trial": "true"})


def summary(study: optuna.Study, *, variant: str, storage_url: str, budget: int) -> dict:
    """best.json: the best learning rate and how the study's trials ended."""
    trials = study.get_trials(deepcopy=False)
    if not count(trials, (TrialState.COMPLETE,)):
        raise UsageError(f"study '{study.study_name}' has no completed trial yet: run the tuner (longer --timeout?)")
    ran = [trial for trial in trials if "lr" in trial.params]  # a surplus trial never ran
    return {
        "variant": variant,
        "study_name": study.study_name,
        "storage": redact(storage_url),
        "best_lr": study.best_params["lr"],
        "best_value": study.best_value,
        "trials_budget": budget,
        "n_complete": count(ran, (TrialState.COMPLETE,)),
        "n_pruned": count(ran, (TrialState.PRUNED,)),
        "n_failed": count(ran, (TrialState.FAIL,)),
        "steps": study.user_attrs["settings"]["steps"],
    }


def describe(best: dict) -> str:
    """One line for the terminal: the study, its best learning rate, and how its trials ended."""
    return (
        f"tune@{best['variant']}: study {best['study_name']}: best lr={best['best_lr']:.4g} "
        f"(validation accuracy {best['best_value']:.4f}); {best['n_complete']} complete, "
        f"{best['n_pruned']} pruned, {best['n_failed']} failed; budget {best['trials_budget']}"
    )


TRIAL_COLUMNS = ("number", "lr", "value", "state", "diverged")


def trial_rows(study: optuna.Study) -> list[dict]:
    """trials.csv: every finished trial that ran, in order (value: final, or last reported when pruned)."""
    return [
        {
            "number": trial.number,
            "lr": trial.params["lr"],
            "value": "" if trial.value is None else trial.value,
            "state": trial.state.name,
            "diverged": bool(trial.user_attrs.get("diverged", False)),
        }
        for trial in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))
        if "lr" in trial.params
    ]


# --- entry points --------------------------------------------------------------------------------------------


def tune_variant(
    params: Params,
    variant: str,
    *,
    study_name: str | None = None,
    heartbeat_s: int = HEARTBEAT_S,
    data_dir: Path = PROCESSED_DIR,
) -> optuna.Study:
    """Join (or start) the variant's study and work on it until it has its budget of finished trials."""
    try:
        device = resolve_device(params.train.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    settings = study_settings(params, variant, data_dir)
    storage = open_storage(params.tune.storage, heartbeat_s)
    study = open_study(storage, study_name or default_study_name(settings), settings, params.tune.trials_per_batch)
    train_batch = engine_objective(params, variant, device, data_dir)

    experiment_id = tracking.configure(params.tracking.experiment)
    tags = {"stage": "tune", "variant": variant, "study_name": study.study_name, "device": str(device)}
    run_params = {"study": settings, "trials": params.tune.trials, "trials_per_batch": params.tune.trials_per_batch}
    with tracking.stage_run(f"tune-{variant}", tags=tags, params=run_params):
        run_worker(
            study,
            storage,
            train_batch,
            Plan.from_config(params.tune, heartbeat_s),
            on_batch=lambda told: log_trials(study.study_name, variant, str(device), told),
        )
        if count(study.get_trials(deepcopy=False), (TrialState.COMPLETE,)):
            tag_best_run(experiment_id, study.study_name, study.best_trial.number)
    return study


def _positive(kind: type) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description="Tune one variant's learning rate with Optuna (defaults: params.yaml's tune).")
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument("--trials", type=_positive(int), help="trial budget of the study (all workers together)")
    parser.add_argument("--storage", help="SQLAlchemy URL of the Optuna storage, e.g. postgresql://user@host/db")
    parser.add_argument("--study-name", help="default: bn-mnist-<variant>-<digest of the study's settings>")
    parser.add_argument("--steps", type=_positive(int), help="training steps per trial")
    parser.add_argument("--timeout", type=_positive(float), help="ask for no new batch after this many seconds")
    parser.add_argument(
        "--heartbeat", type=_positive(int), default=HEARTBEAT_S, help="seconds between a worker's heartbeats"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params()
    overrides = {"trials": args.trials, "storage": args.storage, "steps": args.steps, "timeout_s": args.timeout}
    tune_config = params.tune.model_copy(update={key: value for key, value in overrides.items() if value is not None})
    params = params.model_copy(update={"tune": tune_config})
    study = tune_variant(params, args.variant, study_name=args.study_name, heartbeat_s=args.heartbeat)
    print(describe(summary(study, variant=args.variant, storage_url=params.tune.storage, budget=params.tune.trials)))


if __name__ == "__main__":
    report_user_errors(main)
