"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from src import paths
from src.config import parse_params
from src.engine.schedule import eval_schedule
from src.engine.trainer import Evaluation, TrainingHistory
from src.errors import StudyError
from src.results import files
from src.results.edge import read_edge_final
from src.results.files import read_table
from src.results.members import read_predictions, write_final, write_history, write_predictions, write_sigmoid_inputs
from src.results.sweep import SweepSummary, read_sweep, read_sweep_final
from src.results.train import TrainSummary, model_paths, read_history, read_sigmoid_inputs, read_trained, write_models
from src.results.tune import TuningSummary, TuningTrial, read_trials, write_trials
from src.training.members import MemberTable
from tests import synthetic_results

SWEEP_FILES = ("final.csv", "history.csv", "sigmoid_inputs.csv")


@pytest.fixture(scope="module")
def raw_params(repo_root) -> dict:
    return synthetic_results.tiny_params(repo_root)


@pytest.fixture(scope="module")
def params(raw_params):
    return parse_params(raw_params)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """tmp_path as the working directory: the readers take paths relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def located_result(steps: tuple[int, ...], members: int, units: int) -> TrainingHistory:
    """Every value says where it came from (evaluation i, member k, level, unit), so a misplaced one shows."""
    i, k = np.arange(len(steps))[:, None], np.arange(members)[None, :]
    level, unit = np.arange(3)[None, :, None, None], np.arange(units)[None, None, None, :]
    diverged = np.zeros((len(steps), members), dtype=bool)
    diverged[-1, 1] = True
    final = Evaluation(
        step=steps[-1],
        accuracy=[0.9 + member / 1000 for member in range(members)],
        loss=[0.3 + member / 1000 for member in range(members)],
        diverged=[member == 1 for member in range(members)],
    )
    return TrainingHistory(
        eval_steps=steps,
        accuracy=0.5 + k / 100 + i / 1000,
        loss=1.0 + k / 100 + i / 1000,
        diverged=diverged,
        percentiles=i[:, :, None, None] * 1000 + level * 100 + k[:, None, :, None] + unit / 10,
        final=final,
        wall_time_s=1.0,
    )


def rewrite_csv(path: Path, edit) -> None:
    """Read the CSV at `path`, pass (header, rows) to `edit`, write back what it returns."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = edit(list(reader.fieldnames), list(reader))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def first_row_with(column: str, value: str):
    """An edit for rewrite_csv: the first row's `column` set to `value`."""
    return lambda header, rows: (header, [{**rows[0], column: value}, *rows[1:]])


def shuffled(header: list[str], rows: list[dict]) -> tuple[list[str], list[dict]]:
    random.Random(0).shuffle(rows)
    return header, rows


def raises_study_error(match: str):
    return pytest.raises(StudyError, match=match)


# --- the JSON files: best.json and the summaries ----------------------------------------------------------------

TUNING = TuningSummary(
    variant="bn",
    study_name="bn-mnist-bn",
    storage="sqlite:///optuna.db",
    best_lr=2.0,
    best_value=0.97,
    trials_budget=8,
    n_complete=5,
    n_pruned=2,
    n_failed=1,
    steps=100,
    device="cpu",
)
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


def stage_directory(root: Path, summary) -> Path:
    return root / paths.stage_dir(summary.STAGE, summary.variant)


def write_raw(path: Path, raw: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw))


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


# --- tune@: trials.csv ----------------------------------------------------------------------------------------

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


# --- train@ and sweep@: history.csv and sigmoid_inputs.csv ----------------------------------------------------

TUNED = MemberTable.tuned(0.5, 0.1, [0, 1, 2])
STEPS = (0, 50, 100)


def test_train_ats_history_is_written_per_seed_and_read_back_as_one_curve_per_seed(tmp_path):
    result = located_result(STEPS, len(TUNED), units=2)
    write_history(tmp_path, result, TUNED)
    assert (tmp_path / "history.csv").read_text().splitlines()[0] == "step,seed,test_accuracy,test_loss,diverged"
    curves = read_history(tmp_path / "history.csv")
    assert curves.seeds == [0, 1, 2]
    assert curves.steps.tolist() == list(STEPS)
    np.testing.assert_array_equal(curves.accuracy, result.accuracy.T)  # bit for bit: (seeds, evals)
    np.testing.assert_array_equal(curves.loss, result.loss.T)
    assert curves.diverged.tolist() == [False, True, False]  # seed 1 diverged at its last evaluation


def test_a_seed_missing_an_evaluation_has_nan_there(tmp_path):
    write_history(tmp_path, located_result(STEPS, len(TUNED), units=2), TUNED)
    drop = {"step": "50", "seed": "2"}
    rewrite_csv(
        tmp_path / "history.csv",
        lambda header, rows: (header, [row for row in rows if {k: row[k] for k in drop} != drop]),
    )
    curves = read_history(tmp_path / "history.csv")
    assert np.isnan(curves.accuracy[2, 1]) and np.isfinite(np.delete(curves.accuracy.ravel(), 2 * 3 + 1)).all()


def test_train_ats_sigmoid_inputs_are_read_back_per_seed_and_unit(tmp_path):
    result = located_result(STEPS, len(TUNED), units=2)
    write_sigmoid_inputs(tmp_path, result, TUNED)
    header = (tmp_path / "sigmoid_inputs.csv").read_text().splitlines()[0]
    assert header == "step,seed,unit,p15,p50,p85"
    inputs = read_sigmoid_inputs(tmp_path / "sigmoid_inputs.csv")
    assert sorted(inputs) == [(seed, unit) for seed in (0, 1, 2) for unit in (0, 1)]
    for (seed, unit), curve in inputs.items():
        assert curve.steps.tolist() == list(STEPS)
        for level, name in enumerate(("p15", "p50", "p85")):
            np.testing.assert_array_equal(getattr(curve, name), result.percentiles[:, level, seed, unit])
        np.testing.assert_array_equal(curve.stacked(), result.percentiles[:, :, seed, unit].T)


# --- reading any table ----------------------------------------------------------------------------------------


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


# --- train@: the models, and all of train@ read back together ------------------------------------------------


def test_the_models_are_found_in_seed_order(tmp_path):
    write_models(tmp_path / "bn", [{"w": torch.zeros(1)}] * 3, [10, 2, 1])
    (tmp_path / "bn" / "seed_x.pt").write_bytes(b"")  # not a seed's model
    paths = model_paths(tmp_path / "bn")
    assert list(paths) == [1, 2, 10]
    assert paths[2] == tmp_path / "bn" / "seed_2.pt"


def test_a_directory_without_models_is_refused(tmp_path):
    with raises_study_error(r"bn: no seed_\*\.pt models \(run the train stage first\)"):
        model_paths(tmp_path / "bn")


@pytest.fixture
def project(tree, tmp_path, monkeypatch) -> Path:
    """A private copy of the synthetic tree, as the working directory: a test may spoil it."""
    shutil.copytree(tree[0], tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_at_is_read_back_whole(project):
    run = read_trained("bn")
    assert run.summary.variant == "bn" and run.summary.lr == synthetic_results.LEARNING_RATES["bn"]
    assert run.curves.seeds == run.summary.seeds == list(run.models) == synthetic_results.SEEDS
    assert run.curves.steps.tolist() == synthetic_results.STEPS.tolist()
    assert run.curves.accuracy[1] == pytest.approx(synthetic_results.accuracy_curve("bn", 1))
    assert not run.curves.diverged.any()
    assert sorted(run.sigmoid_inputs) == [(s, u) for s in synthetic_results.SEEDS for u in range(2)]
    assert run.models[2] == Path("models/bn/seed_2.pt")


def drop_seed_2(spoilt: str) -> None:
    """Take seed 2 out of one of train@'s outputs for BN: its models, its history or its summary."""
    directory = Path("results/train/bn")
    if spoilt == "models":
        Path("models/bn/seed_2.pt").unlink()
    elif spoilt == "history":
        rewrite_csv(directory / "history.csv", lambda header, rows: (header, [r for r in rows if r["seed"] != "2"]))
    else:
        TrainSummary.read(directory).model_copy(update={"seeds": WITHOUT_2}).write(directory)


ALL = synthetic_results.SEEDS
WITHOUT_2 = [seed for seed in ALL if seed != 2]


@pytest.mark.parametrize(
    ("spoilt", "seeds"),
    [
        ("models", f"models/bn holds seeds {WITHOUT_2}, its history {ALL} and its summary {ALL}"),
        ("history", f"models/bn holds seeds {ALL}, its history {WITHOUT_2} and its summary {ALL}"),
        ("summary", f"models/bn holds seeds {ALL}, its history {ALL} and its summary {WITHOUT_2}"),
    ],
)
def test_models_history_and_summary_of_different_seeds_are_refused(project, spoilt, seeds):
    drop_seed_2(spoilt)
    with pytest.raises(StudyError) as error:
        read_trained("bn")
    assert str(error.value) == f"train@bn: {seeds}: re-run `dvc repro train@bn`"


@pytest.mark.parametrize("name", ["summary.json", "history.csv", "sigmoid_inputs.csv"])
def test_a_missing_train_output_is_named(project, name):
    Path("results/train/bn", name).unlink()
    with raises_study_error(rf"^results/train/bn/{name}: no such file \(run "):
        read_trained("bn")


# --- sweep@: read back on the grid of params.yaml --------------------------------------------------------------


def write_located_sweep(root: Path, params, variant: str = "bn") -> tuple[MemberTable, TrainingHistory]:
    """results/sweep/<variant>/ as sweep@ writes it for `params`, every value saying where it came from."""
    sweep = params.sweep
    members = MemberTable.grid(sweep)
    steps = eval_schedule(sweep.steps, sweep.eval_every, sweep.evals_per_decade)
    result = located_result(steps, len(members), params.train.tracked_units)
    directory = root / paths.stage_dir("sweep", variant)
    write_history(directory, result, members)
    write_sigmoid_inputs(directory, result, members)
    write_final(directory, result.final, members)
    return members, result


def test_read_sweep_puts_every_member_at_its_seed_init_std_and_rate(in_tmp, params):
    members, result = write_located_sweep(in_tmp, params)
    sweep = read_sweep("bn", params)
    grid = params.sweep
    assert sweep.learning_rates.tolist() == grid.learning_rates
    assert sweep.init_stds.tolist() == grid.init_stds and sweep.seeds == grid.seed_list
    assert sweep.steps.tolist() == list(result.eval_steps)
    shape = (len(grid.seed_list), len(grid.init_stds), len(grid.learning_rates))
    assert sweep.final_accuracy.shape == sweep.diverged.shape == shape
    assert sweep.accuracy.shape == (*shape, len(result.eval_steps))
    assert sweep.percentiles.shape == (*shape, params.train.tracked_units, 3, len(result.eval_steps))
    for member, (lr, init_std, seed) in enumerate(zip(members.lr, members.init_std, members.seed, strict=True)):
        cell = grid.seed_list.index(seed), grid.init_stds.index(init_std), grid.learning_rates.index(lr)
        assert sweep.final_accuracy[cell] == result.final.accuracy[member]
        assert sweep.diverged[cell] == result.final.diverged[member]
        np.testing.assert_array_equal(sweep.accuracy[cell], result.accuracy[:, member])
        # written (evals, levels, members, units), read (units, levels, evals)
        np.testing.assert_array_equal(sweep.percentiles[cell], result.percentiles[:, :, member, :].T)


def test_read_sweep_reads_the_grid_whatever_the_row_order(in_tmp, params):
    write_located_sweep(in_tmp, params)
    expected = read_sweep("bn", params)
    for name in SWEEP_FILES:
        rewrite_csv(in_tmp / "results" / "sweep" / "bn" / name, shuffled)
    shuffled_rows = read_sweep("bn", params)
    for field in ("final_accuracy", "diverged", "accuracy", "percentiles"):
        np.testing.assert_array_equal(getattr(shuffled_rows, field), getattr(expected, field))


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_a_missing_sweep_file_is_one_error_naming_it(in_tmp, params, name):
    write_located_sweep(in_tmp, params)
    (in_tmp / "results" / "sweep" / "bn" / name).unlink()
    with raises_study_error(rf"^results/sweep/bn/{name}: no such file \(run the stage that writes it"):
        read_sweep("bn", params)


@pytest.mark.parametrize(
    ("name", "column"),
    [("final.csv", "diverged"), ("final.csv", "seed"), ("history.csv", "test_accuracy"), ("sigmoid_inputs.csv", "p85")],
)
def test_a_missing_sweep_column_is_one_error_naming_it(in_tmp, params, name, column):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn" / name, lambda header, rows: ([c for c in header if c != column], rows))
    with raises_study_error(rf"^results/sweep/bn/{name}: missing column\(s\) {column};"):
        read_sweep("bn", params)


def test_a_grid_cell_without_a_row_is_one_error_naming_the_file_and_the_cell(in_tmp, params):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn/final.csv", lambda header, rows: (header, rows[:-1]))
    with pytest.raises(StudyError) as error:
        read_sweep("bn", params)
    assert str(error.value) == (
        "results/sweep/bn/final.csv: no row for {'seed': 9, 'init_std': 1.0, 'lr': 10.0}; re-run `dvc repro sweep@bn`"
    )


@pytest.mark.parametrize("name", ["history.csv", "sigmoid_inputs.csv"])
def test_an_evaluation_without_a_row_is_refused(in_tmp, params, name):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn" / name, lambda header, rows: (header, rows[1:]))
    with raises_study_error(rf"^results/sweep/bn/{name}: no row for \{{'seed': 0, 'init_std': 0\.1, 'lr': 0\.1, "):
        read_sweep("bn", params)


def test_a_row_outside_the_grid_of_params_is_one_error_naming_it(in_tmp, params):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn/final.csv", lambda header, rows: (header, [*rows, {**rows[0], "seed": 10}]))
    with pytest.raises(StudyError) as error:
        read_sweep("bn", params)
    assert str(error.value) == (
        "results/sweep/bn/final.csv: the row for {'seed': 10, 'init_std': 0.1, 'lr': 0.1} is outside params.yaml's "
        "sweep; re-run `dvc repro sweep@bn`"
    )


def test_a_row_given_twice_is_one_error_naming_it(in_tmp, params):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn/history.csv", lambda header, rows: (header, [*rows, rows[5]]))
    with raises_study_error(r"^results/sweep/bn/history\.csv: the row for \{'seed': .*\} is given twice; re-run"):
        read_sweep("bn", params)


@pytest.mark.parametrize(("name", "column"), [("final.csv", "test_accuracy"), ("sigmoid_inputs.csv", "p50")])
def test_a_malformed_sweep_value_is_one_error_naming_the_file(in_tmp, params, name, column):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn" / name, first_row_with(column, "high"))
    with raises_study_error(rf"^results/sweep/bn/{name}: malformed value \(could not convert string to float: 'high'"):
        read_sweep("bn", params)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"seeds": 2}, "final.csv: no row for {'seed': 2, "),
        (
            {"seeds": 11},
            "final.csv: the row for {'seed': 10, 'init_std': 0.1, 'lr': 0.1} is outside params.yaml's sweep",
        ),
        ({"lr_max": 1.0}, "final.csv: no row for {'seed': 0, 'init_std': 0.1, 'lr': 10.0}"),
        ({"init_stds": [0.1]}, "final.csv: no row for {'seed': 0, 'init_std': 1.0, 'lr': 0.1}"),
        ({"eval_every": 100}, "history.csv: no row for {'seed': 0, 'init_std': 0.1, 'lr': 0.1, 'step': 20}"),
    ],
    ids=["fewer-seeds", "more-seeds", "fewer-rates", "fewer-init-stds", "fewer-evaluations"],
)
def test_a_sweep_over_another_grid_than_params_is_refused(in_tmp, raw_params, params, change, problem):
    # the grid comes from params.yaml, not from the files: a sweep of other settings cannot pass as this one
    other = parse_params(
        {
            **raw_params,
            "sweep": {**raw_params["sweep"], **change},
            "evaluate": {**raw_params["evaluate"], "figure1_lrs": [0.1]},
        }
    )
    write_located_sweep(in_tmp, other)
    with pytest.raises(StudyError) as error:
        read_sweep("bn", params)
    assert str(error.value).startswith(f"results/sweep/bn/{problem}")


def test_read_sweep_final_is_the_sweeps_final_accuracy_and_divergence_on_the_grid(in_tmp, params):
    write_located_sweep(in_tmp, params)
    final_accuracy, diverged = read_sweep_final("bn", params)
    sweep = read_sweep("bn", params)
    np.testing.assert_array_equal(final_accuracy, sweep.final_accuracy)
    np.testing.assert_array_equal(diverged, sweep.diverged)
    assert diverged.dtype == bool and diverged.sum() == 1


# --- predictions.npz: each member's predicted class of every test image, tied to its member table ------------------


def _predictions(members: MemberTable, images: int = 50) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 10, (len(members), images)).astype(np.uint8)


def test_predictions_read_back_as_written_for_the_members_they_were_written_for(tmp_path, params):
    members = MemberTable.grid(params.sweep)
    predicted = _predictions(members)
    directory = tmp_path / paths.stage_dir("sweep", "bn")
    write_predictions(directory, predicted.astype(np.int64), members)
    assert [path.name for path in directory.iterdir()] == ["predictions.npz"]  # no temporary file left behind
    read = read_predictions(directory, members)
    assert read.dtype == np.uint8
    np.testing.assert_array_equal(read, predicted)
    tuned = MemberTable.tuned(0.5, 0.1, [0, 1, 2])
    write_predictions(directory, _predictions(tuned), tuned)
    np.testing.assert_array_equal(read_predictions(directory, tuned), _predictions(tuned))


@pytest.mark.parametrize(
    "other",
    [
        MemberTable.tuned(0.5, 0.1, [0, 1, 2, 3]),  # more seeds
        MemberTable.tuned(0.6, 0.1, [0, 1, 2]),  # another rate
        MemberTable.tuned(0.5, 1.0, [0, 1, 2]),  # another init
        MemberTable.tuned(0.5, 0.1, [2, 1, 0]),  # another order
    ],
    ids=["more seeds", "another rate", "another init", "another order"],
)
def test_predictions_written_for_other_members_are_refused_in_one_line(tmp_path, other):
    directory = tmp_path / "results" / "train" / "bn"
    written = MemberTable.tuned(0.5, 0.1, [0, 1, 2])
    write_predictions(directory, _predictions(written), written)
    with pytest.raises(StudyError) as error:
        read_predictions(directory, other)
    assert str(error.value) == (
        f"{directory}/predictions.npz: written for other members than params.yaml's; re-run `dvc repro train@bn`"
    )


def test_a_missing_predictions_file_says_which_stage_writes_it(tmp_path):
    directory = tmp_path / "results" / "sweep" / "vanilla"
    with raises_study_error(rf"^{directory}/predictions\.npz: no such file \(run `dvc repro sweep@vanilla` first\)$"):
        read_predictions(directory, MemberTable.tuned(0.5, 0.1, [0]))


@pytest.mark.parametrize("content", [b"not an archive", None], ids=["not npz", "a key missing"])
def test_a_file_that_is_not_a_predictions_archive_is_one_line(tmp_path, content):
    directory = tmp_path / "results" / "train" / "bn"
    directory.mkdir(parents=True)
    path = directory / "predictions.npz"
    if content is None:
        np.savez(path, predicted=np.zeros((1, 3), dtype=np.uint8), lr=np.array([0.5]))  # no init_std, no seed
    else:
        path.write_bytes(content)
    with raises_study_error(rf"^{path}: not a predictions file \(.*\); re-run `dvc repro train@bn`$"):
        read_predictions(directory, MemberTable.tuned(0.5, 0.1, [0]))


# --- edge@'s final.csv: exactly the members the sweep's results call for ----------------------------------------


def _refined(params) -> MemberTable:
    brackets = [(seed, 0.1, 1.0, 10.0) for seed in params.sweep.seed_list]
    return MemberTable.refining(brackets, params.edge.rates_between)


def _write_edge(root: Path, members: MemberTable) -> Evaluation:
    final = Evaluation(
        step=200,
        accuracy=[0.9 + k / 1000 for k in range(len(members))],
        loss=[0.3] * len(members),
        diverged=[k % 4 == 3 for k in range(len(members))],
    )
    write_final(root / paths.stage_dir("edge", "bn"), final, members)
    return final


def test_edge_results_read_back_in_the_order_of_the_members_the_sweep_calls_for(in_tmp, params):
    members = _refined(params)
    final = _write_edge(in_tmp, members)
    accuracy, diverged = read_edge_final("bn", members)
    assert accuracy.tolist() == final.accuracy and diverged.tolist() == final.diverged


@pytest.mark.parametrize(
    "spoil",
    [
        lambda members: MemberTable(members.lr[:-5], members.init_std[:-5], members.seed[:-5]),  # a seed short
        lambda members: MemberTable(tuple(lr * 1.01 for lr in members.lr), members.init_std, members.seed),
        lambda members: MemberTable(members.lr, tuple(1.0 for _ in members.lr), members.seed),
    ],
    ids=["fewer members", "other rates", "another init"],
)
def test_edge_results_for_other_members_are_refused_in_one_line(in_tmp, params, spoil):
    members = _refined(params)
    _write_edge(in_tmp, spoil(members))
    with pytest.raises(StudyError) as error:
        read_edge_final("bn", members)
    assert str(error.value) == (
        "results/edge/bn/final.csv: not the members the sweep's results call for; re-run `dvc repro edge@bn`"
    )


def test_a_missing_edge_file_is_one_line(in_tmp, params):
    with raises_study_error(r"^results/edge/bn/final\.csv: no such file \(run the stage that writes it first"):
        read_edge_final("bn", _refined(params))
