"""Outputs land whole or not at all, and stay landed: a file or directory is written beside its target, flushed to the
disk, renamed over it and its directory flushed after the rename; a failure leaves the target as it was, with nothing
half-written beside it."""

from __future__ import annotations

import csv
import errno
import json
import os
import stat
from pathlib import Path

import pytest

from src.atomic import atomic_directory, atomic_path, write_csv, write_json, write_text


class _Crash(Exception):
    pass


def test_a_file_lands_under_its_name_only_when_the_block_ends(tmp_path):
    target = tmp_path / "deep" / "er" / "out.txt"  # missing directories are made
    with atomic_path(target) as temporary:
        temporary.write_text("new")
        assert temporary.parent == target.parent and not target.exists()
    assert target.read_text() == "new" and sorted(path.name for path in target.parent.iterdir()) == ["out.txt"]


def test_a_failure_leaves_the_old_file_and_nothing_beside_it(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(_Crash), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise _Crash
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_a_written_file_is_as_readable_as_any_other_the_umask_allows(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644  # not mkstemp's private 0o600


def test_json_and_csv_are_written_whole(tmp_path):
    write_json(tmp_path / "out.json", {"b": 1, "a": [0.5]})
    assert (tmp_path / "out.json").read_text() == '{\n  "b": 1,\n  "a": [\n    0.5\n  ]\n}\n'  # in the given order
    assert json.loads((tmp_path / "out.json").read_text()) == {"b": 1, "a": [0.5]}
    write_csv(tmp_path / "out.csv", [{"step": 0, "value": 0.5}, {"step": 10, "value": 0.75}], ["step", "value"])
    with (tmp_path / "out.csv").open() as handle:
        assert list(csv.reader(handle)) == [["step", "value"], ["0", "0.5"], ["10", "0.75"]]


def test_a_directory_is_replaced_whole(tmp_path):
    target = tmp_path / "processed"
    target.mkdir()
    (target / "stale.npz").write_text("from an older run")
    with atomic_directory(target) as staging:
        (staging / "train.npz").write_text("new")
        assert (target / "stale.npz").exists(), "the old directory stands until the new one is complete"
    assert sorted(path.name for path in target.iterdir()) == ["train.npz"]
    assert list(tmp_path.iterdir()) == [target], "nothing left beside it"


def test_a_failure_while_filling_a_directory_leaves_the_old_one_and_nothing_beside_it(tmp_path):
    target = tmp_path / "processed"
    target.mkdir()
    (target / "train.npz").write_text("old")
    with pytest.raises(_Crash), atomic_directory(target) as staging:
        (staging / "train.npz").write_text("half")
        raise _Crash
    assert (target / "train.npz").read_text() == "old" and list(tmp_path.iterdir()) == [target]


def _record_flushes_and_renames(monkeypatch) -> list[tuple[str, int]]:
    """Every os.fsync and os.replace from now on, in order, as (call, inode of what it flushed or renamed)."""
    calls = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(descriptor: int) -> None:
        calls.append(("fsync", os.fstat(descriptor).st_ino))
        fsync(descriptor)

    def recorded_replace(source, destination) -> None:
        calls.append(("replace", os.stat(source).st_ino))
        replace(source, destination)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    return calls


def _inode(path: Path) -> int:
    return path.stat().st_ino


def test_a_files_data_reach_the_disk_before_its_rename_and_the_rename_after_it(tmp_path, monkeypatch):
    calls = _record_flushes_and_renames(monkeypatch)
    write_json(tmp_path / "out.json", {"a": 1})
    written = _inode(tmp_path / "out.json")  # a rename keeps the inode: the temporary file's is the target's
    assert calls == [("fsync", written), ("replace", written), ("fsync", _inode(tmp_path))]


def test_every_file_of_a_directory_reaches_the_disk_before_its_rename_and_the_rename_after_it(tmp_path, monkeypatch):
    target = tmp_path / "figures"
    target.mkdir()
    (target / "old.png").write_text("from an older run")
    calls = _record_flushes_and_renames(monkeypatch)
    with atomic_directory(target) as staging:
        (staging / "a.png").write_text("a")
        (staging / "nested").mkdir()
        (staging / "nested" / "b.png").write_text("b")
    landed = [target / "a.png", target / "nested" / "b.png", target / "nested", target]
    flushed_first = {inode for call, inode in calls[: len(landed)] if call == "fsync"}
    assert flushed_first == {_inode(path) for path in landed}, "a file of the directory was renamed unflushed"
    # the old directory is moved aside, the new one takes its name, and then the name is flushed
    assert [call for call, _ in calls[len(landed) :]] == ["replace", "replace", "fsync"]
    assert calls[-2:] == [("replace", _inode(target)), ("fsync", _inode(tmp_path))]


def _full_disk(descriptor: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_file_whose_flush_fails_leaves_the_old_file_and_nothing_beside_it(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_text(target, "new")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_a_directory_whose_flush_fails_leaves_the_old_one_and_nothing_beside_it(tmp_path, monkeypatch):
    target = tmp_path / "processed"
    target.mkdir()
    (target / "train.npz").write_text("old")
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(OSError, match="No space left"), atomic_directory(target) as staging:
        (staging / "train.npz").write_text("new")
    assert (target / "train.npz").read_text() == "old" and list(tmp_path.iterdir()) == [target]
