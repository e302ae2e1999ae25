"""One variant's sweep as a plan of work: the grid's members, the units it is cut into and the identity that names its
study, from params.yaml's sweep section."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import torch
from optuna.storages import RDBStorage

from src.config import SweepConfig, TrainingRun
from src.engine.device import resolve_device
from src.sweep.queue import SweepQueue
from src.training import provenance
from src.training.members import MemberTable
from src.training.runner import TRAINING_SPLITS


@dataclass(frozen=True)
class SweepPlan:
    """One variant's sweep: the grid's members, the units it is cut into (indices into the grid) and its identity."""

    run: TrainingRun
    sweep: SweepConfig
    variant: str
    members: MemberTable
    units: list[tuple[int, ...]]
    identity: dict
    device: torch.device

    @classmethod
    def of(cls, run: TrainingRun, sweep: SweepConfig, variant: str) -> SweepPlan:
        device = resolve_device(run.device)
        members = MemberTable.grid(sweep)
        identity = provenance.stage_identity(run, variant, device, TRAINING_SPLITS)
        return cls(run, sweep, variant, members, members.units(sweep.unit), identity, device)

    def unit_name(self, unit: int) -> str:
        """sweep-bn for the whole grid, sweep-bn-seed2 or sweep-bn-seed2-lr0.1-0.316 for a part of it."""
        return f"sweep-{self.variant}{self.members.unit_name(self.units[unit])}"

    def queue(self, storage: RDBStorage, create: bool) -> SweepQueue | None:
        """The stage's queue of this sweep, made on first use (`create`), or a worker's view of it (None before)."""
        url, heartbeat_s = self.sweep.storage, self.sweep.heartbeat_s
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per study made or trial queued says nothing here
        opened = SweepQueue.create if create else SweepQueue.find
        return opened(storage, url, self.identity, len(self.units), heartbeat_s)
