"""Importing the library switches off the network-bound telemetry of the tools it wraps."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_src_disables_mlflow_telemetry(repo_root):
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_DISABLE_TELEMETRY"}
    probe = "import src, os; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=repo_root, env=environment, capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "true"
