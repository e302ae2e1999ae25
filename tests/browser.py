"""What a user sees in a web UI: a server of ours on 127.0.0.1, and its pages as headless Chromium renders them."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.processes import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# what the machine's closed network needs: no background connections, no sandbox as root, a fresh profile
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def serving(command: Sequence[str], ready_path: str, log: Path, **popen) -> Iterator[str]:
    """`command` serving on 127.0.0.1 until the block ends ("{port}" in it is given a free port), its output in `log`;
    its URL, once GET `ready_path` answers 200."""
    port = free_port()
    with log.open("w") as output:
        server = subprocess.Popen([part.format(port=port) for part in command], stdout=output, stderr=output, **popen)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(f"{url}{ready_path}", server, log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_ready(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None:
            pytest.fail(f"the server exited ({server.returncode}): {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"GET {url} did not answer 200 within 120 s")
        time.sleep(0.5)


def rendered(url: str, profile: Path, budget_ms: int = 10000) -> str:
    """The page's DOM after its scripts ran (Chromium's virtual time lets the app fetch and draw its data)."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (.ci/run does)")
    completed = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout
