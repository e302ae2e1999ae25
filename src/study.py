"""The Optuna study a tuning run works on: its storage, its settings, a trial budget shared by every worker,
and the recovery of trials whose worker died.

A study lives in persistent storage (an SQLite file by default; any SQLAlchemy URL, e.g. PostgreSQL, for
workers on several machines). The rules:

- Budget: the study is done when `trials` trials are finished (COMPLETE or PRUNED). A worker asks only for the
  slots neither finished nor running. When workers ask at once, a trial whose rank (the non-failed trials
  numbered up to it) exceeds the budget is failed before it trains, so together they finish exactly the budget.
- Resume: finished trials are kept. A trial whose worker died (no heartbeat for GRACE_HEARTBEATS heartbeats,
  or none at all that long after it was asked) is failed and re-queued with its learning rate.
- A study only ever holds trials run under the same settings (`study_settings`: params, data and training
  code); the default study name carries their digest, so changing any of them starts a new study, while
  changing only the budget (`dvc exp run -S tune.trials=32`) extends the existing one.
"""

from __future__ import annotations

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, Trial, TrialState

from src import data
from src.cli import UsageError
from src.config import Params
from src.provenance import code_sha256, data_sha256

SUPPORTED_DATABASES = ("sqlite", "postgresql")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HEARTBEAT_S = 10
GRACE_HEARTBEATS = 3  # a trial silent this many heartbeats is stale; >2 leaves room for a busy database
MAX_RETRIES = 2  # a stale trial is re-queued at most this often (a learning rate that kills its worker stops)
SQLITE_TIMEOUT_S = 60  # how long a writer waits for SQLite's lock before "database is locked"
CONNECT_TIMEOUT_S = 10  # an unreachable database server fails fast instead of hanging
SCHEMA_ATTEMPTS = 3
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial (a user attr)

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


def study_settings(params: Params, variant: str, data_dir: Path = data.PROCESSED_DIR) -> dict:
    """Everything that makes two trials comparable; a study only holds trials run under the same settings."""
    return {
        "variant": variant,
        "steps": params.tune.steps,
        "eval_every": params.tune.eval_every,
        "evals_per_decade": params.tune.evals_per_decade,
        "lr_min": params.tune.lr_min,
        "lr_max": params.tune.lr_max,
        "seed": params.tune.seed,
        "pruning_warmup_evals": params.tune.pruning_warmup_evals,
        "batch_size": params.train.batch_size,
        "momentum": params.train.momentum,
        "binarize": params.data.binarize,
        "model": params.model.model_dump(),
        "data_sha256": data_sha256(data_dir, ("train", "val")),
        # a fixed bug in the training code must not be resumed into a study of the buggy code's trials
        "code_sha256": code_sha256(),
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


# --- the budget, claims, heartbeats and dead workers' trials -------------------------------------------------


def count(trials: Sequence[FrozenTrial], states: Sequence[TrialState]) -> int:
    """How many of `trials` are in one of `states`."""
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


def fail_dead_trials(study: optuna.Study, grace_s: float) -> None:
    """Fail and requeue the trials whose worker died: those whose heartbeat stopped (Optuna's check, which
    calls requeue) and those that never had one (fail_orphaned_trials)."""
    fail_stale_trials(study)
    fail_orphaned_trials(study, grace_s)


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
