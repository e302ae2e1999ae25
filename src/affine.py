"""The members' affine layers, and plain SGD on their weights folded into the backward pass.

`MemberLinear` holds K affine maps u ↦ u W_kᵀ + b_k, weight (K, out, in) as `nn.Linear` keeps it. Its input is
(G, B, in) with G dividing K: G groups of K/G members, each group seeing one batch. The K/G weights of a group side
by side, (K/G·out, in), are a view, so a group is one GEMM: G = 1 when every member sees the same batch (tuning),
G = K when each has its own (seeds), anything between for a grid of settings per data order (the sweep).

Why the fused update: the first layer's weight gradient (K × 100 × 784 floats, 2.5 MB at K = 8) is the largest
tensor of a training step. Inside a step, autograd's GEMM writing it ran at about half the speed of the same GEMM on
its own (torch.profiler; the cause was not pinned down), and the optimizer then read it back twice (NaN scrub, step).
Inside `WeightDescent.attached()` the backward pass instead applies W ← W − η ∂ℓ/∂W as the very GEMM that would
compute ∂ℓ/∂W = gᵀu, accumulating into W in place (beta = 1), so the gradient never exists. Biases and BN's γ, β
are small and keep the ordinary path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


class WeightDescent:
    """SGD (optionally with momentum) on a model's `MemberLinear` weights, applied by their layers' backward pass.

    `step_sizes` (K,), each member's learning rate (0 for a frozen member), must be set before every backward.
    With momentum μ the update is that of `torch.optim.SGD`: v ← μ v + ∂ℓ/∂W, W ← W − η v.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.0):
        self.layers = [module for module in model.modules() if isinstance(module, MemberLinear)]
        self.weights = [layer.weight for layer in self.layers]
        self.momentum = momentum
        self.step_sizes: Tensor | None = None
        # v per weight, in the order of `weights` (a checkpoint saves them as a list)
        self._velocity_of = {id(weight): torch.zeros_like(weight) for weight in self.weights} if momentum else {}

    @property
    def velocities(self) -> list[Tensor]:
        return list(self._velocity_of.values())

    @contextmanager
    def attached(self) -> Iterator[WeightDescent]:
        """Inside the block every backward pass through the model steps its affine weights, which get no `.grad`.

        Forward passes without gradients (evaluation) are untouched.
        """
        for layer in self.layers:
            layer.descent = self
        try:
            yield self
        finally:
            for layer in self.layers:
                layer.descent = None

    @torch.no_grad()
    def descend(self, weight: Tensor, u: Tensor, grad_z: Tensor, u_is_data: bool) -> None:
        """Step `weight` of the layer that mapped `u` (G, B, in) to z, given ∂ℓ/∂z (G, B, K/G·out)."""
        if self.step_sizes is None:
            raise RuntimeError("WeightDescent: set step_sizes before the backward pass")
        members, out_features, _ = weight.shape
        groups = u.shape[0]
        # A frozen (diverged) member has step size 0, but its activations and gradients may be NaN and 0 × NaN is NaN:
        # scrub both factors so the product is exactly 0. The data themselves are always finite.
        grad_z = grad_z.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        u = u if u_is_data else u.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        if not self.momentum:
            # η_k ∂ℓ/∂z in place, then W ← W − (η ∂ℓ/∂z)ᵀ u: one batched GEMM into the weights
            step_sizes = self.step_sizes.to(grad_z.dtype).view(groups, 1, members // groups, 1)
            grad_z.view(groups, -1, members // groups, out_features).mul_(step_sizes)
            grouped(weight, groups).baddbmm_(grad_z.mT, u, alpha=-1.0)
            return
        velocity = self._velocity_of[id(weight)]
        grouped(velocity, groups).baddbmm_(grad_z.mT, u, beta=self.momentum)
        weight.addcmul_(velocity, self.step_sizes.to(weight.dtype).view(members, 1, 1), value=-1.0)


class _AffineWithDescent(torch.autograd.Function):
    """`member_affine`, whose backward returns ∂ℓ/∂u and ∂ℓ/∂b but steps the weight instead of returning ∂ℓ/∂W."""

    @staticmethod
    def forward(ctx, u: Tensor, weight: Tensor, bias: Tensor | None, descent: WeightDescent) -> Tensor:
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
        self.descent: WeightDescent | None = None  # set only inside `WeightDescent.attached`

    def forward(self, u: Tensor) -> Tensor:
        members, out_features, _ = self.weight.shape
        groups, batch, _ = u.shape
        if self.descent is not None and torch.is_grad_enabled():
            z = _AffineWithDescent.apply(u, self.weight, self.bias, self.descent)
        else:
            z = member_affine(u, self.weight, self.bias)
        # (G, B, K/G·out) → (K, B, out): a view when G is 1 or K, a copy in between
        return z.view(groups, batch, members // groups, out_features).transpose(1, 2).reshape(members, batch, -1)
