"""A worker is known by its host and pid, and a pid on this host is alive exactly while its process runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from src.stores.workers import HOST, process_alive


def test_this_process_is_alive_and_this_host_is_named():
    assert socket.gethostname() == HOST
    assert process_alive(os.getpid())


def test_a_process_that_ended_is_not_alive_and_no_pid_is_never_alive():
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not process_alive(int(ended.stdout))
    assert not process_alive(0) and not process_alive(-1)
