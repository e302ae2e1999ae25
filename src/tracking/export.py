"""One trained member as a standard PyTorch module: nn.Linear, nn.BatchNorm1d holding Algorithm 2's statistics and
nn.Sigmoid in an nn.Sequential, which anyone can run, save or serve without this project's code."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from src.engine.network import MLP


@torch.no_grad()
def plain_network(model: MLP, member: int) -> nn.Sequential:
    """Member `member` of `model` (BN's running statistics as they are: Algorithm 2's after training), in eval mode,
    on the CPU, as copies: the engine's model can go on training without changing it."""
    if not 0 <= member < model.members:
        raise IndexError(f"plain_network: member must be in 0..{model.members - 1}, got {member}")
    layers: list[nn.Module] = []
    for layer, affine in enumerate(model.hidden):
        layers.append(_linear(affine.weight[member], None if affine.bias is None else affine.bias[member, 0]))
        if model.batch_norm:
            layers.append(_batch_norm(model.norms[layer], member))
        layers.append(nn.Sigmoid())
    layers.append(_linear(model.output.weight[member], model.output.bias[member, 0]))
    return nn.Sequential(*layers).eval()


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    out_features, in_features = weight.shape  # the engine stores each member's weight as nn.Linear does: (out, in)
    linear = nn.Linear(in_features, out_features, bias=bias is not None)
    linear.weight.copy_(weight)
    if bias is not None:
        linear.bias.copy_(bias)
    return linear


def _batch_norm(norm: nn.Module, member: int) -> nn.BatchNorm1d:
    plain = nn.BatchNorm1d(norm.num_features, eps=norm.eps, momentum=norm.momentum)
    plain.weight.copy_(norm.weight[member])  # γ
    plain.bias.copy_(norm.bias[member])  # β
    plain.running_mean.copy_(norm.running_mean[member])  # E[x] of Algorithm 2
    plain.running_var.copy_(norm.running_var[member])  # Var[x] of Algorithm 2 (unbiased, m/(m−1)·E_B[σ_B²])
    plain.num_batches_tracked.copy_(norm.num_batches_tracked)
    return plain
