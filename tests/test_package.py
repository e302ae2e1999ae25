"""The library leaves the tools it wraps quiet toward the network, and does so when used, not when imported."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(probe: str, repo_root) -> str:
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_DISABLE_TELEMETRY"}
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=repo_root, env=environment, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def test_configuring_tracking_disables_mlflow_telemetry(repo_root, tmp_path):
    probe = (
        "import os; from src.tracking.store import configure; "
        f"os.environ['MLFLOW_TRACKING_URI'] = 'sqlite:///{tmp_path}/mlflow.db'; "
        "configure('probe'); print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    )
    assert _run(probe, repo_root) == "true"


def test_importing_the_library_changes_no_environment(repo_root):
    probe = "import os; import src.tracking, src.tune; print(os.environ.get('MLFLOW_DISABLE_TELEMETRY', 'unset'))"
    assert _run(probe, repo_root) == "unset"
