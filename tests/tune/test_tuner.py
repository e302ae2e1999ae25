"""`python -m src.tune`: a worker joins the variant's study, logs every trial as a nested MLflow run with the best
tagged, and takes overrides that are validated like params.yaml."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest

from src.cli import report_user_errors
from src.config import load_params
from src.tune import __main__ as tune_cli
from src.tune import tuner
from tests.processes import stage_env
from tests.tuning import EVAL_EVERY, edit_tune

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def user_error(argv: list[str], capsys) -> str:
    """What the command line prints for a user mistake; it must exit with status 2 and one line."""
    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: tune_cli.main(argv))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_every_trial_is_a_child_run_of_the_stage_run_in_the_tuning_experiment_and_the_best_is_tagged(tune_project):
    study = tuner.tune_variant(load_params().tune_run, load_params().tune, "bn")

    (parent,) = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    children = mlflow.search_runs(experiment_names=["bn-mnist-tune"], output_format="list")
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    assert parent.data.tags["stage"] == "tune" and parent.data.tags["variant"] == "bn"
    assert parent.data.tags["member_runs_experiment"] == "bn-mnist-tune"
    assert sorted(int(run.data.tags["trial"]) for run in children) == [0, 1, 2, 3]
    for run in children:
        assert run.data.tags["state"] in {"COMPLETE", "PRUNED", "diverged"}
        assert {"lr", "trial"} <= set(run.data.params)
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_accuracy")
        assert [point.step for point in history][:2] == [0, EVAL_EVERY]
    (tagged,) = [run for run in children if run.data.tags["best_trial"] == "true"]
    assert float(tagged.data.params["lr"]) == study.best_params["lr"]


def test_an_unknown_variant_is_one_line_and_exit_2_from_the_shell(tune_project):
    process = subprocess.run(
        [sys.executable, "-m", "src.tune", "--variant", "resnet"], env=stage_env(), capture_output=True, text=True
    )
    assert process.returncode == 2
    (line,) = process.stderr.strip().splitlines()
    assert line.startswith("error: argument --variant: invalid choice: 'resnet' (choose from")


def test_a_bad_range_is_one_line(tune_project, capsys):
    assert user_error(["--variant", "bn", "--trials", "0"], capsys) == (
        "error: command line: tune.trials: Input should be greater than 0, got 0"
    )
    assert user_error(["--variant", "bn", "--heartbeat", "0"], capsys) == (
        "error: command line: --heartbeat: Input should be greater than 0, got 0"
    )
    assert user_error(["--variant", "bn", "--steps", "many"], capsys) == (
        "error: argument --steps: invalid int value: 'many'"
    )
    edit_tune(tune_project, lr_min=1.0, lr_max=0.1)
    assert user_error(["--variant", "bn"], capsys) == (
        "error: params.yaml: tune: lr_min must be < lr_max, got lr_min=1.0, lr_max=0.1"
    )


# each override flag, the tune key it stands for, and a value out of that key's range
BAD_OVERRIDES = [
    ("--trials", "trials", 0),
    ("--steps", "steps", -5),
    ("--timeout", "timeout_s", 0.0),
    ("--storage", "storage", ""),
]


@pytest.mark.parametrize(("flag", "key", "value"), BAD_OVERRIDES)
def test_a_bad_override_is_the_line_a_bad_params_file_gives_but_for_its_source(tune_project, capsys, flag, key, value):
    from_flag = user_error(["--variant", "bn", flag, str(value)], capsys)
    edit_tune(tune_project, **{key: value})
    from_file = user_error(["--variant", "bn"], capsys)

    assert from_flag.startswith(f"error: command line: tune.{key}: ")
    assert from_flag.removeprefix("error: command line: ") == from_file.removeprefix("error: params.yaml: ")
