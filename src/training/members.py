"""Who the members of one training run are: each one's learning rate, init std and seed, in training order.

One table serves both designs. train@ is a sweep with one rate and one init per seed (`MemberTable.tuned`); sweep@
is the grid of params.sweep (`MemberTable.grid`). The members of one seed sit side by side and share its data order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from src.config import EdgeConfig, SweepConfig

COLUMNS = ("lr", "init_std", "seed")


@dataclass(frozen=True)
class MemberTable:
    """K members; `labels`: the columns that tell them apart in the design's files (seed, or lr, init_std, seed)."""

    lr: tuple[float, ...]
    init_std: tuple[float, ...]
    seed: tuple[int, ...]
    labels: tuple[str, ...] = COLUMNS

    def __post_init__(self) -> None:
        if not len(self.lr) == len(self.init_std) == len(self.seed) > 0:
            raise ValueError(f"MemberTable: one lr, init std and seed per member, got {self}")
        if not set(self.labels) <= set(COLUMNS):
            raise ValueError(f"MemberTable: labels must be among {COLUMNS}, got {self.labels}")
        per_seed, remainder = divmod(len(self), len(self.data_seeds))
        if remainder or any(seed != self.data_seeds[k // per_seed] for k, seed in enumerate(self.seed)):
            raise ValueError(f"MemberTable: the members of a seed must sit side by side, as many per seed, got {self}")

    @classmethod
    def tuned(cls, learning_rate: float, init_std: float, seeds: list[int]) -> MemberTable:
        """train@: one member per seed, all at one (tuned) rate and one init std."""
        count = len(seeds)
        return cls((learning_rate,) * count, (init_std,) * count, tuple(seeds), labels=("seed",))

    @classmethod
    def grid(cls, sweep: SweepConfig) -> MemberTable:
        """sweep@: every seed × init std × learning rate, seed first (a seed's members share its data order)."""
        members = [
            (lr, init_std, seed)
            for seed in sweep.seed_list
            for init_std in sweep.init_stds
            for lr in sweep.learning_rates
        ]
        lr, init_std, seed = zip(*members, strict=True)
        return cls(lr, init_std, seed)

    def __len__(self) -> int:
        return len(self.seed)

    @property
    def data_seeds(self) -> tuple[int, ...]:
        """One data order per seed, in the members' order: member k follows data_seeds[k // (K / G)]."""
        return tuple(dict.fromkeys(self.seed))

    def rows(self) -> list[dict[str, float | int]]:
        """Each member's label columns, as its rows in the design's CSV files carry them."""
        return [{name: getattr(self, name)[member] for name in self.labels} for member in range(len(self))]

    def subset(self, indices: Sequence[int]) -> MemberTable:
        """The members at `indices`, in that order, labelled as in this table."""
        return MemberTable(
            *(tuple(getattr(self, column)[k] for k in indices) for column in COLUMNS), labels=self.labels
        )

    def units(self, cut: str | Mapping[str, int]) -> list[tuple[int, ...]]:
        """The members of each unit of work under `cut` (params.sweep.unit), as indices in this table's order: the
        whole table ("variant"), one block per seed ("seed"), or per seed one block for each run of k of its learning
        rates ({"seed_and_rates": k}), with every init std of those rates. A unit never mixes seeds: a seed's
        members share its data order, which is what makes them one model."""
        if cut == "variant":
            return [tuple(range(len(self)))]
        per_seed = [tuple(k for k in range(len(self)) if self.seed[k] == seed) for seed in self.data_seeds]
        if cut == "seed":
            return per_seed
        size = cut["seed_and_rates"]
        blocks = []
        for block in per_seed:
            rates = list(dict.fromkeys(self.lr[k] for k in block))
            for start in range(0, len(rates), size):
                chunk = set(rates[start : start + size])
                blocks.append(tuple(k for k in block if self.lr[k] in chunk))
        return blocks

    def unit_name(self, unit: tuple[int, ...]) -> str:
        """'' for the whole table, else '-seed2' or '-seed2-lr0.1-0.316': what tells a unit's checkpoint apart."""
        if len(unit) == len(self):
            return ""
        low, high = min(self.lr[k] for k in unit), max(self.lr[k] for k in unit)
        per_seed = sum(seed == self.seed[unit[0]] for seed in self.seed)
        span = "" if len(unit) == per_seed else f"-lr{low:.3g}" + (f"-{high:.3g}" if high > low else "")
        return f"-seed{self.seed[unit[0]]}{span}"

    def name(self, member: int) -> str:
        """A short name for member `member`: 'seed2' or 'lr0.316-init0.1-seed2'."""
        parts = {
            "lr": f"lr{self.lr[member]:.3g}",
            "init_std": f"init{self.init_std[member]:g}",
            "seed": f"seed{self.seed[member]}",
        }
        return "-".join(parts[column] for column in self.labels)

    @classmethod
    def refining(cls, brackets: Sequence[tuple[int, float, float, float]], rates_between: int) -> MemberTable:
        """edge@: for each (seed, init std, low, high) bracket, `rates_between` rates evenly spaced between low and
        high on a log scale (the brackets in seed order)."""
        members = [
            (low * (high / low) ** (k / (rates_between + 1)), init_std, seed)
            for seed, init_std, low, high in brackets
            for k in range(1, rates_between + 1)
        ]
        lr, init_std, seed = zip(*members, strict=True)
        return cls(lr, init_std, seed)


def usable(final_accuracy: np.ndarray, diverged: np.ndarray, usable_accuracy: float) -> np.ndarray:
    """Which runs trained: no divergence, and a final test accuracy of at least `usable_accuracy`."""
    return (final_accuracy >= usable_accuracy) & ~diverged


def edge_brackets(
    final_accuracy: np.ndarray, diverged: np.ndarray, sweep: SweepConfig, edge: EdgeConfig, usable_accuracy: float
) -> list[tuple[int, float, float, float]]:
    """(seed, init std, low, high) for each seed and each of edge.init_stds: low is the seed's largest usable swept
    rate, high the next grid rate up, between which edge@ refines. A seed usable at no swept rate gets the step below
    the grid, one usable at the top the step above it, so every seed's edge is bracketed.

    `final_accuracy` and `diverged` are sweep@'s, (S, I, L) on `sweep`'s grid."""
    step = 10 ** (1 / sweep.lrs_per_decade)
    trained = usable(final_accuracy, diverged, usable_accuracy)
    brackets = []
    for seed_index, seed in enumerate(sweep.seed_list):
        for init_std in edge.init_stds:
            usable_rates = np.flatnonzero(trained[seed_index, sweep.init_stds.index(init_std)])
            low = sweep.learning_rates[usable_rates[-1]] if usable_rates.size else sweep.learning_rates[0] / step
            brackets.append((seed, init_std, low, low * step))
    return brackets
