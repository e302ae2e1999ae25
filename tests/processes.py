"""Running the stages as `dvc repro` does, `python -m module` in a scratch project, for tests that need a process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def stage_env(**extra: str) -> dict[str, str]:
    """This environment, with the repository importable and one torch thread (the machine is shared)."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", **extra}


def start(module: str, *args: str, cwd: Path, **env: str) -> subprocess.Popen:
    """`python -m module args` running in `cwd`, as `dvc repro` would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=stage_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(module: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    process = start(module, *args, cwd=cwd, **env)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def write_params(directory: Path, edit: Callable[[dict], None] = lambda raw: None) -> Path:
    """The repository's params.yaml, changed by `edit`, written into `directory`."""
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    edit(raw)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return directory / "params.yaml"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
