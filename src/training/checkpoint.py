"""Checkpoints of a long training stage: written atomically, resumed only under the identity they were made under.

The identity is everything that decides the run's outcome (params, data digests, code digests, device). A
checkpoint of another identity, or one that cannot be read, is ignored with one line saying why, and the stage
starts from step 0. Checkpoints live outside DVC's view, so they never keep an output that should be rebuilt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from src.atomic import atomic_path
from src.training.provenance import differences


class Checkpoint:
    """One stage's checkpoint file, valid only under `identity` (src/provenance.stage_identity)."""

    def __init__(self, path: Path, identity: dict):
        self.path = Path(path)
        self.identity = identity

    def load(self) -> dict | None:
        """The saved payload when the file exists and was made under this identity; else None (and why, on stderr)."""
        if not self.path.exists():
            return None
        try:
            # weights_only: a checkpoint holds tensors and plain values, never code to run
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            identity, payload = saved["identity"], saved["payload"]
        except Exception as error:  # torch.load raises many kinds on a damaged file (EOFError, RuntimeError, ...)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return self.refuse(f"it cannot be read ({reason})")
        if identity != self.identity:
            return self.refuse(f"it was made under other settings ({differences(identity, self.identity)})")
        return payload

    def save(self, payload: dict) -> None:
        with atomic_path(self.path) as temporary:
            torch.save({"identity": self.identity, "payload": payload}, temporary)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def refuse(self, why: str) -> None:
        """Say why the checkpoint is not resumed; returns None, the payload a refused checkpoint gives."""
        print(f"checkpoint {self.path} ignored: {why}; starting from step 0", file=sys.stderr)
        return None
