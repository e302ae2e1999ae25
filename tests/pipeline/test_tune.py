"""Stage tune@variant: the study tuned in place, and best.json and trials.csv written as the study stands."""

from __future__ import annotations

import csv
import json

import optuna
import pytest

from pipeline import tune as tune_stage
from tests.tuning import STEPS, edit_tune

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _outputs(project) -> tuple[dict, list[dict], list[str]]:
    """best.json, trials.csv's rows and its columns."""
    best = json.loads((project / "results/tune/bn/best.json").read_text())
    with (project / "results/tune/bn/trials.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    return best, rows, reader.fieldnames


def test_best_json_names_the_trial_with_the_highest_validation_accuracy_of_the_study(tune_project):
    edit_tune(tune_project, trials=4, trials_per_batch=4)
    tune_stage.main(["--variant", "bn"])

    best, rows, _ = _outputs(tune_project)
    values = {float(row["lr"]): float(row["value"]) for row in rows}
    assert len(values) == 4 and len(set(values.values())) > 1, "the trials tie: no best to tell apart"
    assert best["best_lr"] == max(values, key=values.get)
    assert best["best_value"] == max(values.values())
    study = optuna.load_study(study_name=best["study_name"], storage="sqlite:///optuna.db")
    assert {trial.params["lr"]: trial.value for trial in study.trials} == values
    assert (best["best_lr"], best["best_value"]) == (study.best_params["lr"], study.best_value)


def test_outputs_follow_the_contract(tune_project):
    tune_stage.main(["--variant", "bn"])

    best, rows, columns = _outputs(tune_project)
    assert list(best) == [
        "variant",
        "study_name",
        "storage",
        "best_lr",
        "best_value",
        "trials_budget",
        "n_complete",
        "n_pruned",
        "n_failed",
        "steps",
        "device",
    ]
    assert best["variant"] == "bn" and best["storage"] == "sqlite:///optuna.db" and best["device"] == "cpu"
    assert best["trials_budget"] == 4 and best["n_complete"] + best["n_pruned"] == 4 and best["steps"] == STEPS
    assert columns == ["number", "lr", "value", "state", "diverged"]
    assert [int(row["number"]) for row in rows] == [0, 1, 2, 3]
    assert {row["state"] for row in rows} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert {row["diverged"] for row in rows} <= {"True", "False"}
    assert all(1e-4 <= float(row["lr"]) <= 10.0 and 0 <= float(row["value"]) <= 1 for row in rows)
