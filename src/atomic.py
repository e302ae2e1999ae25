"""Outputs land whole or not at all: write beside the target, then rename over it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it is renamed onto `target`.

    The temporary file is in the same directory so the rename never crosses a file system;
    on any exception it is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(text)


def write_json(target: str | Path, payload: object) -> None:
    write_text(target, json.dumps(payload, indent=2, sort_keys=False) + "\n")
