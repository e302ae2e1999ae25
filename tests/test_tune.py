"""Optuna tunes each variant's learning rate on validation accuracy, within an exact budget shared by all workers.

Subprocess tests run `python -m src.tune` in a scratch directory holding a small params.yaml and synthetic
processed data without a test split (tuning must never read it), so the default storage sqlite:///optuna.db
lands there too.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from pipeline import tune as tune_stage
from src import tune
from src.cli import report_user_errors
from src.config import TuneConfig, load_params, with_overrides
from src.engine import Evaluation, TrainResult
from src.errors import StudyError
from src.study import default_study_name, open_storage, open_study, study_settings
from src.trials import DIVERGED_VALUE, TrialWorker
from tests import synthetic
from tests.processes import REPO_ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS, EVAL_EVERY = 200, 50
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path, repo_root, mlflow_store, monkeypatch) -> Path:
    """A scratch repository root: a small params.yaml and data/processed with train and val splits only."""
    synthetic.write_processed(tmp_path / "data" / "processed", {"train": 600, "val": 200})
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["model"].update(hidden_units=32, population_batches=20)
    params["train"].update(batch_size=20, device="cpu", tracked_units=4)
    params["tune"].update(
        trials=4,
        trials_per_batch=2,
        steps=STEPS,
        eval_every=EVAL_EVERY,
        lr_min=1.0e-4,  # the seeded draws span rates that cannot learn in STEPS steps and rates that can
        lr_max=10.0,
        storage="sqlite:///optuna.db",
        pruning_warmup_evals=1,
    )
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_params(directory: Path, params: dict) -> None:
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


def edit_params(directory: Path, **tune_values) -> None:
    params = yaml.safe_load((directory / "params.yaml").read_text())
    params["tune"].update(tune_values)
    write_params(directory, params)


def tuner(directory: Path, *args: str) -> subprocess.Popen:
    """`python -m src.tune --variant bn ...` running in `directory` (the repository importable)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "src.tune", "--variant", "bn", *args],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def only_study(storage: str) -> optuna.Study:
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def finished_trials(study: optuna.Study) -> dict[int, float]:
    return {trial.number: trial.value for trial in study.get_trials(states=FINISHED)}


def trial_states(database: Path) -> dict[str, int]:
    """How many trials are in each state, read without creating or locking anything the tuner writes."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            return dict(connection.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall())
    except sqlite3.OperationalError:  # not created yet
        return {}


def user_error(argv: list[str], capsys, main=tune.main) -> str:
    """What the command line prints for a user mistake; it must exit with status 2 and one line."""
    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: main(argv))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --- the study -----------------------------------------------------------------------------------------------


def test_the_stage_picks_a_learning_rate_that_learns_over_one_that_cannot(workdir):
    edit_params(workdir, trials=4, trials_per_batch=4)
    tune_stage.main(["--variant", "bn"])

    best = json.loads((workdir / "results/tune/bn/best.json").read_text())
    with (workdir / "results/tune/bn/trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    values = {float(row["lr"]): float(row["value"]) for row in rows}
    assert len(values) == 4
    assert min(values) < 1e-3 < 1e-2 < max(values)
    assert values[min(values)] < 0.5, "a tiny learning rate cannot learn in the step budget"
    assert best["best_lr"] == max(values, key=values.get)
    assert best["best_lr"] > 1e-2
    assert best["best_value"] == max(values.values()) > 0.9


def test_outputs_follow_the_contract(workdir):
    tune_stage.main(["--variant", "bn"])

    best = json.loads((workdir / "results/tune/bn/best.json").read_text())
    assert list(best) == [
        "variant", "study_name", "storage", "best_lr", "best_value",
        "trials_budget", "n_complete", "n_pruned", "n_failed", "steps", "device",
    ]  # fmt: skip
    assert best["variant"] == "bn" and best["storage"] == "sqlite:///optuna.db" and best["device"] == "cpu"
    assert best["trials_budget"] == 4 and best["n_complete"] + best["n_pruned"] == 4 and best["steps"] == STEPS
    with (workdir / "results/tune/bn/trials.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["number", "lr", "value", "state", "diverged"]
    assert [int(row["number"]) for row in rows] == [0, 1, 2, 3]
    assert {row["state"] for row in rows} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert {row["diverged"] for row in rows} <= {"True", "False"}
    assert all(1e-4 <= float(row["lr"]) <= 10.0 and 0 <= float(row["value"]) <= 1 for row in rows)


def test_every_trial_is_a_nested_mlflow_run_and_the_best_is_tagged(workdir):
    tune_stage.main(["--variant", "bn"])

    best = json.loads((workdir / "results/tune/bn/best.json").read_text())
    runs = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.data.tags["stage"] == "tune" and parent.data.tags["variant"] == "bn"
    assert sorted(int(run.data.tags["trial"]) for run in children) == [0, 1, 2, 3]
    for run in children:
        assert run.data.tags["state"] in {"COMPLETE", "PRUNED", "diverged"}
        assert {"lr", "trial"} <= set(run.data.params)
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_accuracy")
        assert [point.step for point in history][:2] == [0, EVAL_EVERY]
    (tagged,) = [run for run in children if run.data.tags["best_trial"] == "true"]
    assert float(tagged.data.params["lr"]) == best["best_lr"]


def _stand_in(outcomes: dict[float, str], stops: list[list[bool]]):
    """A fake engine: 'good' learning rates climb to 1.0, 'poor' ones stay at 0.1, 'diverges' blows up at 100."""

    def train_batch(learning_rates, on_eval) -> TrainResult:
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
        return TrainResult(steps, accuracy, np.ones_like(accuracy), diverged, None, final, stopped, wall_time_s=0.0)

    return train_batch


def _tune(**changes) -> TuneConfig:
    """The repository's tune section with a small budget, two trials a batch and a range holding every outcome."""
    values = dict(trials=4, trials_per_batch=2, lr_min=1e-5, lr_max=100.0, steps=STEPS, seed=0, timeout_s=None,
                  eval_every=EVAL_EVERY, pruning_warmup_evals=1)  # fmt: skip
    overrides = {f"tune.{key}": value for key, value in {**values, **changes}.items()}
    return with_overrides(load_params(REPO_ROOT / "params.yaml"), overrides).tune


SETTINGS = {"variant": "bn", "steps": STEPS}  # what identifies a study (src/study.study_settings, in short)


def test_a_poor_trial_is_pruned_and_stopped_and_a_diverged_one_scores_zero(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db", heartbeat_s=1)
    study = open_study(storage, "s", SETTINGS, _tune())
    outcomes = {0.5: "good", 0.4: "good", 50.0: "diverges", 1e-4: "poor"}
    for lr in outcomes:  # the first batch (0.5, 0.4) completes; the second is judged against it
        study.enqueue_trial({"lr": lr})
    stops = []

    TrialWorker(study, storage, _tune(), heartbeat_s=1).run(_stand_in(outcomes, stops))

    trials = {trial.params["lr"]: trial for trial in study.get_trials()}
    assert trials[0.5].state == trials[0.4].state == TrialState.COMPLETE and trials[0.5].value == 1.0
    assert trials[50.0].state == TrialState.COMPLETE and trials[50.0].value == DIVERGED_VALUE
    assert trials[50.0].user_attrs["diverged"] is True and trials[50.0].user_attrs["accuracy_at_divergence"] == 0.1
    assert trials[1e-4].state == TrialState.PRUNED and trials[1e-4].user_attrs["diverged"] is False
    # warmup 1 evaluation: the poor trial is reported at 50, pruned at 100, and stopped from then on
    assert sorted(trials[1e-4].intermediate_values) == [50, 100]
    assert stops[-3:] == [[False, True], [False, True], [False, True]]
    assert study.best_params == {"lr": 0.5}


def test_workers_asking_at_once_fail_their_surplus_trials_before_training(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = open_storage(url)
    study = open_study(storage, "s", SETTINGS, _tune())
    other_worker = optuna.load_study(study_name="s", storage=url)
    theirs = [other_worker.ask() for _ in range(2)]  # both counted 0 of a budget of 3, and asked at once

    mine = TrialWorker(study, storage, _tune(trials=3)).ask_within_budget(2)

    assert [trial.number for trial in theirs] == [0, 1]
    assert [trial.number for trial in mine] == [2]
    surplus = study.get_trials(states=(TrialState.FAIL,))
    assert [(trial.number, trial.user_attrs) for trial in surplus] == [(3, {"surplus": True})]


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_requeued(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = open_storage(url)
    study = open_study(storage, "s", SETTINGS, _tune())
    orphan = optuna.load_study(study_name="s", storage=url).ask()  # asked, then its worker was killed
    orphan.suggest_float("lr", 1e-4, 1.0, log=True)
    worker = TrialWorker(study, storage, _tune(trials=4))
    (kept,) = worker.ask_within_budget(1)

    worker.fail_dead_trials(grace_s=60)
    assert study.trials[orphan.number].state == TrialState.RUNNING, "still within its grace period"
    worker.fail_dead_trials(grace_s=0)

    assert study.trials[orphan.number].state == TrialState.FAIL
    assert study.trials[kept.number].state == TrialState.RUNNING
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert queued.params == orphan.params and queued.system_attrs["failed_trial"] == orphan.number


def test_a_study_only_resumes_under_the_settings_it_was_run_with(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db")
    open_study(storage, "s", SETTINGS, _tune())
    open_study(storage, "s", SETTINGS, _tune(trials_per_batch=4))  # the budget and batching may change
    with pytest.raises(StudyError, match=r"study 's' was run under other settings \(steps: 200 -> 100\)"):
        open_study(storage, "s", {**SETTINGS, "steps": 100}, _tune())


def test_the_default_study_name_changes_with_the_settings_but_not_with_the_budget(workdir):
    params = load_params()
    name = default_study_name(study_settings(params, "bn", "cpu"))
    more_trials = with_overrides(params, {"tune.trials": 99})
    longer = with_overrides(params, {"tune.steps": 999})
    assert name.startswith("bn-mnist-bn-")
    assert default_study_name(study_settings(more_trials, "bn", "cpu")) == name
    assert default_study_name(study_settings(longer, "bn", "cpu")) != name
    assert default_study_name(study_settings(params, "bn", "cuda")) != name, "a study is per device type"


# --- resume and concurrent workers ---------------------------------------------------------------------------


def test_a_killed_tuner_resumes_without_losing_or_redoing_a_finished_trial(workdir):
    edit_params(workdir, trials=6, steps=1000)  # a batch long enough to be caught running
    storage = "sqlite:///optuna.db"
    first = tuner(workdir, "--heartbeat", "1")
    deadline = time.monotonic() + 90
    while True:  # kill it mid-batch, once some trials are done and others have drawn their learning rates
        if trial_states(workdir / "optuna.db").get("COMPLETE", 0) >= 2:
            running = only_study(storage).get_trials(states=(TrialState.RUNNING,))
            if any("lr" in trial.params for trial in running):
                break
        assert time.monotonic() < deadline and first.poll() is None, "the tuner ended before it could be killed"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = only_study(storage)
    done_before = finished_trials(before)
    interrupted = [t for t in before.get_trials() if t.state == TrialState.RUNNING]

    finish(tuner(workdir, "--heartbeat", "1"))

    after = only_study(storage)
    done_after = finished_trials(after)
    assert len(done_after) == 6
    assert {number: done_after[number] for number in done_before} == done_before
    retried = {t.system_attrs.get("failed_trial"): t for t in after.get_trials() if "failed_trial" in t.system_attrs}
    for trial in interrupted:  # failed as stale, and run again with the same learning rate if it had drawn one
        assert after.trials[trial.number].state == TrialState.FAIL
        if trial.params:
            assert retried[trial.number].params == trial.params and retried[trial.number].state in FINISHED
    assert any(trial.params for trial in interrupted)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_workers_on_one_storage_finish_exactly_the_budget(workdir, database, request):
    budget = 9  # odd, with batches of 2: the workers' last batches compete for the last slot
    edit_params(workdir, trials=budget, steps=600)
    storage = "sqlite:///optuna.db" if database == "sqlite" else request.getfixturevalue("postgres_url")
    name = f"two-workers-{database}-{os.getpid()}-{time.monotonic_ns()}"
    workers = [tuner(workdir, "--storage", storage, "--study-name", name, "--heartbeat", "1") for _ in range(2)]
    for worker in workers:
        finish(worker)

    study = optuna.load_study(study_name=name, storage=storage)
    assert len(finished_trials(study)) == budget
    assert len({trial.user_attrs["worker"] for trial in study.get_trials(states=FINISHED)}) == 2
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert all(trial.user_attrs.get("surplus") for trial in failed), "only surplus claims may fail"
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


# --- the command line ----------------------------------------------------------------------------------------


def test_an_unknown_variant_is_one_line_and_exit_2_from_the_shell(workdir):
    process = subprocess.run(
        [sys.executable, "-m", "src.tune", "--variant", "resnet"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    (line,) = process.stderr.strip().splitlines()
    assert line.startswith("error: argument --variant: invalid choice: 'resnet' (choose from")


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("not a url", "storage 'not a url' is not a database URL"),
        ("mongodb://h/db", "storage mongodb://h/db: unsupported database 'mongodb' (use sqlite or postgresql)"),
        ("postgresql://tuner:s3cret@127.0.0.1:1/db", "storage postgresql://tuner:***@127.0.0.1:1/db: cannot connect"),
        ("sqlite:////no/such/dir/optuna.db", "storage sqlite:////no/such/dir/optuna.db: cannot connect"),
    ],
)
def test_a_bad_storage_url_is_one_line_naming_it_without_its_password(workdir, capsys, storage, message):
    line = user_error(["--variant", "bn", "--storage", storage], capsys)
    assert line.startswith(f"error: {message}")
    assert "s3cret" not in line


def test_a_bad_range_is_one_line(workdir, capsys):
    assert user_error(["--variant", "bn", "--trials", "0"], capsys) == (
        "error: command line: tune.trials: Input should be greater than 0, got 0"
    )
    assert user_error(["--variant", "bn", "--heartbeat", "0"], capsys) == (
        "error: command line: --heartbeat: Input should be greater than 0, got 0"
    )
    assert user_error(["--variant", "bn", "--steps", "many"], capsys) == (
        "error: argument --steps: invalid int value: 'many'"
    )
    edit_params(workdir, lr_min=1.0, lr_max=0.1)
    assert user_error(["--variant", "bn"], capsys) == (
        "error: params.yaml: tune: lr_min must be < lr_max, got lr_min=1.0, lr_max=0.1"
    )
    assert user_error(["--variant", "bn"], capsys, main=tune_stage.main).startswith("error: params.yaml: tune:")


# each override flag, the tune key it stands for, and a value out of that key's range
BAD_OVERRIDES = [
    ("--trials", "trials", 0),
    ("--steps", "steps", -5),
    ("--timeout", "timeout_s", 0.0),
    ("--storage", "storage", ""),
]


@pytest.mark.parametrize(("flag", "key", "value"), BAD_OVERRIDES)
def test_a_bad_override_is_the_line_a_bad_params_file_gives_but_for_its_source(workdir, capsys, flag, key, value):
    from_flag = user_error(["--variant", "bn", flag, str(value)], capsys)
    edit_params(workdir, **{key: value})
    from_file = user_error(["--variant", "bn"], capsys)

    assert from_flag.startswith(f"error: command line: tune.{key}: ")
    assert from_flag.removeprefix("error: command line: ") == from_file.removeprefix("error: params.yaml: ")
