"""A checkpoint lands whole, is resumed only under the identity it was made under, and otherwise is ignored with one
line saying why: the keys that changed, or that the file cannot be read."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from src.training import checkpoint
from src.training.checkpoint import Checkpoint

IDENTITY = {"stage": "train", "device": "cpu", "params": {"train": {"steps": 1500, "batch_size": 60}}}
PAYLOAD = {"trainer": {"step": 250, "weights": torch.arange(6.0).view(2, 3)}, "parent_run": "abc"}


def _assert_payload(loaded: dict | None) -> None:
    assert loaded is not None and loaded.keys() == PAYLOAD.keys() and loaded["parent_run"] == "abc"
    assert loaded["trainer"]["step"] == 250 and torch.equal(loaded["trainer"]["weights"], PAYLOAD["trainer"]["weights"])


def _one_line(stderr: str) -> str:
    (line,) = stderr.strip().splitlines()
    assert "Traceback" not in line
    return line


@pytest.fixture
def saved(tmp_path) -> Checkpoint:
    made = Checkpoint(tmp_path / ".checkpoints" / "train-bn.pt", IDENTITY)
    made.save(PAYLOAD)
    return made


def test_a_saved_checkpoint_loads_back_under_the_same_identity(saved, capsys):
    _assert_payload(Checkpoint(saved.path, dict(IDENTITY)).load())
    assert capsys.readouterr().err == ""


def test_no_checkpoint_is_no_payload_and_nothing_said(tmp_path, capsys):
    assert Checkpoint(tmp_path / "absent.pt", IDENTITY).load() is None
    assert capsys.readouterr().err == ""


def test_a_save_that_fails_leaves_the_previous_checkpoint_whole(saved, monkeypatch):
    def dies_halfway(payload, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", dies_halfway)
    with pytest.raises(OSError, match="No space left"):
        saved.save({"trainer": {"step": 500}})
    monkeypatch.undo()
    _assert_payload(saved.load())
    assert [path.name for path in saved.path.parent.iterdir()] == ["train-bn.pt"], "a temporary file was left"


def test_a_checkpoint_of_another_identity_is_refused_naming_every_changed_key_in_one_line(saved, capsys):
    other = {**IDENTITY, "device": "cuda", "params": {"train": {"steps": 2000, "batch_size": 60}}}
    assert Checkpoint(saved.path, other).load() is None
    assert _one_line(capsys.readouterr().err) == (
        f"checkpoint {saved.path} ignored: it was made under other settings "
        "(device: cpu -> cuda, params.train.steps: 1500 -> 2000); starting from step 0"
    )
    assert saved.path.exists(), "a refused checkpoint is left for the user, not deleted"


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _not_a_checkpoint(path: Path) -> None:
    torch.save([torch.zeros(3)], path)  # readable, but no identity and payload


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _code(path: Path) -> None:
    path.write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(path.with_name("code-ran")), protocol=2))


@pytest.mark.parametrize("damage", [_truncated, _empty, _not_a_checkpoint, _code], ids=lambda damage: damage.__name__)
def test_a_damaged_checkpoint_is_refused_in_one_line_without_running_its_code(saved, capsys, damage):
    damage(saved.path)
    assert saved.load() is None
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"checkpoint {saved.path} ignored: it cannot be read (")
    assert line.endswith("); starting from step 0")
    assert not saved.path.with_name("code-ran").exists()


def test_remove_deletes_the_checkpoint_and_removing_none_is_no_error(saved):
    saved.remove()
    assert not saved.path.exists() and saved.load() is None
    saved.remove()
