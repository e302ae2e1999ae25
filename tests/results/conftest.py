"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.config import parse_params
from tests import synthetic_results


@pytest.fixture(scope="module")
def raw_params(repo_root) -> dict:
    return synthetic_results.tiny_params(repo_root)


@pytest.fixture(scope="module")
def params(raw_params):
    return parse_params(raw_params)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """tmp_path as the working directory: the readers take paths relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
