"""Noisy BN (Santurkar, Tsipras, Ilyas & Madry 2018, arXiv 1805.11604, Section 2.1): BN followed by noise.

Each training step every unit of every member gets noise of its own distribution, drawn afresh for the step: mean
μ ~ U(−mean_bound, mean_bound), standard deviation σ ~ U(std_min, std_max), and each example's noise ε ~ N(μ, σ²) is
added to BN's output y. So the next layer's inputs move by construction, step after step, however stable BN makes y.
(The paper's form: i.i.d. noise per activation and example, non-zero mean, non-unit variance, a new distribution each
step. The constants are params.yaml's `noisy_bn`, our choice: the paper's were not found.)

The rule the trainer and the probes rely on: a step's noise is drawn once, by `NoiseDraws.draw` (through
`MLP.redraw_noise`, which the trainer calls before each step's forward), and held by every `NoisyBatchNorm`;
`forward` adds the held noise and draws nothing, so every forward within a step sees the same noise. Inference adds
none: eval mode is Algorithm 2's transform with the population statistics, and Algorithm 2's population pass sees the
noise-free net it sets the statistics of.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from src.config import NoisyBNConfig
from src.engine.batchnorm import BatchNorm

NOISE_STREAM = 1  # a seed's noise stream: apart from its init draws and data order, both seeded with the seed itself


class NoisyBatchNorm(BatchNorm):
    """`BatchNorm` whose training output is y + ε, ε the held noise (members, batch, features); eval mode as BN's."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, members: int | None = None):
        super().__init__(num_features, eps=eps, momentum=momentum, members=members)
        self.noise: Tensor | None = None  # this step's ε, set by MLP.redraw_noise

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        if not self.training or self._population is not None:
            return y
        if self.noise is None or self.noise.shape != y.shape:
            held = None if self.noise is None else tuple(self.noise.shape)
            raise ValueError(
                f"NoisyBatchNorm: a training forward of output {tuple(y.shape)} needs this step's noise of that shape "
                f"(MLP.redraw_noise(batch) before the step), holds {held}"
            )
        return y + self.noise


class NoiseDraws:
    """One noise generator per member, seeded from the member's seed on a stream of its own: member k's noise depends
    only on seeds[k], so members of one seed (any learning rate or init) see the same noise."""

    def __init__(self, seeds: Sequence[int], distribution: NoisyBNConfig):
        self.distribution = distribution
        self._generators = [torch.Generator().manual_seed(noise_seed(seed)) for seed in seeds]

    def draw(self, layers: int, batch: int, features: int) -> Tensor:
        """(layers, members, batch, features): one step's noise of every layer; each call draws the next step's."""
        low, high = self.distribution.std_min, self.distribution.std_max
        # drawn on the CPU, member by member: a seed's noise is the same whatever the device or the other members
        members = []
        for generator in self._generators:
            mean = (torch.rand(layers, 1, features, generator=generator) * 2 - 1) * self.distribution.mean_bound
            std = low + (high - low) * torch.rand(layers, 1, features, generator=generator)
            members.append(torch.randn(layers, batch, features, generator=generator).mul_(std).add_(mean))
        return torch.stack(members, dim=1)

    def state_dict(self) -> list[Tensor]:
        return [generator.get_state() for generator in self._generators]

    def load_state_dict(self, state: Sequence[Tensor]) -> None:
        if len(state) != len(self._generators):
            raise ValueError(f"noise generators of {len(state)} members, expected {len(self._generators)}")
        for generator, generator_state in zip(self._generators, state, strict=True):
            generator.set_state(generator_state)


def noise_seed(seed: int) -> int:
    """The seed of a member's noise generator, derived from the member's seed on NOISE_STREAM."""
    return int(np.random.SeedSequence(seed, spawn_key=(NOISE_STREAM,)).generate_state(1, np.uint64)[0])
