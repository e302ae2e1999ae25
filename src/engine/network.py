"""The paper's MNIST network (Section 4.1), with or without Batch Normalization, K independent members at once; and
the noisy BN net of Santurkar et al. 2018 (`src.engine.noise`), which the engine trains but the study does not.

Every parameter carries a leading members dimension, so K seeds, learning rates or inits train as one computation:
one batched matmul per layer (the first layer's input shared by each group of members, see `src.engine.affine`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.config import ModelConfig, NoisyBNConfig, Variant
from src.engine.affine import MemberLinear
from src.engine.batchnorm import BatchNorm
from src.engine.noise import NoiseDraws, NoisyBatchNorm
from src.errors import StudyError

ModelVariant = Literal[Variant, "noisy_bn"]  # the study's variants and the nets only the engine builds
MODEL_VARIANTS: tuple[ModelVariant, ...] = get_args(ModelVariant)


@dataclass(frozen=True)
class Architecture:
    """The net's shape: in → hidden_layers × (hidden_units, sigmoid) → classes, and BN's ε and momentum."""

    in_features: int = 784
    hidden_layers: int = 3
    hidden_units: int = 100
    classes: int = 10
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1  # of the moving averages BN normalises with while it trains


class MLP(nn.Module):
    """The paper's net, K members at once; BN layers are sigmoid(BN(W u)), without the bias BN's β replaces. With
    `noise` (BN only) they are sigmoid(BN(W u) + ε) while training, ε the step's noise `redraw_noise` draws."""

    def __init__(
        self,
        members: int,
        batch_norm: bool,
        *,
        seeds: Sequence[int] | None = None,
        init_std: float | Sequence[float] = 0.1,
        architecture: Architecture = Architecture(),
        noise: NoisyBNConfig | None = None,
    ):
        super().__init__()
        seeds = list(range(members)) if seeds is None else list(seeds)
        init_stds = [init_std] * members if isinstance(init_std, int | float) else list(init_std)
        if members < 1 or len(seeds) != members or len(init_stds) != members:
            raise ValueError(
                f"MLP: need members >= 1 and one seed and init std per member, "
                f"got members={members}, seeds={seeds}, init_std={init_std}"
            )
        if noise is not None and not batch_norm:
            raise ValueError("MLP: noise follows BN (noisy BN), so it needs batch_norm=True")
        self.members = members
        self.batch_norm = batch_norm
        shape = architecture
        self.in_features = shape.in_features
        widths = [shape.in_features] + [shape.hidden_units] * shape.hidden_layers
        self.hidden = nn.ModuleList(
            MemberLinear(members, n_in, n_out, bias=not batch_norm) for n_in, n_out in itertools.pairwise(widths)
        )
        # BN's β takes the role of the dropped bias (Section 3.2)
        norm = BatchNorm if noise is None else NoisyBatchNorm
        self.norms = nn.ModuleList(
            norm(shape.hidden_units, eps=shape.bn_eps, momentum=shape.bn_momentum, members=members)
            for _ in range(shape.hidden_layers if batch_norm else 0)
        )
        self.output = MemberLinear(members, shape.hidden_units, shape.classes, bias=True)
        self._initialise(seeds, init_stds)
        # a generator of its own per member: the init draws above are the BN net's, whatever the noise
        self.noise_draws = None if noise is None else NoiseDraws(seeds, noise)

    @property
    def noisy(self) -> bool:
        return self.noise_draws is not None

    @torch.no_grad()
    def redraw_noise(self, batch: int) -> None:
        """Draw the next training step's noise for batches of `batch` examples and hold it in every noisy BN layer:
        each forward until the next redraw sees it (noisy nets only)."""
        if self.noise_draws is None:
            raise RuntimeError("MLP.redraw_noise: this net has no noise (build it as noisy_bn)")
        weight = self.output.weight
        draws = self.noise_draws.draw(len(self.norms), batch, self.norms[0].num_features)
        for norm, noise in zip(self.norms, draws.to(device=weight.device, dtype=weight.dtype), strict=True):
            norm.noise = noise

    @torch.no_grad()
    def _initialise(self, seeds: Sequence[int], init_stds: Sequence[float]) -> None:
        # One generator per member, drawing its layers in order: member m depends only on seeds[m], and members of
        # the same seed (either variant, any init std) start from the same draws, scaled: common random numbers.
        affines = [*self.hidden, self.output]
        for member, (seed, init_std) in enumerate(zip(seeds, init_stds, strict=True)):
            generator = torch.Generator().manual_seed(seed)
            for affine in affines:
                _, n_out, n_in = affine.weight.shape
                # drawn (in, out), stored transposed: a seed's network does not depend on the storage layout
                affine.weight[member] = torch.randn(n_in, n_out, generator=generator).t() * init_std

    def _pre_activation(self, layer: int, h: Tensor) -> Tensor:
        z = self.hidden[layer](h)
        return self.norms[layer](z) if self.batch_norm else z

    def forward(self, x: Tensor) -> Tensor:
        """Logits (K, B, classes) of input (B, in) shared by every member, or (G, B, in), one batch per group."""
        return self.output(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """(K, B, hidden_units): the last hidden layer's sigmoid outputs, which the output layer maps to logits."""
        h = self._grouped_input(x)
        for layer in range(len(self.hidden)):
            # in place: neither the affine map's nor BN's backward needs the sigmoid's input
            h = self._pre_activation(layer, h).sigmoid_()
        return h

    def last_hidden_inputs(self, x: Tensor) -> Tensor:
        """(K, B, hidden_units): the inputs of the last hidden layer's sigmoids (BN's output for the BN net)."""
        h = self._grouped_input(x)
        for layer in range(len(self.hidden) - 1):
            h = self._pre_activation(layer, h).sigmoid()
        return self._pre_activation(len(self.hidden) - 1, h)

    def member_state_dict(self, member: int) -> dict[str, Tensor]:
        """The state dict of a one-member model equal to member `member` (contiguous copies)."""
        if not 0 <= member < self.members:
            raise IndexError(f"MLP: member must be in 0..{self.members - 1}, got {member}")
        return {
            # num_batches_tracked is a scalar shared by all members; everything else has members first
            name: (value[member : member + 1] if value.dim() else value).clone(memory_format=torch.contiguous_format)
            for name, value in self.state_dict().items()
        }

    def _grouped_input(self, x: Tensor) -> Tensor:
        """x as (G, B, in): (B, in) is one group; (G, B, in) needs G to divide the number of members."""
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return x.unsqueeze(0)
        if x.dim() == 3 and self.members % x.shape[0] == 0 and x.shape[2] == self.in_features:
            return x
        raise ValueError(
            f"MLP: expected input (batch, {self.in_features}) or (groups, batch, {self.in_features}) with groups "
            f"dividing {self.members} members, got shape {tuple(x.shape)}"
        )


def build_model(
    model_config: ModelConfig,
    variant: ModelVariant,
    seeds: Sequence[int],
    device: torch.device | str,
    init_stds: Sequence[float] | None = None,
    noise: NoisyBNConfig | None = None,
) -> MLP:
    """A len(seeds)-member MLP of `variant` ("vanilla", "bn" or "noisy_bn") on `device`; init std per member, else the
    model's. noisy_bn needs `noise` (params.yaml's noisy_bn), which the others ignore; it starts from the BN net's
    weights, seed for seed."""
    if variant not in MODEL_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: expected one of {', '.join(MODEL_VARIANTS)}")
    if variant == "noisy_bn" and noise is None:
        raise ValueError("build_model: noisy_bn needs its noise distribution (noise=params.noisy_bn)")
    architecture = Architecture(
        hidden_layers=model_config.hidden_layers,
        hidden_units=model_config.hidden_units,
        bn_eps=model_config.bn_eps,
        bn_momentum=model_config.bn_momentum,
    )
    init_std = model_config.init_std if init_stds is None else init_stds
    model = MLP(
        len(seeds),
        variant != "vanilla",
        seeds=seeds,
        init_std=init_std,
        architecture=architecture,
        noise=noise if variant == "noisy_bn" else None,
    )
    return model.to(device)


def member_labels(labels: Tensor, members: int) -> Tensor:
    """Labels (B,) shared, or (G, B) one batch per group of members, as (K, B)."""
    groups_labels = labels.view(-1, labels.shape[-1])
    groups, batch = groups_labels.shape
    return groups_labels.unsqueeze(1).expand(groups, members // groups, batch).reshape(members, batch)


def member_losses(logits: Tensor, labels: Tensor) -> Tensor:
    """(K,) mean cross-entropy of each member's logits (K, B, C) against labels (B,) shared or (G, B) per group."""
    members, batch, classes = logits.shape
    per_example = F.cross_entropy(
        logits.reshape(members * batch, classes), member_labels(labels, members).reshape(-1), reduction="none"
    )
    return per_example.view(members, batch).mean(dim=1)


def load_member(path: str | Path, model_config: ModelConfig, variant: Variant, device: torch.device | str) -> MLP:
    """A one-member MLP, in eval mode, from a file written with torch.save(model.member_state_dict(m)).

    Loads with weights_only=True, so a file holding anything but tensors is refused without running its code;
    any file that is not a state dict of this variant's keys and shapes raises one StudyError naming it.
    """
    model = build_model(model_config, variant, seeds=[0], device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StudyError(f"{path}: no such model file") from None
    except Exception as error:  # torch.load raises many kinds (UnpicklingError, RuntimeError, EOFError...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StudyError(f"{path}: not a loadable model state dict ({first_line})") from None
    try:
        model.load_state_dict(state)  # strict: every key, every shape
    except (RuntimeError, TypeError, AttributeError) as error:
        problems = "; ".join(line.strip() for line in str(error).strip().splitlines()[1:]) or str(error)
        raise StudyError(f"{path}: not a {variant} model state dict ({problems})") from None
    return model.to(device).eval()
