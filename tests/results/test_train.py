"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from src.errors import StudyError
from src.results.train import TrainSummary, model_paths, read_trained, write_models
from tests import synthetic_results
from tests.results.tables import raises_study_error, rewrite_csv


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
