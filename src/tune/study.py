"""The Optuna study a tuning worker shares with the others: its storage, its identity and what it reports.

A study lives in persistent storage (an SQLite file by default; any SQLAlchemy URL, e.g. PostgreSQL, for workers on
several machines) and only ever holds trials run under the same settings (`study_settings`: params, data and
training code). The default study name carries their digest, so changing any of them starts a new study, while
changing only the budget (`dvc exp run -S tune.trials=48`) extends the existing one. The worker loop that fills the
study is src/trials.py.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from src.config import Params, TuneConfig
from src.errors import StudyError
from src.results.files import TuningSummary, TuningTrial
from src.stores import databases
from src.stores.databases import reason, redact
from src.training import provenance

SUPPORTED_DATABASES = ("sqlite", "postgresql")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HEARTBEAT_S = 10
GRACE_HEARTBEATS = 3  # a trial silent this many heartbeats is stale; >2 leaves room for a busy database
MAX_RETRIES = 2  # a stale trial is re-queued at most this often (a learning rate that kills its worker stops)


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> RDBStorage:
    """An Optuna RDB storage with heartbeats; a bad, unsupported or unreachable URL is one StudyError line."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        raise StudyError(
            f"storage {redact(url)!r} is not a database URL (e.g. sqlite:///optuna.db or postgresql://user@host/db)"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in SUPPORTED_DATABASES:
        raise StudyError(f"storage {shown}: unsupported database '{parsed.drivername}' (use sqlite or postgresql)")
    url = databases.at_project_root(url)  # a stage of a temporary DVC experiment shares the project's studies
    probe = None
    try:
        probe = sqlalchemy.create_engine(url, connect_args=databases.connect_args(parsed))
        probe.connect().close()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
        raise StudyError(f"storage {shown}: cannot connect ({reason(error)})") from None
    finally:
        if probe is not None:
            probe.dispose()
    try:
        # workers that start together on an empty database would each create Optuna's tables: one at a time
        with databases.first_use(url), quiet_heartbeat_warnings():
            return RDBStorage(
                url,
                engine_kwargs={"connect_args": databases.connect_args(parsed)},
                heartbeat_interval=heartbeat_s,
                grace_period=GRACE_HEARTBEATS * heartbeat_s,
                # a dead worker's trial is re-queued at its learning rate, at most MAX_RETRIES times
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
            )
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise StudyError(f"storage {shown}: cannot create Optuna's tables ({reason(error)})") from None
    except RuntimeError as error:  # Optuna's schema check: the storage was made by another Optuna version
        raise StudyError(f"storage {shown}: {reason(error)}") from None


def study_settings(params: Params, variant: str, device: str) -> dict:
    """Everything that makes two trials comparable: the tune stage's deciding params, the resolved device (the same
    seeds give other numbers on another device type), the train and val data, the training code (a fixed bug must
    not be resumed into a study of the buggy code's trials). A study only holds trials run under the same settings."""
    return provenance.stage_identity(params, "tune", variant, device, ("train", "val"))


def default_study_name(settings: dict) -> str:
    """bn-mnist-<variant>-<digest of the settings>: the same settings resume a study, new ones start one."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"bn-mnist-{settings['variant']}-{digest}"


def open_study(storage: RDBStorage, name: str, settings: dict, tune: TuneConfig) -> optuna.Study:
    """Create or resume the study `name`; resuming one that was run under other settings is a StudyError."""
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        load_if_exists=True,
        # The first batch always completes; a later trial may be pruned from its (warmup + 1)-th evaluation on
        # (MedianPruner prunes from step == n_warmup_steps; step 0 is never reported).
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=tune.trials_per_batch, n_warmup_steps=(tune.pruning_warmup_evals + 1) * tune.eval_every
        ),
    )
    if "settings" not in study.user_attrs:
        study.set_user_attr("settings", settings)  # a worker starting at the same time may write first: re-read
    stored = study.user_attrs["settings"]
    if stored != settings:
        changed = provenance.differences(stored, settings)
        raise StudyError(f"study '{name}' was run under other settings ({changed}): give another --study-name")
    return study


# --- what the study reports: best.json and trials.csv --------------------------------------------------------


def best_summary(study: optuna.Study, variant: str, storage_url: str, budget: int) -> TuningSummary:
    """best.json: the best learning rate and how the study's trials ended."""
    trials = study.get_trials(deepcopy=False)
    if not count(trials, (TrialState.COMPLETE,)):
        raise StudyError(f"study '{study.study_name}' has no completed trial yet: run the tuner (longer --timeout?)")
    ran = [trial for trial in trials if "lr" in trial.params]  # a surplus trial never ran
    settings = study.user_attrs["settings"]
    return TuningSummary(
        variant=variant,
        study_name=study.study_name,
        storage=redact(storage_url),
        best_lr=study.best_params["lr"],
        best_value=study.best_value,
        trials_budget=budget,
        n_complete=count(ran, (TrialState.COMPLETE,)),
        n_pruned=count(ran, (TrialState.PRUNED,)),
        n_failed=count(ran, (TrialState.FAIL,)),
        steps=settings["params"]["tune"]["steps"],
        device=settings["device"],
    )


def finished_trials(study: optuna.Study) -> list[TuningTrial]:
    """trials.csv: every finished trial that ran, in order (value: final, or last reported when pruned)."""
    return [
        TuningTrial(
            number=trial.number,
            lr=trial.params["lr"],
            value=trial.value,
            state=trial.state.name,
            diverged=bool(trial.user_attrs.get("diverged", False)),
        )
        for trial in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))
        if "lr" in trial.params
    ]


# --- shared with the worker (src/trials.py) ------------------------------------------------------------------


def count(trials: Sequence[FrozenTrial], states: Sequence[TrialState]) -> int:
    """How many of `trials` are in one of `states`."""
    return sum(trial.state in states for trial in trials)


@contextmanager
def quiet_heartbeat_warnings() -> Iterator[None]:
    """Silence Optuna's notes on heartbeats: this project drives them itself (Study.optimize would, but ask/tell is
    what lets trials train together), and the heartbeat API is marked experimental."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        yield
