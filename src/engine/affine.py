"""The members' affine layers, whose backward pass can step their weights instead of returning ∂ℓ/∂W.

`MemberLinear` holds K affine maps u ↦ u W_kᵀ + b_k, weight (K, out, in) as `nn.Linear` keeps it. Its input is
(G, B, in) with G dividing K: G groups of K/G members, each group seeing one batch. The K/G weights of a group side
by side, (K/G·out, in), are a view, so a group is one GEMM: G = 1 when every member sees the same batch (tuning),
G = K when each has its own (seeds), anything between for a grid of settings per data order (the sweep).

Why the fused update: the first layer's weight gradient (K × 100 × 784 floats, 2.5 MB at K = 8) is the largest
tensor of a training step. Inside a step, autograd's GEMM writing it ran at about half the speed of the same GEMM on
its own (torch.profiler; the cause was not pinned down), and the optimizer then read it back twice (NaN scrub, step).
A layer given a `Descent` (the optimizer, `src.engine.sgd.MemberSGD`) instead hands it ∂ℓ/∂z and its input u from the
backward pass, and the optimizer applies W ← W − η ∂ℓ/∂W as the very GEMM that would compute ∂ℓ/∂W = gᵀu,
accumulating into W in place (beta = 1), so the gradient never exists. Biases and BN's γ, β are small and keep the
ordinary path.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def grouped(weight: Tensor, groups: int) -> Tensor:
    """(K, out, in) seen as (G, K/G·out, in): the weights of each group's members side by side, as one matrix."""
    members, out_features, in_features = weight.shape
    return weight.view(groups, members // groups * out_features, in_features)


def member_affine(u: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """u W_kᵀ + b_k: u (G, B, in) → (G, B, K/G·out), the members of a group side by side."""
    groups = u.shape[0]
    stacked = grouped(weight, groups)
    if bias is None:
        return torch.bmm(u, stacked.mT)
    return torch.baddbmm(bias.view(groups, 1, -1), u, stacked.mT)


class Descent(Protocol):
    """What steps a layer's weight from inside its backward pass (`src.engine.sgd.MemberSGD`)."""

    def descend(self, weight: Tensor, u: Tensor, grad_z: Tensor, u_is_data: bool) -> None:
        """Step `weight` of the layer that mapped `u` (G, B, in) to z, given ∂ℓ/∂z (G, B, K/G·out)."""


class _AffineWithDescent(torch.autograd.Function):
    """`member_affine`, whose backward returns ∂ℓ/∂u and ∂ℓ/∂b but has `descent` step the weight instead of returning
    ∂ℓ/∂W."""

    @staticmethod
    def forward(ctx, u: Tensor, weight: Tensor, bias: Tensor | None, descent: Descent) -> Tensor:
        ctx.save_for_backward(u, weight)
        ctx.descent = descent
        return member_affine(u, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z: Tensor):
        u, weight = ctx.saved_tensors
        groups = u.shape[0]
        grad_u = grad_bias = None
        if ctx.needs_input_grad[0]:  # before the step: ∂ℓ/∂u needs the weight the forward pass used
            grad_u = torch.bmm(grad_z, grouped(weight, groups))
        if ctx.needs_input_grad[2]:
            grad_bias = grad_z.sum(1).view(weight.shape[0], 1, -1)
        ctx.descent.descend(weight, u, grad_z, u_is_data=not ctx.needs_input_grad[0])
        return grad_u, None, grad_bias, None


class MemberLinear(nn.Module):
    """K affine maps u ↦ u W_kᵀ (+ b_k): weight (K, out, in), bias (K, 1, out).

    Input (G, B, in) with G dividing K (group g feeds members g·K/G … (g+1)·K/G − 1); output (K, B, out).
    """

    def __init__(self, members: int, in_features: int, out_features: int, *, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(members, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features)) if bias else None
        self.descent: Descent | None = None  # set only while an optimizer is attached (`MemberSGD.attached`)

    def forward(self, u: Tensor) -> Tensor:
        members, out_features, _ = self.weight.shape
        groups, batch, _ = u.shape
        if self.descent is not None and torch.is_grad_enabled():
            z = _AffineWithDescent.apply(u, self.weight, self.bias, self.descent)
        else:
            z = member_affine(u, self.weight, self.bias)
        # (G, B, K/G·out) → (K, B, out): a view when G is 1 or K, a copy in between
        return z.view(groups, batch, members // groups, out_features).transpose(1, 2).reshape(members, batch, -1)
