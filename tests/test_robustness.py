"""The sweep's side of the comparison: what sweep@ wrote, read back into [seed, init std, rate] arrays, and the
per-seed statistics and paired cells drawn from them."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from src import results, stats
from src.engine import Evaluation, TrainResult
from src.errors import StudyError
from src.robustness import (
    SweepResults,
    check_paired,
    horizon_check,
    load_sweep,
    robustness_map,
    usable_learning_rates,
    worst_init_accuracy,
)

CONFIDENCE = 0.95
# what sweep@ writes: a small grid whose seeds are not 0..S-1, so a seed's index and its value cannot be confused
GRID_RATES = [0.1, 1.0, 10.0]
GRID_INITS = [0.01, 0.1]
GRID_SEEDS = [3, 7]
EVAL_STEPS = (0, 50, 100)
UNITS = 2
FILES = ("final.csv", "history.csv", "sigmoid_inputs.csv")


def grid_labels() -> list[dict]:
    """Every member's labels in the order pipeline/sweep.py lists them: seed, then init std, then rate."""
    return [
        {"lr": lr, "init_std": init_std, "seed": seed}
        for seed in GRID_SEEDS
        for init_std in GRID_INITS
        for lr in GRID_RATES
    ]


def fake_result(members: int) -> TrainResult:
    """Every value says where it came from (evaluation i, member k, level, unit), so a misplaced one shows."""
    i, k = np.arange(len(EVAL_STEPS))[:, None], np.arange(members)[None, :]
    level, unit = np.arange(3)[None, :, None, None], np.arange(UNITS)[None, None, None, :]
    percentiles = i[:, :, None, None] * 1000 + level * 100 + k[:, None, :, None] + unit / 10
    diverged = np.zeros((len(EVAL_STEPS), members), dtype=bool)
    diverged[-1, 4] = True
    final = Evaluation(
        step=EVAL_STEPS[-1],
        accuracy=[0.9 + member / 1000 for member in range(members)],
        loss=[0.3 + member / 1000 for member in range(members)],
        diverged=[member == 4 for member in range(members)],
    )
    return TrainResult(
        eval_steps=EVAL_STEPS,
        accuracy=0.5 + k / 100 + i / 1000,
        loss=1.0 + k / 100 + i / 1000,
        diverged=diverged,
        percentiles=percentiles,
        final=final,
        stopped=[False] * members,
        wall_time_s=1.0,
    )


def write_sweep(directory: Path) -> TrainResult:
    """results/sweep/<variant>/ as sweep@ writes it, through src.results' own writers."""
    labels = grid_labels()
    result = fake_result(len(labels))
    results.write_history(directory / "history.csv", result, labels)
    results.write_sigmoid_inputs(directory / "sigmoid_inputs.csv", result, labels)
    results.write_final(directory / "final.csv", result.final, labels)
    return result


def rewrite_csv(path: Path, edit) -> None:
    """Read the CSV at `path`, pass (header, rows) to `edit`, write back what it returns."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = edit(list(reader.fieldnames), list(reader))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def swept(final_accuracy, learning_rates, init_stds, diverged=None) -> SweepResults:
    """A sweep of the given (seeds, init stds, rates) final accuracies, built directly; no curves."""
    final_accuracy = np.asarray(final_accuracy, dtype=float)
    shape = final_accuracy.shape
    return SweepResults(
        learning_rates=np.asarray(learning_rates, dtype=float),
        init_stds=np.asarray(init_stds, dtype=float),
        seeds=list(range(shape[0])),
        final_accuracy=final_accuracy,
        diverged=np.zeros(shape, dtype=bool) if diverged is None else np.asarray(diverged),
        steps=np.array([0, 100]),
        accuracy=np.full((*shape, 2), np.nan),
        percentiles=np.full((*shape, 1, 3, 2), np.nan),
    )


# --- load_sweep ---------------------------------------------------------------------------------------------------


def test_load_sweep_puts_every_member_at_its_seed_init_and_rate(tmp_path):
    result = write_sweep(tmp_path)
    sweep = load_sweep(tmp_path)
    assert sweep.learning_rates.tolist() == GRID_RATES
    assert sweep.init_stds.tolist() == GRID_INITS
    assert sweep.seeds == GRID_SEEDS
    assert sweep.steps.tolist() == list(EVAL_STEPS)
    assert sweep.final_accuracy.shape == sweep.diverged.shape == (2, 2, 3)
    assert sweep.accuracy.shape == (2, 2, 3, len(EVAL_STEPS))
    assert sweep.percentiles.shape == (2, 2, 3, UNITS, 3, len(EVAL_STEPS))
    for member, label in enumerate(grid_labels()):
        cell = GRID_SEEDS.index(label["seed"]), GRID_INITS.index(label["init_std"]), GRID_RATES.index(label["lr"])
        assert sweep.final_accuracy[cell] == result.final.accuracy[member]
        assert sweep.diverged[cell] == result.final.diverged[member]
        np.testing.assert_array_equal(sweep.accuracy[cell], result.accuracy[:, member])
        # written (evals, levels, members, units), read (units, levels, evals)
        np.testing.assert_array_equal(sweep.percentiles[cell], result.percentiles[:, :, member, :].T)


def test_load_sweep_reads_the_grid_whatever_the_row_order(tmp_path):
    write_sweep(tmp_path)
    expected = load_sweep(tmp_path)
    for name in FILES:
        rewrite_csv(tmp_path / name, lambda header, rows: (header, rows[::-1]))
    reversed_rows = load_sweep(tmp_path)
    np.testing.assert_array_equal(reversed_rows.final_accuracy, expected.final_accuracy)
    np.testing.assert_array_equal(reversed_rows.accuracy, expected.accuracy)
    np.testing.assert_array_equal(reversed_rows.percentiles, expected.percentiles)


@pytest.mark.parametrize("name", FILES)
def test_a_missing_file_is_one_usage_error_naming_it(tmp_path, name):
    write_sweep(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(StudyError, match=f"{tmp_path / name}: no such file"):
        load_sweep(tmp_path)


@pytest.mark.parametrize(
    ("name", "column"),
    [("final.csv", "diverged"), ("final.csv", "seed"), ("history.csv", "test_accuracy"), ("sigmoid_inputs.csv", "p85")],
)
def test_a_missing_column_is_one_usage_error_naming_it(tmp_path, name, column):
    write_sweep(tmp_path)
    rewrite_csv(tmp_path / name, lambda header, rows: ([c for c in header if c != column], rows))
    with pytest.raises(StudyError, match=rf"{tmp_path / name}: missing column\(s\) {column};"):
        load_sweep(tmp_path)


def test_a_grid_cell_without_a_final_result_is_a_usage_error(tmp_path):
    write_sweep(tmp_path)
    rewrite_csv(tmp_path / "final.csv", lambda header, rows: (header, rows[:-1]))
    with pytest.raises(StudyError, match="not every grid cell has a result"):
        load_sweep(tmp_path)


def test_a_malformed_value_is_a_usage_error_naming_the_sweep(tmp_path):
    write_sweep(tmp_path)
    rewrite_csv(tmp_path / "history.csv", lambda header, rows: (header, [{**rows[0], "test_accuracy": "high"}, *rows]))
    with pytest.raises(StudyError, match=f"{tmp_path}: malformed value"):
        load_sweep(tmp_path)


# --- pairing --------------------------------------------------------------------------------------------------------

RATES = [0.1, 0.3, 1.0, 3.0]
INITS = [0.01, 0.1]


def test_sweeps_over_the_same_grid_and_seeds_are_paired():
    sweep = swept(np.full((3, 2, 4), 0.9), RATES, INITS)
    check_paired(sweep, dataclasses.replace(sweep, final_accuracy=np.full((3, 2, 4), 0.5)))


@pytest.mark.parametrize(
    "change",
    [{"learning_rates": np.array([0.1, 0.3, 1.0, 10.0])}, {"init_stds": np.array([0.01, 1.0])}, {"seeds": [0, 1, 5]}],
    ids=["rates", "init-stds", "seeds"],
)
def test_sweeps_over_different_grids_or_seeds_cannot_be_paired(change):
    sweep = swept(np.full((3, 2, 4), 0.9), RATES, INITS)
    with pytest.raises(StudyError, match="different grids or seeds"):
        check_paired(sweep, dataclasses.replace(sweep, **change))


# --- the largest usable rate and the worst init -----------------------------------------------------------------


def test_the_usable_rate_is_per_seed_the_largest_that_trains_at_the_named_init_std():
    at_init = [
        [0.97, 0.97, 0.95, 0.10],  # trains up to 1.0
        [0.97, 0.50, 0.97, 0.90],  # 3.0 still trains (≥ 0.9), past a rate that did not
        [0.97, 0.10, 0.10, 0.10],  # only at 0.1
    ]
    others = np.full((3, 4), 0.10)  # at init std 0.01 nothing trains
    sweep = swept(np.stack([others, at_init], axis=1), RATES, INITS)
    assert usable_learning_rates(sweep, 0.1, usable_accuracy=0.9).tolist() == [1.0, 3.0, 0.1]


def test_a_diverged_cell_does_not_train_whatever_its_accuracy():
    final = np.full((1, 2, 4), 0.97)
    diverged = np.zeros((1, 2, 4), dtype=bool)
    diverged[0, 1, 2:] = True
    sweep = swept(final, RATES, INITS, diverged)
    assert usable_learning_rates(sweep, 0.1, usable_accuracy=0.9).tolist() == [0.3]
    assert usable_learning_rates(sweep, 0.01, usable_accuracy=0.9).tolist() == [3.0]


def test_a_seed_that_trains_at_no_rate_gets_one_grid_step_below_the_smallest():
    sweep = swept(np.full((2, 2, 4), 0.5), RATES, INITS)
    assert usable_learning_rates(sweep, 0.1, usable_accuracy=0.9) == pytest.approx([0.1 / 3, 0.1 / 3])


def test_an_init_std_that_was_not_swept_is_a_usage_error_naming_it():
    sweep = swept(np.full((2, 2, 4), 0.97), RATES, INITS)
    with pytest.raises(StudyError, match=r"no init std 0\.5 \(swept: 0\.01, 0\.1\)"):
        usable_learning_rates(sweep, 0.5, usable_accuracy=0.9)


def test_worst_init_accuracy_averages_the_worst_init_std_over_the_rates_per_seed():
    final = [
        [[0.90, 0.80, 0.40], [0.95, 0.95, 0.95]],  # init 0.01 is the worst at every rate: (0.9 + 0.8 + 0.4) / 3
        [[0.96, 0.96, 0.96], [0.93, 0.90, 0.60]],  # init 0.1 is: (0.93 + 0.9 + 0.6) / 3
    ]
    sweep = swept(final, [0.1, 1.0, 10.0], INITS)
    assert worst_init_accuracy(sweep) == pytest.approx([0.7, 0.81])


def test_worst_init_accuracy_takes_the_worst_init_std_at_each_rate():
    final = [[[0.90, 0.50], [0.60, 0.95]]]  # init 0.1 is the worse at rate 0.1, init 0.01 at rate 1.0
    sweep = swept(final, [0.1, 1.0], INITS)
    assert worst_init_accuracy(sweep) == pytest.approx([(0.60 + 0.50) / 2])


# --- the robustness map -------------------------------------------------------------------------------------------


def test_each_map_cell_carries_both_means_and_the_paired_difference():
    rng = np.random.default_rng(0)
    # seeds differ a lot (easy and hard seeds, shared by both variants); BN gains 0.01 × (cell number)
    vanilla = 0.9 + rng.normal(0, 0.03, (4, 1, 1)) + rng.normal(0, 0.001, (4, 2, 3))
    gain = 0.01 * np.arange(1, 7).reshape(1, 2, 3)
    bn = vanilla + gain + rng.normal(0, 0.001, (4, 2, 3))
    rates = [0.1, 1.0, 10.0]
    cells = robustness_map(swept(vanilla, rates, INITS), swept(bn, rates, INITS), CONFIDENCE)
    assert [(cell.init_std, cell.learning_rate) for cell in cells] == [(i, r) for i in INITS for r in rates]
    for cell, (i, j) in zip(cells, [(i, j) for i in range(2) for j in range(3)], strict=True):
        assert cell.vanilla == pytest.approx(vanilla[:, i, j].mean())
        assert cell.bn == pytest.approx(bn[:, i, j].mean())
        assert cell.difference == stats.paired_difference(bn[:, i, j], vanilla[:, i, j], CONFIDENCE)
        assert cell.difference.effect == pytest.approx(gain[0, i, j], abs=0.002)
        assert cell.difference.ci_low > 0  # paired, the seed-to-seed spread of 0.03 does not hide a 0.01 gain


# --- the horizon check ----------------------------------------------------------------------------------------------

HORIZON_RATES = [0.01, 0.1, 1.0, 10.0]


def horizon_sweep(at_init_0_1: list[list[float]]) -> SweepResults:
    """Final accuracies (seeds, rates) at init std 0.1; at init std 0.01 the best rate would be 10."""
    at_init = np.asarray(at_init_0_1)
    other = np.tile([0.1, 0.2, 0.3, 0.99], (at_init.shape[0], 1))
    return swept(np.stack([other, at_init], axis=1), HORIZON_RATES, INITS)


CLEARLY_BEST_AT_0_1 = [
    [0.90, 0.990, 0.950, 0.1],
    [0.85, 0.970, 0.930, 0.1],
    [0.88, 0.985, 0.944, 0.1],
    [0.91, 0.992, 0.953, 0.1],
]


@pytest.mark.parametrize(
    ("tuned_lr", "nearest"),
    [(0.25, 0.1), (0.35, 1.0), (0.4, 1.0), (0.001, 0.01), (50.0, 10.0), (1.0, 1.0)],
)
def test_the_nearest_swept_rate_is_nearest_on_a_log_scale(tuned_lr, nearest):
    # 0.35 and 0.4 are nearer 0.1 than 1.0 on a linear scale, nearer 1.0 on a log scale (the midpoint is 0.316)
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1), tuned_lr, 0.1, CONFIDENCE)
    assert (check.tuned_lr, check.nearest_swept_lr) == (tuned_lr, nearest)


def test_a_clearly_better_swept_rate_is_not_within_seed_noise():
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1), 0.4, 0.1, CONFIDENCE)
    at_init = np.asarray(CLEARLY_BEST_AT_0_1)
    assert (check.nearest_swept_lr, check.best_swept_lr) == (1.0, 0.1)
    assert check.shortfall == stats.paired_difference(at_init[:, 1], at_init[:, 2], CONFIDENCE)
    assert check.shortfall.ci_low > 0
    assert not check.within_seed_noise


def test_a_best_rate_better_only_within_seed_noise_is_within_seed_noise():
    at_init = [  # 0.1 has the higher mean (0.9540 against 0.95125), but the per-seed differences change sign
        [0.90, 0.958, 0.950, 0.1],
        [0.90, 0.952, 0.960, 0.1],
        [0.90, 0.949, 0.940, 0.1],
        [0.90, 0.957, 0.955, 0.1],
    ]
    check = horizon_check(horizon_sweep(at_init), 0.4, 0.1, CONFIDENCE)
    assert (check.nearest_swept_lr, check.best_swept_lr) == (1.0, 0.1)
    assert check.shortfall.effect == pytest.approx(0.00275)
    assert check.shortfall.ci_low < 0 < check.shortfall.ci_high
    assert check.within_seed_noise


def test_a_tuned_rate_nearest_the_best_has_no_shortfall():
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1), 0.12, 0.1, CONFIDENCE)
    assert check.nearest_swept_lr == check.best_swept_lr == 0.1
    assert (check.shortfall.effect, check.shortfall.ci_low, check.shortfall.ci_high) == (0.0, 0.0, 0.0)
    assert check.within_seed_noise


def test_the_horizon_check_reads_the_named_init_std():
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1), 0.4, 0.01, CONFIDENCE)
    assert check.best_swept_lr == 10.0


def test_with_one_seed_a_shortfall_cannot_be_told_from_noise():
    check = horizon_check(horizon_sweep(CLEARLY_BEST_AT_0_1[:1]), 0.4, 0.1, CONFIDENCE)
    assert check.shortfall.effect == pytest.approx(0.04)
    assert check.shortfall.ci_low is None
    assert check.within_seed_noise
