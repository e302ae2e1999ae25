"""The members' affine layers, and plain SGD on their weights folded into the backward pass.

`MemberLinear` holds K affine maps u ↦ u W_kᵀ + b_k, weight (K, out, in) as `nn.Linear` keeps it, so every member's
weight is one contiguous block and all K side by side, (K·out, in), are a view: one GEMM serves K members when they
share the input, one batched matmul when each member has its own batch.

Why the fused update: the first layer's weight gradient (K × 100 × 784 floats, 2.5 MB at K = 8) is the largest
tensor of a training step. Inside a step, autograd's GEMM writing it ran at about half the speed of the same GEMM on
its own (torch.profiler; the cause was not pinned down), and the optimizer then read it back twice (NaN scrub, step).
Inside `weight_descent(...)` the backward pass instead applies W ← W − η ∂ℓ/∂W as the very GEMM that would compute
∂ℓ/∂W = gᵀu, accumulating into W in place (beta = 1), so the gradient never exists. Biases and BN's γ, β are small
and keep the ordinary path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def member_affine(u: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """u W_kᵀ + b_k: (K, B, in) → (K, B, out), or (B, in) shared by all members → (B, K·out), members side by side."""
    members, out_features, in_features = weight.shape
    if u.dim() == 3:
        return torch.bmm(u, weight.mT) if bias is None else torch.baddbmm(bias, u, weight.mT)
    side_by_side = weight.view(members * out_features, in_features)
    if bias is None:
        return torch.mm(u, side_by_side.t())
    return torch.addmm(bias.view(1, members * out_features), u, side_by_side.t())


class WeightDescent:
    """SGD (optionally with momentum) on affine weights, applied by their layers' backward pass.

    `step_sizes` (K,), each member's learning rate (0 for a frozen member), must be set before every backward.
    With momentum μ the update is that of `torch.optim.SGD`: v ← μ v + ∂ℓ/∂W, W ← W − η v.
    """

    def __init__(self, weights: list[Tensor], momentum: float):
        self.weights = weights
        self.momentum = momentum
        self.step_sizes: Tensor | None = None
        self._velocities = {id(weight): torch.zeros_like(weight) for weight in weights} if momentum else None

    @torch.no_grad()
    def descend(self, weight: Tensor, u: Tensor, grad_z: Tensor, u_is_data: bool) -> None:
        """Step `weight` of the layer that mapped `u` to z, given ∂ℓ/∂z; ∂ℓ/∂W = (∂ℓ/∂z)ᵀ u is never formed."""
        if self.step_sizes is None:
            raise RuntimeError("WeightDescent: set step_sizes before the backward pass")
        members, out_features, in_features = weight.shape
        # A frozen (diverged) member has step size 0, but its activations and gradients may be NaN and 0 × NaN is NaN:
        # scrub both factors so the product is exactly 0. The data themselves are always finite.
        grad_z = grad_z.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        u = u if u_is_data else u.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        shared = u.dim() == 2

        def accumulate(target: Tensor, gradient_factor: Tensor, beta: float, alpha: float) -> None:
            # target ← beta·target + alpha·(gradient_factor)ᵀ u: one GEMM, in place
            if shared:
                target.view(members * out_features, in_features).addmm_(gradient_factor.t(), u, beta=beta, alpha=alpha)
            else:
                target.baddbmm_(gradient_factor.mT, u, beta=beta, alpha=alpha)

        if self._velocities is None:
            # η_k ∂ℓ/∂z in place; ∂ℓ/∂z is (K, B, out), or (B, K·out) seen as (B, K, out) when the input is shared
            per_member = grad_z.view(-1, members, out_features) if shared else grad_z
            per_member.mul_(self.step_sizes.to(grad_z.dtype).view((1, members, 1) if shared else (members, 1, 1)))
            accumulate(weight, grad_z, beta=1.0, alpha=-1.0)
        else:
            velocity = self._velocities[id(weight)]
            accumulate(velocity, grad_z, beta=self.momentum, alpha=1.0)
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
        members, out_features, in_features = weight.shape
        shared = u.dim() == 2
        grad_u = grad_bias = None
        if ctx.needs_input_grad[0]:  # before the step: ∂ℓ/∂u needs the weight the forward pass used
            grad_u = torch.mm(grad_z, weight.view(-1, in_features)) if shared else torch.bmm(grad_z, weight)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_z.sum(0).view(members, 1, out_features) if shared else grad_z.sum(1, keepdim=True)
        ctx.descent.descend(weight, u, grad_z, u_is_data=not ctx.needs_input_grad[0])
        return grad_u, None, grad_bias, None


class MemberLinear(nn.Module):
    """K affine maps u ↦ u W_kᵀ (+ b_k): weight (K, out, in), bias (K, 1, out).

    Input (K, B, in), one batch per member, or (B, in) shared by every member; output (K, B, out) either way.
    """

    def __init__(self, members: int, in_features: int, out_features: int, *, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(members, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features)) if bias else None
        self.descent: WeightDescent | None = None  # set only inside `weight_descent`

    def forward(self, u: Tensor) -> Tensor:
        if self.descent is not None and torch.is_grad_enabled():
            z = _AffineWithDescent.apply(u, self.weight, self.bias, self.descent)
        else:
            z = member_affine(u, self.weight, self.bias)
        return z if u.dim() == 3 else z.view(u.shape[0], self.weight.shape[0], -1).transpose(0, 1)


@contextmanager
def weight_descent(model: nn.Module, momentum: float = 0.0) -> Iterator[WeightDescent]:
    """Inside the block, every backward pass through `model` steps its `MemberLinear` weights by SGD.

    The weights then get no `.grad`; the caller sets `step_sizes` before each backward and steps every other
    parameter itself. Forward passes without gradients (evaluation) are untouched.
    """
    layers = [module for module in model.modules() if isinstance(module, MemberLinear)]
    descent = WeightDescent([layer.weight for layer in layers], momentum)
    for layer in layers:
        layer.descent = descent
    try:
        yield descent
    finally:
        for layer in layers:
            layer.descent = None
