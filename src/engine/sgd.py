"""Plain SGD, optionally with momentum, for K members each at its own learning rate.

Member k's parameters take the step of `torch.optim.SGD`: v ← μ v + ∂ℓ/∂p, p ← p − η_k v (v = ∂ℓ/∂p when μ = 0).
A frozen member (diverged or stopped) has η_k = 0 and stays exactly where it is.

Fused (the default), the `MemberLinear` weights are stepped by their own layers' backward pass: the GEMM that would
compute ∂ℓ/∂W = gᵀu accumulates −η gᵀu straight into W in place (beta = 1), or with momentum gᵀu into v (beta = μ)
before W takes −η v, so ∂ℓ/∂W is never written out (`src.engine.affine` says why that pays). Biases and BN's γ, β are
small and are stepped from `.grad` after the backward. Unfused, autograd writes every ∂ℓ/∂W and every parameter is
stepped from `.grad`: the plain form, which the benchmark measures the fusion against.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from src.engine.affine import MemberLinear, grouped


class MemberSGD:
    """SGD of every parameter of `model`, member k at `learning_rates[k]`, through one `step` per mini-batch.

    `velocities` (empty without momentum) hold one v per parameter, the affine weights first, then the others in
    the model's order, whether fused or not: the optimizer state a checkpoint saves.
    """

    def __init__(self, model: nn.Module, learning_rates: Tensor, momentum: float = 0.0, *, fused: bool = True):
        self.model, self.learning_rates, self.momentum, self.fused = model, learning_rates, momentum, fused
        self._layers = [module for module in model.modules() if isinstance(module, MemberLinear)]
        weights = [layer.weight for layer in self._layers]
        parameters = [*weights, *(p for p in model.parameters() if all(p is not weight for weight in weights))]
        # stepped from .grad after the backward; with fusion the weights are stepped inside it
        self._after_backward = parameters[len(weights) :] if fused else parameters
        self.velocities = [torch.zeros_like(p) for p in parameters] if momentum else []
        self._velocity_of = {id(p): v for p, v in zip(parameters, self.velocities, strict=True)} if momentum else {}
        self._step_sizes: Tensor | None = None  # η_k for live members, 0 for frozen ones: set only inside `step`
        # one rate for every member (train@'s seeds): while all are live it is a GEMM's scalar, not a product per member
        rates = learning_rates.unique()
        self._one_rate = float(rates[0]) if len(rates) == 1 else None
        self._all_live = False  # every member finite and training, this step: nothing to scrub (set inside `step`)

    @contextmanager
    def attached(self) -> Iterator[MemberSGD]:
        """Fused: inside the block a backward pass through the model steps its affine weights (they get no `.grad`)
        and must be `step`'s; forward passes without gradients (evaluation) are untouched. Unfused: nothing changes."""
        layers = self._layers if self.fused else []
        for layer in layers:
            layer.descent = self
        try:
            yield self
        finally:
            for layer in layers:
                layer.descent = None

    def step(self, losses: Tensor, live: Tensor) -> None:
        """One SGD step of every parameter on the sum of the members' `losses` (K,); a member not `live` (K, bool)
        keeps its parameters. Fused, the forward pass that gave `losses` must have run inside `attached()`."""
        self._step_sizes = self.learning_rates * live
        # on the CPU whether every member is live costs nothing to ask; on a GPU it would stall the step: scrub there
        self._all_live = live.device.type == "cpu" and bool(live.all())
        try:
            self.model.zero_grad(set_to_none=True)
            losses.sum().backward()
            if self.fused and any(layer.weight.grad is not None for layer in self._layers):
                raise RuntimeError("MemberSGD.step: the forward pass ran outside attached(), so no weight was stepped")
            self._step_from_grad()
        finally:
            self._step_sizes, self._all_live = None, False

    @torch.no_grad()
    def _step_from_grad(self) -> None:
        members = self._step_sizes.shape[0]
        for parameter in self._after_backward:
            gradient = parameter.grad if self._all_live else _finite_or_zero(parameter.grad, in_place=True)
            if self.velocities:
                gradient = self._velocity_of[id(parameter)].mul_(self.momentum).add_(gradient)
            step_sizes = self._step_sizes.view((members,) + (1,) * (parameter.dim() - 1))
            parameter.addcmul_(gradient, step_sizes, value=-1.0)

    @torch.no_grad()
    def descend(self, weight: Tensor, u: Tensor, grad_z: Tensor, u_is_data: bool) -> None:
        """Step `weight` of the layer that mapped `u` (G, B, in) to z, given ∂ℓ/∂z (G, B, K/G·out)."""
        if self._step_sizes is None:
            raise RuntimeError("MemberSGD: a backward pass through the attached model outside MemberSGD.step")
        members, out_features, _ = weight.shape
        groups = u.shape[0]
        if not self._all_live:
            # both factors scrubbed, so that a frozen member's product is exactly 0; the data are always finite
            grad_z = _finite_or_zero(grad_z)
            u = u if u_is_data else _finite_or_zero(u)
        if not self.momentum:
            if self._all_live and self._one_rate is not None:  # W ← W − η (∂ℓ/∂z)ᵀ u: one GEMM, η its scalar
                grouped(weight, groups).baddbmm_(grad_z.mT, u, alpha=-self._one_rate)
                return
            # η_k ∂ℓ/∂z, then W ← W − (η ∂ℓ/∂z)ᵀ u: one batched GEMM into the weights
            step_sizes = self._step_sizes.to(grad_z.dtype).view(groups, 1, members // groups, 1)
            scaled = grad_z.reshape(groups, -1, members // groups, out_features) * step_sizes
            grouped(weight, groups).baddbmm_(scaled.view_as(grad_z).mT, u, alpha=-1.0)
            return
        velocity = self._velocity_of[id(weight)]
        grouped(velocity, groups).baddbmm_(grad_z.mT, u, beta=self.momentum)
        weight.addcmul_(velocity, self._step_sizes.to(weight.dtype).view(members, 1, 1), value=-1.0)


def _finite_or_zero(tensor: Tensor, *, in_place: bool = False) -> Tensor:
    """`tensor` with NaN and ±inf set to 0."""
    # A frozen member has step size 0, but its activations and gradients may be NaN, and 0 × NaN is still NaN.
    scrub = tensor.nan_to_num_ if in_place else tensor.nan_to_num
    return scrub(nan=0.0, posinf=0.0, neginf=0.0)
