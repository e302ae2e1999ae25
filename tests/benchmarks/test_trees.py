"""The trees a benchmark compares: a ref checked out apart, and the working tree copied as it is, uncommitted files
included; neither writes into the repository."""

from __future__ import annotations

import subprocess

import pytest

from benchmarks import trees
from src.errors import StudyError


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository with two commits of `engine.py` and an uncommitted third version and new file."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    for version in ("one", "two"):
        (root / "engine.py").write_text(f"{version}\n")
        _git(root, "add", ".")
        _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", version)
    (root / "engine.py").write_text("three\n")
    (root / "new.py").write_text("new\n")
    (root / ".gitignore").write_text("ignored.db\n")
    (root / "ignored.db").write_text("a store\n")
    monkeypatch.setattr(trees, "REPO", root)
    return root


def test_a_ref_is_checked_out_apart_and_removed_afterwards(repo):
    with trees.checkout("HEAD~1") as tree:
        assert (tree / "engine.py").read_text() == "one\n" and not (tree / "new.py").exists()
    assert not tree.exists() and "tree" not in _git(repo, "worktree", "list")
    assert trees.describe("HEAD").startswith("HEAD (")


def test_the_working_copy_holds_uncommitted_changes_and_new_files_but_not_ignored_ones(repo):
    with trees.working_copy() as tree:
        assert (tree / "engine.py").read_text() == "three\n" and (tree / "new.py").exists()
        assert not (tree / "ignored.db").exists()
    assert not tree.exists()


def test_a_ref_that_names_no_commit_is_one_error_saying_what_would_do(repo):
    with pytest.raises(StudyError, match=r"--ref 'nope' is not a commit of this repository"), trees.checkout("nope"):
        pass
