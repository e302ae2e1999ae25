"""Outputs land whole or not at all, and stay landed: write beside the target, flush it to the disk, rename it over
the target, then flush the directory that holds the new name (a power cut after the rename keeps the new file)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it is renamed onto `target`.

    The temporary file is in the same directory so the rename never crosses a file system; its data reach the disk
    before the rename and the rename after it. On any exception it is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; the result should not be
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, target)
        _sync(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(text)


def write_json(target: str | Path, payload: object) -> None:
    write_text(target, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_csv(target: str | Path, rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> None:
    with atomic_path(target) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory next to `target`; on success it replaces `target` whole, every file in it
    and the directory itself on the disk before the rename, the rename after it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
        _sync_tree(staging)
        if target.exists():
            # a directory cannot be renamed over a non-empty one: move the old one aside first
            retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            _sync(target.parent)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
            _sync(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sync(path: Path) -> None:
    """Flush a file's data, or a directory's entries, to the disk (a closed file's data may still sit in the cache)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_tree(directory: Path) -> None:
    """Flush every file and directory under `directory`, then `directory` itself: the deepest first."""
    for parent, folders, files in os.walk(directory, topdown=False):
        for name in (*files, *folders):
            _sync(Path(parent, name))
    _sync(directory)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
