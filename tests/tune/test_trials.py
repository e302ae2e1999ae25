"""A tuning worker: batches of trials trained together, the poor ones pruned and stopped, a diverged one scored zero,
and an exact budget shared by workers that ask at once, die, or run side by side on one storage."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from src.engine.trainer import Evaluation, TrainingHistory
from src.stores.optuna_storage import open_storage
from src.tune.study import open_study
from src.tune.trials import DIVERGED_VALUE, TrialWorker, sampler_for_batch
from tests.tuning import EVAL_EVERY, FINISHED, SETTINGS, STEPS, edit_tune, finish, tune_config, tuner


def only_study(storage: str) -> optuna.Study:
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def finished_values(study: optuna.Study) -> dict[int, float]:
    """Trial number -> value, for every COMPLETE or PRUNED trial."""
    return {trial.number: trial.value for trial in study.get_trials(states=FINISHED)}


def trial_states(database: Path) -> dict[str, int]:
    """How many trials are in each state, read without creating or locking anything the tuner writes."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            return dict(connection.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall())
    except sqlite3.OperationalError:  # not created yet
        return {}


def _stand_in(outcomes: dict[float, str], stops: list[list[bool]]):
    """A fake engine: 'good' learning rates climb to 1.0, 'poor' ones stay at 0.1, 'diverges' blows up at 100."""

    def train_batch(learning_rates, on_eval) -> TrainingHistory:
        members = len(learning_rates)
        steps = tuple(range(0, STEPS + 1, EVAL_EVERY))
        accuracy, diverged = np.full((len(steps), members), 0.1), np.zeros((len(steps), members), dtype=bool)
        stopped = [False] * members
        for index, step in enumerate(steps):
            current = accuracy[max(index - 1, 0)].copy()
            for member, lr in enumerate(learning_rates):
                diverged[index, member] = outcomes[lr] == "diverges" and step >= 100
                if outcomes[lr] == "good" and not stopped[member]:
                    current[member] = 0.1 + 0.9 * step / STEPS
            accuracy[index] = current
            if step:
                stop = on_eval(Evaluation(step, current.tolist(), [1.0] * members, diverged[index].tolist()))
                stops.append(list(stop))
                stopped = [was or now for was, now in zip(stopped, stop, strict=True)]
        final = Evaluation(STEPS, accuracy[-1].tolist(), [1.0] * members, diverged[-1].tolist())
        return TrainingHistory(steps, accuracy, np.ones_like(accuracy), diverged, None, final, wall_time_s=0.0)

    return train_batch


def test_a_poor_trial_is_pruned_and_stopped_and_a_diverged_one_scores_zero(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db", heartbeat_s=1)
    study = open_study(storage, "s", SETTINGS, tune_config())
    outcomes = {0.5: "good", 0.4: "good", 50.0: "diverges", 1e-4: "poor"}
    for lr in outcomes:  # the first batch (0.5, 0.4) completes; the second is judged against it
        study.enqueue_trial({"lr": lr})
    stops = []

    TrialWorker(study, storage, tune_config(), heartbeat_s=1).run(_stand_in(outcomes, stops))

    trials = {trial.params["lr"]: trial for trial in study.get_trials()}
    assert trials[0.5].state == trials[0.4].state == TrialState.COMPLETE and trials[0.5].value == 1.0
    assert trials[50.0].state == TrialState.COMPLETE and trials[50.0].value == DIVERGED_VALUE
    assert trials[50.0].user_attrs["diverged"] is True and trials[50.0].user_attrs["accuracy_at_divergence"] == 0.1
    assert trials[1e-4].state == TrialState.PRUNED and trials[1e-4].user_attrs["diverged"] is False
    # warmup 1 evaluation: the poor trial is reported at 50, pruned at 100, and stopped from then on
    assert sorted(trials[1e-4].intermediate_values) == [50, 100]
    assert stops[-3:] == [[False, True], [False, True], [False, True]]
    assert study.best_params == {"lr": 0.5}


def test_a_batch_draws_its_rates_from_the_tune_seed_and_its_first_trial_number():
    def draws(seed: int, first_trial: int) -> list[float]:
        study = optuna.create_study(sampler=sampler_for_batch(seed, first_trial, trials_per_batch=2))
        return [study.ask().suggest_float("lr", 1e-4, 10.0, log=True) for _ in range(2)]

    assert draws(0, 4) == draws(0, 4)  # one worker is reproducible
    assert draws(0, 4) != draws(0, 6)  # workers starting batches together draw other rates
    assert draws(0, 4) != draws(1, 4)


def test_workers_asking_at_once_fail_their_surplus_trials_before_training(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = open_storage(url)
    study = open_study(storage, "s", SETTINGS, tune_config())
    other_worker = optuna.load_study(study_name="s", storage=url)
    theirs = [other_worker.ask() for _ in range(2)]  # both counted 0 of a budget of 3, and asked at once

    mine = TrialWorker(study, storage, tune_config(trials=3)).ask_within_budget(2)

    assert [trial.number for trial in theirs] == [0, 1]
    assert [trial.number for trial in mine] == [2]
    surplus = study.get_trials(states=(TrialState.FAIL,))
    assert [(trial.number, trial.user_attrs) for trial in surplus] == [(3, {"surplus": True})]


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_requeued(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = open_storage(url)
    study = open_study(storage, "s", SETTINGS, tune_config())
    orphan = optuna.load_study(study_name="s", storage=url).ask()  # asked, then its worker was killed
    orphan.suggest_float("lr", 1e-4, 1.0, log=True)
    worker = TrialWorker(study, storage, tune_config(trials=4))
    (kept,) = worker.ask_within_budget(1)

    worker.fail_dead_trials(grace_s=60)
    assert study.trials[orphan.number].state == TrialState.RUNNING, "still within its grace period"
    worker.fail_dead_trials(grace_s=0)

    assert study.trials[orphan.number].state == TrialState.FAIL
    assert study.trials[kept.number].state == TrialState.RUNNING
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert queued.params == orphan.params and queued.system_attrs["failed_trial"] == orphan.number


# --- workers as processes ------------------------------------------------------------------------------------


def test_a_killed_tuner_resumes_without_losing_or_redoing_a_finished_trial(tune_project):
    edit_tune(tune_project, trials=6, steps=1000)  # a batch long enough to be caught running
    storage = "sqlite:///optuna.db"
    first = tuner(tune_project, "--heartbeat", "1")
    deadline = time.monotonic() + 90
    while True:  # kill it mid-batch, once some trials are done and others have drawn their learning rates
        if trial_states(tune_project / "optuna.db").get("COMPLETE", 0) >= 2:
            running = only_study(storage).get_trials(states=(TrialState.RUNNING,))
            if any("lr" in trial.params for trial in running):
                break
        assert time.monotonic() < deadline and first.poll() is None, "the tuner ended before it could be killed"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = only_study(storage)
    done_before = finished_values(before)
    interrupted = [t for t in before.get_trials() if t.state == TrialState.RUNNING]

    finish(tuner(tune_project, "--heartbeat", "1"))

    after = only_study(storage)
    done_after = finished_values(after)
    assert len(done_after) == 6
    assert {number: done_after[number] for number in done_before} == done_before
    retried = {t.system_attrs.get("failed_trial"): t for t in after.get_trials() if "failed_trial" in t.system_attrs}
    for trial in interrupted:  # failed as stale, and run again with the same learning rate if it had drawn one
        assert after.trials[trial.number].state == TrialState.FAIL
        if trial.params:
            assert retried[trial.number].params == trial.params and retried[trial.number].state in FINISHED
    assert any(trial.params for trial in interrupted)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_workers_on_one_storage_finish_exactly_the_budget(tune_project, database, request):
    budget = 9  # odd, with batches of 2: the workers' last batches compete for the last slot
    edit_tune(tune_project, trials=budget, steps=600)
    storage = "sqlite:///optuna.db" if database == "sqlite" else request.getfixturevalue("postgres_url")
    name = f"two-workers-{database}-{os.getpid()}-{time.monotonic_ns()}"
    workers = [tuner(tune_project, "--storage", storage, "--study-name", name, "--heartbeat", "1") for _ in range(2)]
    for worker in workers:
        finish(worker)

    study = optuna.load_study(study_name=name, storage=storage)
    assert len(finished_values(study)) == budget
    assert len({trial.user_attrs["worker"] for trial in study.get_trials(states=FINISHED)}) == 2
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert all(trial.user_attrs.get("surplus") for trial in failed), "only surplus claims may fail"
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
