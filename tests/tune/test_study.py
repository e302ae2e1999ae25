"""The shared Optuna study: a storage reached or one line saying why, an identity that resumes a study only under the
settings it was run with, and best.json and trials.csv read from the study as it stands."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from src.config import load_params, with_overrides
from src.errors import StudyError
from src.results.tune import TuningSummary, TuningTrial
from src.stores.optuna_storage import PURPOSE, open_storage
from src.tune.study import OBJECTIVE, best_summary, default_study_name, finished_trials, open_study, study_settings
from tests.tuning import SETTINGS, STEPS, tune_config


def test_a_study_only_resumes_under_the_settings_it_was_run_with(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db")
    open_study(storage, "s", SETTINGS, tune_config())
    open_study(storage, "s", SETTINGS, tune_config(trials_per_batch=4))  # the budget and batching may change
    with pytest.raises(StudyError, match=r"study 's' was run under other settings \(steps: 200 -> 100\)"):
        open_study(storage, "s", {**SETTINGS, "steps": 100}, tune_config())


def test_a_study_names_its_objective_and_purpose_for_optuna_dashboard_also_when_made_before(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db")
    earlier = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    earlier.set_user_attr("settings", SETTINGS)  # a study as open_study made it before it named them
    study = open_study(storage, "s", SETTINGS, tune_config())
    assert study.metric_names == [OBJECTIVE] == ["validation accuracy"]
    assert study.user_attrs[PURPOSE] == "tune@bn: the learning rate of highest validation accuracy"


def test_the_default_study_name_changes_with_the_settings_but_not_with_the_budget(tune_project):
    params = load_params()
    name = default_study_name(study_settings(params.tune_run, "bn", "cpu"))
    more_trials = with_overrides(params, {"tune.trials": 99})
    longer = with_overrides(params, {"tune.steps": 999})
    assert name.startswith("bn-mnist-bn-")
    assert default_study_name(study_settings(more_trials.tune_run, "bn", "cpu")) == name
    assert default_study_name(study_settings(longer.tune_run, "bn", "cpu")) != name
    assert default_study_name(study_settings(params.tune_run, "bn", "cuda")) != name, "a study is per device type"


def _tell(study: optuna.Study, lr: float | None, state: TrialState, value: float | None = None, **attrs) -> None:
    """One trial at `lr` (None: a surplus trial that never drew one), ended in `state`."""
    if lr is not None:
        study.enqueue_trial({"lr": lr})
    trial = study.ask()
    if lr is not None:
        trial.suggest_float("lr", 1e-5, 100.0, log=True)
    for name, attr in attrs.items():
        trial.set_user_attr(name, attr)
    if state == TrialState.PRUNED:
        trial.report(value, step=50)
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    elif state != TrialState.RUNNING:
        study.tell(trial, state=state)


@pytest.fixture
def ended(tmp_path) -> optuna.Study:
    """A study whose trials ended in every way: diverged, complete, pruned, failed, surplus, and one still running."""
    settings = {"variant": "bn", "device": "cpu", "params": {"tune": {"steps": STEPS}}}
    study = open_study(open_storage(f"sqlite:///{tmp_path}/optuna.db"), "s", settings, tune_config())
    _tell(study, 50.0, TrialState.COMPLETE, 0.0, diverged=True)
    _tell(study, 2.0, TrialState.COMPLETE, 0.95, diverged=False)
    _tell(study, 1e-3, TrialState.PRUNED, 0.2, diverged=False)
    _tell(study, 10.0, TrialState.FAIL)  # its worker's training raised
    _tell(study, None, TrialState.FAIL, surplus=True)
    _tell(study, 0.5, TrialState.RUNNING)
    return study


def test_best_json_holds_the_best_trial_and_how_the_trials_that_ran_ended(ended):
    summary = best_summary(ended, "bn", "postgresql://tuner:s3cret@db-host/optuna", budget=4)
    assert summary == TuningSummary(
        variant="bn",
        study_name="s",
        storage="postgresql://tuner:***@db-host/optuna",
        best_lr=2.0,
        best_value=0.95,
        trials_budget=4,
        n_complete=2,
        n_pruned=1,
        n_failed=1,
        steps=STEPS,
        device="cpu",
    )


def test_trials_csv_lists_every_finished_trial_that_ran_in_order(ended):
    assert finished_trials(ended) == [
        TuningTrial(number=0, lr=50.0, value=0.0, state="COMPLETE", diverged=True),
        TuningTrial(number=1, lr=2.0, value=0.95, state="COMPLETE", diverged=False),
        TuningTrial(number=2, lr=1e-3, value=0.2, state="PRUNED", diverged=False),  # its last reported accuracy
        TuningTrial(number=3, lr=10.0, value=None, state="FAIL", diverged=False),
    ]


def test_a_study_without_a_completed_trial_has_no_best_and_says_to_run_the_tuner(tmp_path):
    settings = {"variant": "bn", "device": "cpu", "params": {"tune": {"steps": STEPS}}}
    study = open_study(open_storage(f"sqlite:///{tmp_path}/optuna.db"), "s", settings, tune_config())
    _tell(study, 1e-3, TrialState.PRUNED, 0.2)
    no_best = r"^study 's' has no completed trial yet: run the tuner \(longer --timeout\?\)$"
    with pytest.raises(StudyError, match=no_best):
        best_summary(study, "bn", "sqlite:///optuna.db", budget=4)
