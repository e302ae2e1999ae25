"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

import json

import pytest

from src.errors import StudyError
from src.results import files
from src.results.files import read_table
from src.results.sweep import SweepSummary
from src.results.train import TrainSummary, read_history
from tests.results.tables import TUNING, raises_study_error, stage_directory, write_raw

TRAINING = TrainSummary(
    variant="vanilla",
    lr=0.5,
    lr_source="tune",
    seeds=[0, 1],
    steps=1000,
    batch_size=60,
    final_test_accuracy=[0.97, 0.975],
    final_test_accuracy_mean=0.9725,
    final_test_accuracy_std=0.0035,
    final_val_accuracy=[0.971, 0.974],
    champion_seed=1,
    n_diverged=0,
    device="cpu",
)


SWEEP_SUMMARY = SweepSummary(variant="bn", members=18, steps=200, device="cpu")


JSON_FILES = {"tune": TUNING, "train": TRAINING, "sweep": SWEEP_SUMMARY}


@pytest.mark.parametrize("summary", JSON_FILES.values(), ids=JSON_FILES.keys())
def test_a_json_file_reads_back_as_written_its_keys_in_field_order(tmp_path, summary):
    directory = stage_directory(tmp_path, summary)
    summary.write(directory)
    assert type(summary).read(directory) == summary
    assert list(json.loads((directory / summary.NAME).read_text())) == list(type(summary).model_fields)


@pytest.mark.parametrize("summary", JSON_FILES.values(), ids=JSON_FILES.keys())
def test_a_json_file_missing_a_key_is_one_error_naming_the_file_the_key_and_the_stage_to_rerun(tmp_path, summary):
    directory = stage_directory(tmp_path, summary)
    write_raw(directory / summary.NAME, {key: value for key, value in summary.model_dump().items() if key != "steps"})
    with pytest.raises(StudyError) as error:
        type(summary).read(directory)
    assert str(error.value) == (
        f"{directory / summary.NAME}: missing key 'steps'; "
        f"re-run `dvc repro {summary.STAGE}@{summary.variant}` to rewrite it"
    )


def test_a_missing_table_says_to_run_the_stage_that_writes_it(tmp_path):
    with raises_study_error(r"history\.csv: no such file \(run the stage that writes it first: `dvc repro`\)"):
        read_table(tmp_path / "history.csv", ["step"])


def test_a_table_missing_a_column_says_which_and_what_is_expected(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("step,seed,test_accuracy\n0,0,0.1\n")
    with raises_study_error(r"missing column\(s\) test_loss, diverged; expected step,seed,test_accuracy,"):
        read_history(path)


@pytest.mark.parametrize("content", ["", "step,seed\n"], ids=["empty", "header-only"])
def test_a_table_without_rows_is_refused(tmp_path, content):
    path = tmp_path / "history.csv"
    path.write_text(content)
    with raises_study_error(r"history\.csv: no rows$"):
        read_table(path, [])


def test_a_diverged_column_that_is_not_true_or_false_is_refused(tmp_path):
    path = tmp_path / "final.csv"
    path.write_text("seed,diverged\n0,False\n1,maybe\n")
    with raises_study_error(r"final\.csv: malformed value \(column diverged must be True or False\)"):
        read_table(path, ["seed", "diverged"])


def test_parsing_turns_a_bad_value_into_one_error_naming_the_file_and_lets_a_study_error_through(tmp_path):
    with (
        raises_study_error(r"x\.csv: malformed value \(could not convert string to float: 'y'\)$"),
        files.parsing(tmp_path / "x.csv"),
    ):
        float("y")
    with raises_study_error("^as it was$"), files.parsing(tmp_path / "x.csv"):
        raise StudyError("as it was")
