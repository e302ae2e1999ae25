"""What a user sees in optuna-dashboard: a small real tuning study (tune@bn) and a sweep's queue in one storage, served
by a real optuna-dashboard on 127.0.0.1 and rendered in headless Chromium. The tuning study names its objective,
validation accuracy; each study says what it is for."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from src.config import load_params
from src.stores.optuna_storage import open_storage
from src.sweep.queue import SweepQueue
from src.tune import tuner
from tests.browser import rendered, serving

DASHBOARD = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))  # the environment's own


def _attr_row(key: str, value: str) -> re.Pattern:
    """A row of the study page's "Study User Attributes" table."""
    return re.compile(f">{re.escape(key)}</td><td[^>]*>{re.escape(value)}<")


@pytest.fixture
def served(tune_project, tmp_path, one_torch_thread):
    """tune@bn's study and sweep@bn's queue in the project's optuna.db, and optuna-dashboard over it; yields
    (its URL, the tuning study's id, the queue's id)."""
    params = load_params()
    study = tuner.tune_variant(params.tune_run, params.tune, "bn")
    url = params.tune.storage
    queue = SweepQueue.create(open_storage(url), url, {"variant": "bn"}, units=1, heartbeat_s=10).study
    if DASHBOARD is None:
        pytest.fail(f"optuna-dashboard is not installed beside {sys.executable}: pip install -r requirements.txt")
    command = [DASHBOARD, url, "--host", "127.0.0.1", "--port", "{port}", "--server", "wsgiref", "--quiet"]
    with serving(command, "/api/studies", log=tmp_path / "dashboard.log", cwd=tune_project) as dashboard:
        yield dashboard, study._study_id, queue._study_id


def test_the_dashboard_names_the_tuning_objective_and_tells_a_tuning_study_from_the_sweeps_queue(served, tmp_path):
    dashboard, tuning, queue = served

    page = rendered(f"{dashboard}/dashboard/studies/{tuning}", tmp_path / "tuning")
    assert re.search(r'class="ytitle"[^>]*data-unformatted="validation accuracy"', page), (
        "the history plot does not name the objective"
    )
    assert _attr_row("purpose", "tune@bn: the learning rate of highest validation accuracy").search(page)

    page = rendered(f"{dashboard}/dashboard/studies/{queue}", tmp_path / "queue")
    assert _attr_row("purpose", "sweep@bn: a queue of units of work, not a search").search(page)
