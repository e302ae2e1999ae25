"""Where a run's wall time goes, by named phase (the training steps, evaluations, checkpoints, ...).

On CUDA the device is synchronised at each phase's boundaries, so that a phase is charged for its own kernels and not
for those still queued from the one before; boundaries come at evaluations and checkpoints, never inside the steps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

# the engine's phases, then those of the stage around it (src/training/runner.py), in the order a run meets them
TRAINING_PHASES = ("steps", "evaluation", "percentiles", "population")
STAGE_PHASES = ("checkpoints", "logging", "scoring", "export")


class PhaseClock:
    """Seconds spent in each named phase, summed over every time the phase ran (and over resumed runs)."""

    def __init__(self, device: torch.device, seconds: Mapping[str, float] | None = None):
        self.seconds: dict[str, float] = dict(seconds or {})
        self._synchronize = torch.cuda.synchronize if device.type == "cuda" else None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._sync()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def total(self, names: tuple[str, ...] = TRAINING_PHASES) -> float:
        return sum(self.seconds.get(name, 0.0) for name in names)

    def describe(self) -> str:
        """'steps 300.1 s, evaluation 40.2 s, ...': every phase that ran, in the order of a run."""
        known = [name for name in (*TRAINING_PHASES, *STAGE_PHASES) if name in self.seconds]
        others = sorted(set(self.seconds) - set(known))
        return ", ".join(f"{name} {self.seconds[name]:.1f} s" for name in (*known, *others))

    def _sync(self) -> None:
        if self._synchronize is not None:
            self._synchronize()
