"""The code trees a benchmark sets side by side: a git ref checked out in a temporary worktree, and the working tree
as it is (uncommitted changes included), copied, so that neither run writes into the repository."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from src.errors import StudyError

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The repository at `ref` in a temporary git worktree, removed afterwards."""
    commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if not commit:
        raise StudyError(f"--ref {ref!r} is not a commit of this repository (try main, HEAD~3 or a hash)")
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as parent:
        tree = Path(parent) / "tree"
        _git("worktree", "add", "--quiet", "--detach", str(tree), commit)
        try:
            yield tree
        finally:
            _git("worktree", "remove", "--force", str(tree), check=False)


@contextmanager
def working_copy() -> Iterator[Path]:
    """The working tree's files (tracked, and untracked but not ignored) copied into a temporary directory."""
    files = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    with tempfile.TemporaryDirectory(prefix="bench-new-") as parent:
        tree = Path(parent) / "tree"
        for name in filter(None, files):
            source = REPO / name
            if source.is_file():
                (tree / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, tree / name)
        yield tree


def describe(ref: str) -> str:
    """'main (a5d0b33)': a ref and the commit it names, for a table's header."""
    return f"{ref} ({_git('rev-parse', '--short', ref, check=False) or '?'})"


def _git(*args: str, check: bool = True) -> str:
    completed = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    if check and completed.returncode:
        raise StudyError(f"git {' '.join(args)}: {completed.stderr.strip() or completed.returncode}")
    return completed.stdout.strip()
