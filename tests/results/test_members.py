"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

import numpy as np
import pytest

from src import paths
from src.errors import StudyError
from src.results.members import read_predictions, write_history, write_predictions, write_sigmoid_inputs
from src.results.train import read_history, read_sigmoid_inputs
from src.training.members import MemberTable
from tests.results.tables import located_result, raises_study_error, rewrite_csv

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
