"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

import pytest

from src.errors import StudyError
from src.results.tune import TuningSummary, TuningTrial, read_trials, write_trials
from tests.results.tables import TUNING, first_row_with, raises_study_error, rewrite_csv, stage_directory, write_raw


@pytest.mark.parametrize(
    ("value", "problem"),
    [(-0.1, "Input should be greater than 0, got -0.1"), ("fast", "Input should be a valid number, got 'fast'")],
)
def test_a_best_json_with_a_bad_value_is_one_error_naming_the_file_and_the_key(tmp_path, value, problem):
    directory = stage_directory(tmp_path, TUNING)
    write_raw(directory / "best.json", {**TUNING.model_dump(), "best_lr": value})
    with pytest.raises(StudyError) as error:
        TuningSummary.read(directory)
    assert str(error.value) == (
        f"{directory / 'best.json'}: best_lr: {problem}; re-run `dvc repro tune@bn` to rewrite it"
    )


def test_a_best_json_with_a_key_it_does_not_define_is_refused_by_name(tmp_path):
    directory = stage_directory(tmp_path, TUNING)
    write_raw(directory / "best.json", {**TUNING.model_dump(), "best_momentum": 0.9})
    with raises_study_error(r"best\.json: unknown key 'best_momentum'"):
        TuningSummary.read(directory)


@pytest.mark.parametrize("content", ["{not json", "", "[1, 2"])
def test_a_best_json_that_is_not_json_says_so_and_what_rewrites_it(tmp_path, content):
    directory = stage_directory(tmp_path, TUNING)
    directory.mkdir(parents=True)
    (directory / "best.json").write_text(content)
    with raises_study_error(r"best\.json: not valid JSON \(.*\); re-run `dvc repro tune@bn` to rewrite it$"):
        TuningSummary.read(directory)


def test_a_missing_best_json_names_the_stage_that_writes_it(tmp_path):
    directory = stage_directory(tmp_path, TUNING)
    with pytest.raises(StudyError) as error:
        TuningSummary.read(directory)
    assert str(error.value) == f"{directory / 'best.json'}: no such file (run `dvc repro tune@bn` first)"


TRIALS = [
    TuningTrial(0, 0.05, 0.9, "PRUNED", False),
    TuningTrial(1, 0.5, 0.97, "COMPLETE", False),
    TuningTrial(2, 50.0, 0.098, "PRUNED", True),
    TuningTrial(3, 1.0, None, "FAIL", False),
]


def test_trials_read_back_as_written_a_failed_trial_without_a_value(tmp_path):
    write_trials(tmp_path, TRIALS)
    assert read_trials(tmp_path) == TRIALS
    assert (tmp_path / "trials.csv").read_text().splitlines()[0] == "number,lr,value,state,diverged"


def test_trials_are_read_in_trial_order_whatever_the_row_order(tmp_path):
    write_trials(tmp_path, TRIALS)
    rewrite_csv(tmp_path / "trials.csv", lambda header, rows: (header, rows[::-1]))
    assert [trial.number for trial in read_trials(tmp_path)] == [0, 1, 2, 3]


def test_a_trial_in_a_state_optuna_would_not_report_is_refused():
    with pytest.raises(ValueError, match="must be one of COMPLETE, PRUNED, FAIL, got 'RUNNING'"):
        TuningTrial(4, 0.1, 0.9, "RUNNING", False)


def test_a_trials_file_with_an_unknown_state_is_one_error_naming_it(tmp_path):
    write_trials(tmp_path, TRIALS)
    rewrite_csv(tmp_path / "trials.csv", lambda header, rows: (header, [*rows, {**rows[0], "state": "RUNNING"}]))
    with raises_study_error(r"trials\.csv: malformed value \(.*must be one of COMPLETE, PRUNED, FAIL, got 'RUNNING'"):
        read_trials(tmp_path)


@pytest.mark.parametrize(("column", "value"), [("lr", "fast"), ("value", "high"), ("number", "first")])
def test_a_malformed_value_in_trials_is_one_error_naming_the_file(tmp_path, column, value):
    write_trials(tmp_path, TRIALS)
    rewrite_csv(tmp_path / "trials.csv", first_row_with(column, value))
    with raises_study_error(rf"trials\.csv: malformed value \(.*'{value}'"):
        read_trials(tmp_path)
