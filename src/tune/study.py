"""The Optuna study a tuning worker shares with the others: its storage, its identity and what it reports.

A study lives in persistent storage (an SQLite file by default; any SQLAlchemy URL, e.g. PostgreSQL, for workers on
several machines) and only ever holds trials run under the same settings (`study_settings`: params, data and
training code). The default study name carries their digest, so changing any of them starts a new study, while
changing only the budget (`dvc exp run -S tune.trials=48`) extends the existing one. The worker loop that fills the
study is trials.py; the storage, shared with the sweep's queue, is src/stores/optuna_storage.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from src.config import TrainingRun, TuneConfig
from src.errors import StudyError
from src.results.tune import TuningSummary, TuningTrial
from src.stores.databases import redact
from src.stores.optuna_storage import describe_study
from src.training import provenance

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
OBJECTIVE = "validation accuracy"  # what a trial's value is, as optuna-dashboard and trials_dataframe name it


def study_settings(run: TrainingRun, variant: str, device: str) -> dict:
    """Everything that makes two trials comparable: the tune stage's deciding params, the resolved device (the same
    seeds give other numbers on another device type), the train and val data, the training code (a fixed bug must
    not be resumed into a study of the buggy code's trials). A study only holds trials run under the same settings."""
    return provenance.stage_identity(run, variant, device, ("train", "val"))


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
    describe_study(study, OBJECTIVE, f"tune@{settings['variant']}: the learning rate of highest {OBJECTIVE}")
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


# --- shared with the worker (src/tune/trials.py) ------------------------------------------------------------------


def count(trials: Sequence[FrozenTrial], states: Sequence[TrialState]) -> int:
    """How many of `trials` are in one of `states`."""
    return sum(trial.state in states for trial in trials)
