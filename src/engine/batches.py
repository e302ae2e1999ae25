"""Mini-batches drawn from a split that sits on the device: one seeded shuffle per data order, gathered by index."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from src.data.splits import Split


class BatchOrder:
    """Mini-batch indices (G, batch), one epoch at a time: one seeded shuffle per data seed."""

    def __init__(self, examples: int, batch_size: int, data_seeds: Sequence[int], device: torch.device):
        if examples < batch_size:
            raise ValueError(f"the training split has {examples} examples, fewer than one batch of {batch_size}")
        self._generators = [torch.Generator().manual_seed(seed) for seed in data_seeds]
        self._examples, self._batch_size, self._device = examples, batch_size, device
        self._batches_per_epoch = examples // batch_size  # the remainder of an epoch is dropped
        self._epoch: Tensor | None = None  # (batches, G, batch)
        self._position = 0

    def next(self) -> Tensor:
        if self._epoch is None or self._position == len(self._epoch):
            self._epoch, self._position = self._shuffle(), 0
        self._position += 1
        return self._epoch[self._position - 1]

    def _shuffle(self) -> Tensor:
        usable = self._batches_per_epoch * self._batch_size
        orders = torch.stack([torch.randperm(self._examples, generator=g)[:usable] for g in self._generators])
        # (G, batches, batch) -> (batches, G, batch): one slice per step
        orders = orders.view(len(self._generators), self._batches_per_epoch, self._batch_size).transpose(0, 1)
        return orders.contiguous().to(self._device)

    def state_dict(self) -> dict:
        return {
            "generators": [generator.get_state() for generator in self._generators],
            "epoch": None if self._epoch is None else self._epoch.cpu(),
            "position": self._position,
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["generators"]) != len(self._generators):
            raise ValueError(
                f"a batch order of {len(state['generators'])} data seeds, expected {len(self._generators)}"
            )
        for generator, generator_state in zip(self._generators, state["generators"], strict=True):
            generator.set_state(generator_state)
        self._epoch = None if state["epoch"] is None else state["epoch"].to(self._device)
        self._position = state["position"]


def gather(split: Split, indices: Tensor) -> tuple[Tensor, Tensor]:
    """The mini-batch at `indices` (G, batch); index_select is ~3× faster than x[indices]."""
    flat = indices.reshape(-1)
    images = split.images.index_select(0, flat).view(*indices.shape, split.images.shape[-1])
    return images, split.labels.index_select(0, flat).view(indices.shape)
