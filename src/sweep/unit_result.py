"""What one unit of the sweep hands the gather, through the Optuna storage, and the gather that puts units together.

A unit's training ends as a `UnitResult`: for each of its members, every evaluation (test accuracy, loss, diverged
flag, sigmoid-input percentiles), the final evaluation and the predicted class of every test image. It travels as one
JSON value in the unit's trial (`encode` / `decode`): the arrays in a compressed .npz, base64-encoded, beside the
members they belong to. The arrays cross exactly (float32 stays float32), so the gathered outputs are the bytes one
process would have written.

`gather` puts the members back in the grid's canonical order, whatever order and wherever the units finished. A unit
trained twice (a worker presumed dead that finished anyway, or a retry after a worker died between storing its
result and closing its trial) must have given the same arrays, bit for bit: a difference is a StudyError.
"""

from __future__ import annotations

import base64
import io
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from src.engine.trainer import Evaluation, TrainingHistory
from src.errors import StudyError


@dataclass(frozen=True)
class UnitResult:
    """One unit's members (their indices in the grid), trained: each array has the unit's members on its K axis."""

    members: tuple[int, ...]
    eval_steps: np.ndarray  # (E,)
    accuracy: np.ndarray  # (E, K): at every evaluation (BN under its moving averages)
    loss: np.ndarray  # (E, K)
    diverged: np.ndarray  # (E, K)
    percentiles: np.ndarray  # (E, levels, K, tracked units); (E, 0, K, 0) when none were recorded
    final_accuracy: np.ndarray  # (K,): the trained network (BN under Algorithm 2)
    final_loss: np.ndarray  # (K,)
    final_diverged: np.ndarray  # (K,)
    predictions: np.ndarray  # (K, test images) uint8

    @classmethod
    def of(cls, members: Sequence[int], result: TrainingHistory, predictions: np.ndarray) -> UnitResult:
        """A finished `result` (with its final evaluation) of the grid's `members`, and their test predictions."""
        evals, count = result.accuracy.shape
        percentiles = result.percentiles if result.percentiles is not None else np.zeros((evals, 0, count, 0))
        return cls(
            members=tuple(members),
            eval_steps=np.asarray(result.eval_steps, dtype=np.int64),
            accuracy=result.accuracy,
            loss=result.loss,
            diverged=result.diverged,
            percentiles=percentiles.astype(result.accuracy.dtype),
            final_accuracy=np.asarray(result.final.accuracy),
            final_loss=np.asarray(result.final.loss),
            final_diverged=np.asarray(result.final.diverged, dtype=bool),
            predictions=np.asarray(predictions, dtype=np.uint8),
        )

    def encode(self) -> dict:
        """This result as a JSON value: the members and a base64 text of the arrays' compressed .npz."""
        buffer = io.BytesIO()
        np.savez(buffer, **{name: getattr(self, name) for name in ARRAYS})
        # zlib over the whole archive: predictions and flags compress several-fold, float32 curves a little
        packed = base64.b64encode(zlib.compress(buffer.getvalue(), 6)).decode("ascii")
        return {"members": list(self.members), "npz_zlib_base64": packed}

    @classmethod
    def decode(cls, value: Mapping) -> UnitResult:
        """The result `encode` made; anything else is a StudyError."""
        try:
            archive = np.load(io.BytesIO(zlib.decompress(base64.b64decode(value["npz_zlib_base64"]))))
            with archive:
                arrays = {name: archive[name] for name in ARRAYS}
            return cls(members=tuple(int(member) for member in value["members"]), **arrays)
        except (KeyError, TypeError, ValueError, OSError, zlib.error) as error:
            raise StudyError(f"a unit's stored result cannot be read ({error}): delete the sweep's study") from None

    def differences(self, other: UnitResult) -> list[str]:
        """The arrays in which `other` differs from this result, bit for bit (NaN equal to NaN)."""
        return [name for name in ("members", *ARRAYS) if not _identical(getattr(self, name), getattr(other, name))]


ARRAYS = tuple(field.name for field in fields(UnitResult) if field.name != "members")


def _identical(a: object, b: object) -> bool:
    if not isinstance(a, np.ndarray):
        return a == b
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@dataclass(frozen=True)
class Gathered:
    """Every member of the grid trained, in its canonical order: what the stage writes its outputs from."""

    result: TrainingHistory
    predictions: np.ndarray  # (K, test images) uint8


def agreed(unit: int, trained: Sequence[UnitResult], describe: str) -> UnitResult:
    """The one result of unit `unit` (`describe` names it): every time it was trained, the same arrays."""
    if not trained:
        raise StudyError(f"{describe}: no result stored")
    first, *others = trained
    for again in others:
        differing = first.differences(again)
        if differing:
            raise StudyError(
                f"{describe} was trained {len(trained)} times and the results differ ({', '.join(differing)}): "
                "its workers do not compute alike (another machine type or library build?)"
            )
    return first


def gather(members: int, units: Sequence[UnitResult]) -> Gathered:
    """The `members` of the grid in canonical order from the units' results, which must cover each member once."""
    placed = [member for unit in units for member in unit.members]
    if sorted(placed) != list(range(members)):
        raise StudyError(f"the units' results cover members {sorted(placed)}, not the grid's 0..{members - 1}")
    steps = units[0].eval_steps
    if any(not np.array_equal(unit.eval_steps, steps) for unit in units):
        raise StudyError("the units' results were evaluated at different steps: they were trained under other params")
    order = np.argsort(np.asarray(placed), kind="stable")

    def joined(name: str, axis: int) -> np.ndarray:
        return np.take(np.concatenate([getattr(unit, name) for unit in units], axis=axis), order, axis=axis)

    final = Evaluation(
        step=int(steps[-1]),
        accuracy=joined("final_accuracy", 0).tolist(),
        loss=joined("final_loss", 0).tolist(),
        diverged=joined("final_diverged", 0).tolist(),
    )
    percentiles = joined("percentiles", 2)
    result = TrainingHistory(
        eval_steps=tuple(int(step) for step in steps),
        accuracy=joined("accuracy", 1),
        loss=joined("loss", 1),
        diverged=joined("diverged", 1),
        percentiles=percentiles if percentiles.shape[-1] else None,
        final=final,
        wall_time_s=0.0,  # the units' times are the workers' and MLflow's, not an output's
    )
    return Gathered(result=result, predictions=joined("predictions", 0))
