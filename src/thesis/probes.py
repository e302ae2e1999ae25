"""The thesis's measures (DESIGN.md, "The thesis"): what a training step does to the members, at a probe step.

On a K-member `MLP` and the step's batch, with BN normalising by that batch's statistics:
- internal covariate shift (Santurkar et al. 2018, Definition 2.1): per hidden layer i, G = ∇_{W_i} L on the batch and
  G′ = the same gradient once layers 1 … i−1 have taken this step's SGD update; ‖G − G′‖₂ and cos(G, G′);
- the landscape along the step (§3.1): with g the full gradient, over η = multiplier × η_k, the range of L(θ − η g),
  the largest ‖∇L(θ − η g) − g‖ (gradient predictiveness) and the largest ‖∇L(θ − η g) − g‖ / ‖η g‖ (effective β);
- the effective learning rate (Arora, Li & Lyu 2019): ‖W‖ per hidden layer and η_k / ‖W‖².

Every norm is Euclidean over a member's entries (Frobenius for a matrix, all parameters together for g). Probes are
pure: the forward passes run through `torch.func.functional_call` on copies of BN's running statistics, gradients
come from `torch.autograd.grad` on detached tensors, and the affine layers' optimizer is detached meanwhile (their
fused backward would step the weights), so parameters, running statistics, velocities and `.grad` stay exactly as
they were. Members are computed together, one tensor per parameter, as the engine trains them. A noisy BN net's
forward adds the noise its BN layers hold (`MLP.redraw_noise`): probe a step after its draw and before its forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.func import functional_call

from src.engine.affine import MemberLinear
from src.engine.network import MLP, member_losses
from src.engine.schedule import eval_schedule
from src.engine.sgd import MemberSGD

# η / η_k along −g: from half the step the member takes to four times it, factors of 2. The step itself (×1) is where
# the next iterate lands; ×2 and ×4 are where a larger rate would land, which is what BN's larger usable rates ask.
STEP_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)
PROBES_PER_DECADE = 3  # log-spaced probe steps: 1, 2, 5, 10, 22, 46, 100, … resolve early training as the curves do


def probe_steps(steps: int, per_decade: int = PROBES_PER_DECADE) -> tuple[int, ...]:
    """Step 0 and `per_decade` log-spaced steps below `steps` (the last step has no update after it to probe)."""
    return eval_schedule(steps, every=steps, per_decade=per_decade)[:-1]


@dataclass(frozen=True)
class StepRule:
    """The step MemberSGD takes at the probed step: v ← μ v + g, p ← p − η_k v (v = g without momentum)."""

    learning_rates: Tensor  # (K,) η_k; 0 for a member that does not step (diverged or stopped)
    momentum: float = 0.0
    velocities: Mapping[str, Tensor] = field(default_factory=dict)  # v before the step, by parameter name; only read

    def __post_init__(self) -> None:
        if self.momentum and not self.velocities:
            raise ValueError(f"StepRule: momentum {self.momentum} needs the optimizer's velocities, got none")

    @classmethod
    def of(cls, sgd: MemberSGD, live: Tensor | None = None) -> StepRule:
        """The step `sgd` takes next; a member not `live` (K, bool) stands still, as in `MemberSGD.step`."""
        name_of = {id(parameter): name for name, parameter in sgd.model.named_parameters()}
        # MemberSGD keeps its velocities by parameter identity (`velocities` is only their checkpoint order)
        velocities = {name_of[key]: velocity for key, velocity in sgd._velocity_of.items()}
        rates = sgd.learning_rates if live is None else sgd.learning_rates * live
        return cls(rates, sgd.momentum, velocities)


@dataclass(frozen=True)
class CovariateShift:
    """Definition 2.1 per member and hidden layer, (K, hidden layers)."""

    distance: Tensor  # ‖G − G′‖₂
    cosine: Tensor  # ⟨G, G′⟩ / (‖G‖ ‖G′‖)


@dataclass(frozen=True)
class Landscape:
    """§3.1 per member, (K,), over η = multiplier × η_k for each of `multipliers` (a member at η_k = 0 gets NaN β)."""

    multipliers: tuple[float, ...]
    loss_variation: Tensor  # max − min over the grid of L(θ − η g)
    gradient_predictiveness: Tensor  # max over the grid of ‖∇L(θ − η g) − g‖
    effective_beta: Tensor  # max over the grid of ‖∇L(θ − η g) − g‖ / ‖η g‖


@dataclass(frozen=True)
class EffectiveRates:
    """Per member and hidden layer, (K, hidden layers)."""

    weight_norm: Tensor  # ‖W‖, the affine map's weight (BN's input in the BN net, so scale-invariant there)
    rate: Tensor  # η_k / ‖W‖²


@dataclass(frozen=True)
class Probes:
    covariate_shift: CovariateShift
    landscape: Landscape
    effective_rates: EffectiveRates


def measure(
    model: MLP, images: Tensor, labels: Tensor, step: StepRule, multipliers: Sequence[float] = STEP_MULTIPLIERS
) -> Probes:
    """Every measure on one batch (`images` and `labels` as the model's forward and `member_losses` take them),
    at the parameters the model holds now, before `step`; leaves the model, BN's statistics and `step` untouched."""
    with _probing(model):
        point = _Batch(model, images, labels)
        gradients = point.gradients(point.parameters, wrt=point.parameters)[1]
        return Probes(
            covariate_shift=_covariate_shift(point, gradients, step),
            landscape=_landscape(point, gradients, step, tuple(multipliers)),
            effective_rates=effective_learning_rates(model, step.learning_rates),
        )


def effective_learning_rates(model: MLP, learning_rates: Tensor) -> EffectiveRates:
    """‖W‖ of each member's hidden layers and η_k / ‖W‖² (Arora, Li & Lyu 2019), for any variant."""
    norms = torch.stack([_member_norm([layer.weight.detach()]) for layer in model.hidden], dim=1)
    return EffectiveRates(weight_norm=norms, rate=learning_rates.to(norms.dtype).unsqueeze(1) / norms.square())


class _Batch:
    """The members' losses on one batch as a function of their parameters, in training mode, on copies of BN's
    running statistics (a forward pass in training mode updates them)."""

    def __init__(self, model: MLP, images: Tensor, labels: Tensor):
        self.model, self.images, self.labels = model, images, labels
        self.parameters = {name: parameter.detach() for name, parameter in model.named_parameters()}
        self.buffers = dict(model.named_buffers())
        self.layer_of = _layers(model)

    def gradients(self, parameters: Mapping[str, Tensor], wrt: Iterable[str]) -> tuple[Tensor, dict[str, Tensor]]:
        """The members' losses (K,) at `parameters` and their gradients with respect to the parameters named `wrt`."""
        leaves = {name: parameters[name].detach().requires_grad_() for name in wrt}
        state = {**parameters, **leaves, **{name: buffer.clone() for name, buffer in self.buffers.items()}}
        with torch.enable_grad():
            losses = member_losses(functional_call(self.model, state, (self.images,)), self.labels)
            # the members' losses are independent, so the gradient of their sum is each member's own
            gradients = torch.autograd.grad(losses.sum(), list(leaves.values()))
        return losses.detach(), dict(zip(leaves, gradients, strict=True))


def _covariate_shift(point: _Batch, gradients: dict[str, Tensor], step: StepRule) -> CovariateShift:
    updated = _after_step(point.parameters, gradients, step)
    distances, cosines = [], []
    for layer in range(len(point.model.hidden)):
        # layers 1 … i−1 after the update, layers i … k as they are
        below = {name: updated[name] for name in updated if point.layer_of[name] < layer}
        weight = f"hidden.{layer}.weight"
        shifted = point.gradients({**point.parameters, **below}, wrt=[weight])[1][weight].flatten(1)
        original = gradients[weight].flatten(1)
        distances.append(torch.linalg.vector_norm(original - shifted, dim=1))
        norms = torch.linalg.vector_norm(original, dim=1) * torch.linalg.vector_norm(shifted, dim=1)
        cosines.append(torch.linalg.vecdot(original, shifted, dim=1) / norms)
    return CovariateShift(distance=torch.stack(distances, dim=1), cosine=torch.stack(cosines, dim=1))


def _landscape(
    point: _Batch, gradients: dict[str, Tensor], step: StepRule, multipliers: tuple[float, ...]
) -> Landscape:
    gradient_norm = _member_norm(gradients.values())
    losses, changes, betas = [], [], []
    for multiplier in multipliers:
        step_sizes = multiplier * step.learning_rates
        moved = {name: p - _per_member(step_sizes, p) * gradients[name] for name, p in point.parameters.items()}
        loss, moved_gradients = point.gradients(moved, wrt=moved)
        change = _member_norm(moved_gradients[name] - gradients[name] for name in gradients)
        losses.append(loss)
        changes.append(change)
        betas.append(change / (step_sizes.to(change.dtype) * gradient_norm))
    losses = torch.stack(losses)
    return Landscape(
        multipliers=multipliers,
        loss_variation=losses.amax(0) - losses.amin(0),
        gradient_predictiveness=torch.stack(changes).amax(0),
        effective_beta=torch.stack(betas).amax(0),
    )


def _after_step(parameters: Mapping[str, Tensor], gradients: dict[str, Tensor], step: StepRule) -> dict[str, Tensor]:
    """Every parameter after the step, computed aside: the velocities are read, never written."""
    updated = {}
    for name, parameter in parameters.items():
        direction = gradients[name]
        if step.momentum:
            direction = step.velocities[name] * step.momentum + direction
        updated[name] = parameter - _per_member(step.learning_rates, parameter) * direction
    return updated


def _layers(model: MLP) -> dict[str, int]:
    """The layer of each parameter by name: hidden layer i's affine map and BN (γ, β) are i, the output layer last."""
    layer_of_module = {id(model.output): len(model.hidden)}
    for layer, affine in enumerate(model.hidden):
        layer_of_module[id(affine)] = layer
    for layer, norm in enumerate(model.norms):
        layer_of_module[id(norm)] = layer
    found = {}
    for module_name, module in model.named_modules():
        for name, _ in module.named_parameters(prefix=module_name, recurse=False):
            if id(module) not in layer_of_module:
                raise ValueError(f"probes: parameter {name} belongs to no layer of the MLP")
            found[name] = layer_of_module[id(module)]
    return found


@contextmanager
def _probing(model: MLP) -> Iterator[None]:
    """BN in training mode, gradients on and no optimizer attached to the affine layers (their fused backward would
    step the weights) inside the block; modes and optimizer as they were after it."""
    modes = {module: module.training for module in model.modules()}
    affines = [module for module in model.modules() if isinstance(module, MemberLinear)]
    descents = [affine.descent for affine in affines]
    model.train()
    for affine in affines:
        affine.descent = None
    try:
        yield
    finally:
        for affine, descent in zip(affines, descents, strict=True):
            affine.descent = descent
        for module, training in modes.items():
            module.training = training


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    """(K,) values shaped to broadcast over a parameter `like` (K, …), in its dtype."""
    return values.to(like.dtype).view((-1,) + (1,) * (like.dim() - 1))


def _member_norm(tensors: Iterable[Tensor]) -> Tensor:
    """(K,) Euclidean norm of each member's entries of all `tensors` together (each (K, …))."""
    per_tensor = [torch.linalg.vector_norm(tensor.flatten(1), dim=1) for tensor in tensors]
    return torch.linalg.vector_norm(torch.stack(per_tensor), dim=0)
