"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from src import paths
from src.config import parse_params
from src.engine.schedule import eval_schedule
from src.engine.trainer import TrainingHistory
from src.errors import StudyError
from src.results.edge import read_edge_final
from src.results.members import write_final, write_history, write_sigmoid_inputs
from src.results.sweep import read_sweep, read_sweep_final
from src.training.members import MemberTable
from tests.results.tables import _refined, _write_edge, first_row_with, located_result, raises_study_error, rewrite_csv

SWEEP_FILES = ("final.csv", "history.csv", "sigmoid_inputs.csv")


def shuffled(header: list[str], rows: list[dict]) -> tuple[list[str], list[dict]]:
    random.Random(0).shuffle(rows)
    return header, rows


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
    sweep = read_sweep("bn", params.sweep, params.train.tracked_units)
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
    expected = read_sweep("bn", params.sweep, params.train.tracked_units)
    for name in SWEEP_FILES:
        rewrite_csv(in_tmp / "results" / "sweep" / "bn" / name, shuffled)
    shuffled_rows = read_sweep("bn", params.sweep, params.train.tracked_units)
    for field in ("final_accuracy", "diverged", "accuracy", "percentiles"):
        np.testing.assert_array_equal(getattr(shuffled_rows, field), getattr(expected, field))


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_a_missing_sweep_file_is_one_error_naming_it(in_tmp, params, name):
    write_located_sweep(in_tmp, params)
    (in_tmp / "results" / "sweep" / "bn" / name).unlink()
    with raises_study_error(rf"^results/sweep/bn/{name}: no such file \(run the stage that writes it"):
        read_sweep("bn", params.sweep, params.train.tracked_units)


@pytest.mark.parametrize(
    ("name", "column"),
    [("final.csv", "diverged"), ("final.csv", "seed"), ("history.csv", "test_accuracy"), ("sigmoid_inputs.csv", "p85")],
)
def test_a_missing_sweep_column_is_one_error_naming_it(in_tmp, params, name, column):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn" / name, lambda header, rows: ([c for c in header if c != column], rows))
    with raises_study_error(rf"^results/sweep/bn/{name}: missing column\(s\) {column};"):
        read_sweep("bn", params.sweep, params.train.tracked_units)


def test_a_grid_cell_without_a_row_is_one_error_naming_the_file_and_the_cell(in_tmp, params):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn/final.csv", lambda header, rows: (header, rows[:-1]))
    with pytest.raises(StudyError) as error:
        read_sweep("bn", params.sweep, params.train.tracked_units)
    assert str(error.value) == (
        "results/sweep/bn/final.csv: no row for {'seed': 9, 'init_std': 1.0, 'lr': 10.0}; re-run `dvc repro sweep@bn`"
    )


@pytest.mark.parametrize("name", ["history.csv", "sigmoid_inputs.csv"])
def test_an_evaluation_without_a_row_is_refused(in_tmp, params, name):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn" / name, lambda header, rows: (header, rows[1:]))
    with raises_study_error(rf"^results/sweep/bn/{name}: no row for \{{'seed': 0, 'init_std': 0\.1, 'lr': 0\.1, "):
        read_sweep("bn", params.sweep, params.train.tracked_units)


def test_a_row_outside_the_grid_of_params_is_one_error_naming_it(in_tmp, params):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn/final.csv", lambda header, rows: (header, [*rows, {**rows[0], "seed": 10}]))
    with pytest.raises(StudyError) as error:
        read_sweep("bn", params.sweep, params.train.tracked_units)
    assert str(error.value) == (
        "results/sweep/bn/final.csv: the row for {'seed': 10, 'init_std': 0.1, 'lr': 0.1} is outside params.yaml's "
        "sweep; re-run `dvc repro sweep@bn`"
    )


def test_a_row_given_twice_is_one_error_naming_it(in_tmp, params):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn/history.csv", lambda header, rows: (header, [*rows, rows[5]]))
    with raises_study_error(r"^results/sweep/bn/history\.csv: the row for \{'seed': .*\} is given twice; re-run"):
        read_sweep("bn", params.sweep, params.train.tracked_units)


@pytest.mark.parametrize(("name", "column"), [("final.csv", "test_accuracy"), ("sigmoid_inputs.csv", "p50")])
def test_a_malformed_sweep_value_is_one_error_naming_the_file(in_tmp, params, name, column):
    write_located_sweep(in_tmp, params)
    rewrite_csv(in_tmp / "results/sweep/bn" / name, first_row_with(column, "high"))
    with raises_study_error(rf"^results/sweep/bn/{name}: malformed value \(could not convert string to float: 'high'"):
        read_sweep("bn", params.sweep, params.train.tracked_units)


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
        read_sweep("bn", params.sweep, params.train.tracked_units)
    assert str(error.value).startswith(f"results/sweep/bn/{problem}")


def test_read_sweep_final_is_the_sweeps_final_accuracy_and_divergence_on_the_grid(in_tmp, params):
    write_located_sweep(in_tmp, params)
    final_accuracy, diverged = read_sweep_final("bn", params.sweep)
    sweep = read_sweep("bn", params.sweep, params.train.tracked_units)
    np.testing.assert_array_equal(final_accuracy, sweep.final_accuracy)
    np.testing.assert_array_equal(diverged, sweep.diverged)
    assert diverged.dtype == bool and diverged.sum() == 1


def test_edge_results_read_back_in_the_order_of_the_members_the_sweep_calls_for(in_tmp, params):
    members = _refined(params)
    final = _write_edge(in_tmp, members)
    accuracy, diverged = read_edge_final("bn", members)
    assert accuracy.tolist() == final.accuracy and diverged.tolist() == final.diverged
