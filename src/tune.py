"""Optuna tunes one variant's learning rate, fairly: both variants get the same search space, budget and steps.

A study lives in persistent storage (an SQLite file by default; any SQLAlchemy URL, e.g. PostgreSQL, for
workers on several machines). A worker asks a batch of trials, trains them together as one K-member model
(one init seed and one data order for all: common random numbers), and tells each result. The rules:

- Objective: validation accuracy after `tune.steps` steps (the test split is never read). A trial whose loss
  turns NaN or infinite scores 0.0, below any trial that trained, so it is never the best and TPE steers away;
  it is COMPLETE with user attrs diverged=True and accuracy_at_divergence.
- Pruning: after `tune.pruning_warmup_evals` evaluations, a trial below the median of the completed trials at
  the same step is PRUNED and stops updating (the engine freezes it); its value is its last reported accuracy.
- Budget: the study is done when `trials` trials are finished (COMPLETE or PRUNED). A worker asks only for the
  slots neither finished nor running. When workers ask at once, a trial whose rank (the non-failed trials
  numbered up to it) exceeds the budget is failed before it trains, so together they finish exactly the budget.
- Resume: finished trials are kept. A trial whose worker died (no heartbeat for GRACE_HEARTBEATS heartbeats,
  or none at all that long after it was asked) is failed and re-queued with its learning rate. A worker whose
  free slots are all held by running trials waits for them instead of leaving, so a dead worker's trials are
  always picked up.
- A study only ever holds trials run under the same settings (`study_settings`: params, data and training
  code); the default study name carries their digest, so changing any of them starts a new study, while
  changing only the budget (`dvc exp run -S tune.trials=32`) extends the existing one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import optuna
import sqlalchemy
import torch
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, Trial, TrialState
from tqdm import tqdm

from src import batchnorm, data, engine, models, tracking
from src.cli import UsageError, report_user_errors
from src.config import VARIANTS, Params, TuneConfig, load_params
from src.data import load_split
from src.engine import Evaluation, Schedule, TrainResult, resolve_device, train_members
from src.models import build_model

PROCESSED = Path("data/processed")
SUPPORTED_DATABASES = ("sqlite", "postgresql")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DIVERGED_VALUE = 0.0
HEARTBEAT_S = 10
GRACE_HEARTBEATS = 3  # a trial silent this many heartbeats is stale; >2 leaves room for a busy database
MAX_RETRIES = 2  # a stale trial is re-queued at most this often (a learning rate that kills its worker stops)
SQLITE_TIMEOUT_S = 60  # how long a writer waits for SQLite's lock before "database is locked"
CONNECT_TIMEOUT_S = 10  # an unreachable database server fails fast instead of hanging
SCHEMA_ATTEMPTS = 3
POLL_S = 1  # how often a waiting worker looks whether the trials it waits for have ended
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial (a user attr)

TRAINING_CODE = (data, batchnorm, models, engine)  # what decides a trial's validation accuracy

OnEval = Callable[[Evaluation], Sequence[bool] | None]
TrainBatch = Callable[[Sequence[float], OnEval], TrainResult]

# We drive heartbeats ourselves (Study.optimize would, but ask/tell is what lets trials train together).
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
warnings.filterwarnings("ignore", category=ExperimentalWarning, message=".*(heartbeat_interval|fail_stale_trials)")
optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- storage and study ---------------------------------------------------------------------------------------


def redact(url: str) -> str:
    """`url` with any password replaced by ***, even when the URL does not parse."""
    return re.sub(r"(//[^/@:]*:)[^@/]*@", r"\1***@", url)


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> RDBStorage:
    """An Optuna RDB storage with heartbeats; a bad, unsupported or unreachable URL is one UsageError line."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(
            f"storage {redact(url)!r} is not a database URL (e.g. sqlite:///optuna.db or postgresql://user@host/db)"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in SUPPORTED_DATABASES:
        raise UsageError(f"storage {shown}: unsupported database '{parsed.drivername}' (use sqlite or postgresql)")
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"timeout": SQLITE_TIMEOUT_S}
    else:
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S}
    probe = None
    try:
        probe = sqlalchemy.create_engine(url, connect_args=connect_args)
        probe.connect().close()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
        raise UsageError(f"storage {shown}: cannot connect ({_reason(error)})") from None
    finally:
        if probe is not None:
            probe.dispose()
    attempts_left = SCHEMA_ATTEMPTS
    while True:
        try:
            return RDBStorage(
                url,
                engine_kwargs={"connect_args": connect_args},
                heartbeat_interval=heartbeat_s,
                grace_period=GRACE_HEARTBEATS * heartbeat_s,
                heartbeat_stale_trial_callback=requeue,
            )
        except sqlalchemy.exc.SQLAlchemyError as error:
            # workers that start together on an empty database race to create Optuna's tables: one loses
            attempts_left -= 1
            if not attempts_left:
                raise UsageError(f"storage {shown}: cannot create Optuna's tables ({_reason(error)})") from None
            time.sleep(random.uniform(0.5, 1.5))
        except RuntimeError as error:  # Optuna's schema check: the storage was made by another Optuna version
            raise UsageError(f"storage {shown}: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    """The first line of what the database driver said, without any password."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return redact(lines[0]) if lines else type(cause).__name__


def file_sha256(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (run `dvc repro preprocess` first)") from None


def study_settings(params: Params, variant: str, data_dir: Path = PROCESSED) -> dict:
    """Everything that makes two trials comparable; a study only holds trials run under the same settings."""
    return {
        "variant": variant,
        "steps": params.tune.steps,
        "eval_every": params.tune.eval_every,
        "lr_min": params.tune.lr_min,
        "lr_max": params.tune.lr_max,
        "seed": params.tune.seed,
        "pruning_warmup_evals": params.tune.pruning_warmup_evals,
        "batch_size": params.train.batch_size,
        "momentum": params.train.momentum,
        "binarize": params.data.binarize,
        "model": params.model.model_dump(),
        "data_sha256": {split: file_sha256(Path(data_dir) / f"{split}.npz") for split in ("train", "val")},
        # a fixed bug in the training code must not be resumed into a study of the buggy code's trials
        "code_sha256": {module.__name__: file_sha256(Path(module.__file__)) for module in TRAINING_CODE},
    }


def default_study_name(settings: dict) -> str:
    """bn-mnist-<variant>-<digest of the settings>: the same settings resume a study, new ones start one."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"bn-mnist-{settings['variant']}-{digest}"


def open_study(storage: RDBStorage, name: str, settings: dict, trials_per_batch: int) -> optuna.Study:
    """Create or resume the study `name`; resuming one that was run under other settings is a UsageError."""
    evals_protected = settings["pruning_warmup_evals"]
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        load_if_exists=True,
        # The first batch always completes; a later trial may be pruned from its (warmup + 1)-th evaluation on
        # (MedianPruner prunes from step == n_warmup_steps; step 0 is never reported).
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=trials_per_batch, n_warmup_steps=(evals_protected + 1) * settings["eval_every"]
        ),
    )
    if "settings" not in study.user_attrs:
        study.set_user_attr("settings", settings)  # a worker starting at the same time may write first: re-read
    stored = study.user_attrs["settings"]
    if stored != settings:
        changed = ", ".join(
            f"{key}: {stored.get(key)} -> {settings.get(key)}"
            for key in settings
            if stored.get(key) != settings.get(key)
        )
        raise UsageError(f"study '{name}' was run under other settings ({changed}): give another --study-name")
    return study


# --- the worker: budget, claims, heartbeats ------------------------------------------------------------------


def count(trials: Sequence[FrozenTrial], states: Sequence[TrialState]) -> int:
    return sum(trial.state in states for trial in trials)


def claim_trials(study: optuna.Study, storage: RDBStorage, budget: int, wanted: int) -> list[Trial]:
    """Ask `wanted` trials and keep those within the budget; the surplus of a race with other workers fails.

    Trial numbers are assigned under a lock on the study row, so once ours exist every lower-numbered trial
    is visible: a trial is kept when at most `budget` non-failed trials are numbered up to it.
    A kept trial gets a heartbeat, then the user attr `worker`; see fail_orphaned_trials for why in this order.
    """
    asked = [study.ask() for _ in range(wanted)]
    for trial in asked:
        storage.record_heartbeat(trial._trial_id)  # the id Optuna's own heartbeat thread uses
    live = [trial.number for trial in study.get_trials(deepcopy=False) if trial.state != TrialState.FAIL]
    kept = []
    for trial in asked:
        try:
            if sum(number <= trial.number for number in live) <= budget:
                trial.set_user_attr("worker", WORKER)
                kept.append(trial)
            else:
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # failed as an orphan by a worker whose clock runs far ahead of ours
    return kept


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a failed trial's learning rate again (at most MAX_RETRIES times), as Optuna's
    RetryHeartbeatStaleTrialCallback does but without its user attrs: a queued trial has no `worker` yet."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if not trial.params or len(history) > MAX_RETRIES:
        return  # a trial that never drew its learning rate leaves its slot to a fresh one
    waiting = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=trial.params,
        distributions=trial.distributions,
        system_attrs={"failed_trial": history[0], "retry_history": history},
    )
    study.add_trial(waiting)


def fail_orphaned_trials(study: optuna.Study, grace_s: float) -> None:
    """Fail and requeue RUNNING trials unclaimed (no `worker`) `grace_s` after they were asked: their worker died
    before their first heartbeat, and Optuna only fails trials whose heartbeat stopped, not ones without any."""
    cutoff = datetime.now() - timedelta(seconds=grace_s)  # datetime_start: the asking host's clock
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "worker" not in trial.user_attrs and trial.datetime_start < cutoff:
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue  # another worker failed it first
            requeue(study, trial)


@contextmanager
def heartbeats(storage: RDBStorage, trials: Sequence[Trial], interval_s: float) -> Iterator[None]:
    """Record the trials' heartbeats every `interval_s` until the block ends (claim_trials records the first).

    A thread rather than the engine's on_eval: evaluations can be further apart than the grace period.
    """

    def keep_beating() -> None:
        while not stop.wait(interval_s):
            for trial in trials:
                try:
                    storage.record_heartbeat(trial._trial_id)
                except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
                    print(f"warning: heartbeat of trial {trial.number} not recorded: {error}", file=sys.stderr)

    stop = threading.Event()
    thread = threading.Thread(target=keep_beating, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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
            fail_stale_trials(study)
            fail_orphaned_trials(study, GRACE_HEARTBEATS * plan.heartbeat_s)
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
        history = [row for row in result.history if row["member"] == member and row["step"] <= monitor.ended[member]]
        try:
            told.append((tell_result(study, trial, history, pruned=monitor.pruned[member]), history))
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


def tell_result(study: optuna.Study, trial: Trial, history: list[dict], *, pruned: bool) -> FrozenTrial:
    """Tell one trial's outcome: PRUNED, or COMPLETE with its final validation accuracy (0.0 when diverged)."""
    diverged = any(row["diverged"] for row in history)
    trial.set_user_attr("diverged", diverged)
    if diverged:
        trial.set_user_attr("accuracy_at_divergence", next(row["accuracy"] for row in history if row["diverged"]))
        return study.tell(trial, DIVERGED_VALUE)
    if pruned:
        return study.tell(trial, state=TrialState.PRUNED)
    return study.tell(trial, history[-1]["accuracy"])


# --- the objective: the vectorised engine on the validation split ---------------------------------------------


def engine_objective(params: Params, variant: str, device: torch.device, data_dir: Path = PROCESSED) -> TrainBatch:
    """Train K learning rates at once from one init (tune.seed) on one data order; evaluate on the val split."""
    train = load_split(data_dir, "train", device, params.data.binarize)
    val = load_split(data_dir, "val", device, params.data.binarize)

    def train_batch(learning_rates: Sequence[float], on_eval: OnEval) -> TrainResult:
        seeds = [params.tune.seed] * len(learning_rates)
        schedule = Schedule(
            steps=params.tune.steps,
            batch_size=params.train.batch_size,
            eval_every=params.tune.eval_every,
            momentum=params.train.momentum,
            learning_rates=list(learning_rates),
            data_seeds=seeds,
        )
        model = build_model(params.model, variant, seeds, device)
        return train_members(
            model,
            train,
            val,
            schedule,
            on_eval=on_eval,
            population_stats=params.model.population_stats,
            population_batches=params.model.population_batches,
        )

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
    client = mlflow.MlflowClient()
    study_runs = f"tags.stage = 'tune' and tags.study_name = '{study_name}'"
    for run in client.search_runs([experiment_id], f"{study_runs} and tags.best_trial = 'true'"):
        client.set_tag(run.info.run_id, "best_trial", "false")
    for run in client.search_runs([experiment_id], f"{study_runs} and tags.trial = '{best_number}'"):
        client.set_tag(run.info.run_id, "best_trial", "true")


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
    data_dir: Path = PROCESSED,
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


class OneLineParser(argparse.ArgumentParser):
    """argparse whose mistakes are one UsageError line (exit 2 via report_user_errors), not usage + error."""

    def error(self, message: str):
        raise UsageError(message)


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
