"""A unit's result crosses the storage bit for bit, and the gather puts every member back in the grid's order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from src.engine.trainer import Evaluation, TrainingHistory
from src.errors import StudyError
from src.sweep.unit_result import UnitResult, agreed, gather

STEPS = (0, 10, 20)


def trained(members: tuple[int, ...], seed: int = 0) -> UnitResult:
    """A made-up result of the grid's `members`: every value tells its member and evaluation apart."""
    rng = np.random.default_rng(seed)
    count, evals = len(members), len(STEPS)
    accuracy = rng.random((evals, count), dtype=np.float32)
    accuracy[1, 0] = np.nan  # a diverged member's NaN crosses too
    result = TrainingHistory(
        eval_steps=STEPS,
        accuracy=accuracy,
        loss=rng.random((evals, count), dtype=np.float32),
        diverged=rng.random((evals, count)) < 0.5,
        percentiles=rng.random((evals, 3, count, 2), dtype=np.float32),
        final=Evaluation(STEPS[-1], accuracy[-1].tolist(), [0.5] * count, [False] * count),
        wall_time_s=1.0,
    )
    return UnitResult.of(members, result, rng.integers(0, 10, (count, 7), dtype=np.uint8))


def test_a_result_survives_the_storage_bit_for_bit_as_json():
    result = trained((3, 4, 5))
    stored = json.loads(json.dumps(result.encode()))  # what Optuna's attrs hold: JSON

    back = UnitResult.decode(stored)

    assert back.differences(result) == []
    assert back.accuracy.dtype == np.float32 and np.isnan(back.accuracy[1, 0])
    assert back.final_accuracy.tolist() == result.final_accuracy.tolist()


def test_a_damaged_stored_result_is_one_study_error():
    with pytest.raises(StudyError, match="a unit's stored result cannot be read"):
        UnitResult.decode({"members": [0], "npz_zlib_base64": "bm90IGFuIGFyY2hpdmU="})


def test_the_gather_puts_members_in_the_grids_order_whatever_order_the_units_come_in():
    # a rate cut: units hold members that are not side by side in the grid
    units = [trained((0, 1, 3, 4), seed=1), trained((2, 5), seed=2)]

    gathered = gather(6, units[::-1])

    for unit in units:
        for position, member in enumerate(unit.members):
            assert np.array_equal(gathered.result.loss[:, member], unit.loss[:, position])
            assert np.array_equal(gathered.result.percentiles[:, :, member], unit.percentiles[:, :, position])
            assert np.array_equal(gathered.predictions[member], unit.predictions[position])
            assert gathered.result.final.accuracy[member] == unit.final_accuracy[position]
    assert gathered.result.eval_steps == STEPS and gathered.result.final.step == STEPS[-1]


def test_the_gather_refuses_units_that_do_not_cover_the_grid_once():
    with pytest.raises(StudyError, match=r"cover members \[0, 1, 1, 2\], not the grid's 0..2"):
        gather(3, [trained((0, 1)), trained((1, 2))])


def test_a_unit_trained_twice_must_agree_bit_for_bit():
    first, again, other = trained((0, 1), seed=5), trained((0, 1), seed=5), trained((0, 1), seed=6)
    assert agreed(0, [first, again], "sweep-bn-seed0") is first
    with pytest.raises(StudyError, match=r"sweep-bn-seed0 was trained 2 times and the results differ \(accuracy,"):
        agreed(0, [first, other], "sweep-bn-seed0")
