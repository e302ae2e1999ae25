"""Which worker process holds a piece of shared work: its host and pid, and whether it is still alive.

A run or a unit records the host and pid of the process that owns it, so that a later process on the same host can
tell one whose owner died (kill -9, power loss) from one a live worker still holds.
"""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (one of another user's counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
