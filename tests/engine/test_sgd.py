"""The optimizer: fused or not, exactly what autograd's gradients and a plain SGD step per member would do, frozen
members left alone, and one velocity per parameter in a fixed order.

Members come in G groups of K/G, each group seeing one batch: G = 1 (every member the same batch), G = K (each
its own) and a grouping in between, where a group's members sit side by side in one GEMM.
"""

from __future__ import annotations

import copy

import pytest
import torch

from src.engine.affine import MemberLinear
from src.engine.network import MLP, member_losses
from src.engine.sgd import MemberSGD

MEMBERS, BATCH, IN = 4, 7, 784
SEEDS = [4, 5, 6, 7]
LEARNING_RATES = torch.tensor([0.3, 1.1, 0.05, 0.7], dtype=torch.float64)
EVERY_MEMBER = torch.ones(MEMBERS, dtype=torch.bool)
# None: one (B, in) batch shared by every member, the 2-D input; otherwise (G, B, in), one batch per group
GROUPINGS = pytest.mark.parametrize("groups", [None, 1, 2, MEMBERS], ids=["shared", "1-group", "2-groups", "own"])
FUSED = pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(groups: int | None, seed: int):
    generator = torch.Generator().manual_seed(seed)
    shape = (BATCH, IN) if groups is None else (groups, BATCH, IN)
    images = (torch.rand(shape, generator=generator) < 0.3).double()
    labels = torch.randint(0, 10, shape[:-1], generator=generator)
    return images, labels


def _affine_weights(model: MLP) -> list[torch.Tensor]:
    return [affine.weight for affine in (*model.hidden, model.output)]


def _reference_steps(model: MLP, groups: int | None, steps: int, momentum: float) -> MLP:
    """torch.autograd.grad on every parameter, then v ← μ v + g, p ← p − η_k v per member."""
    parameters = list(model.parameters())
    velocities = [torch.zeros_like(p) for p in parameters]
    for step in range(steps):
        images, labels = _batch(groups, seed=step)
        gradients = torch.autograd.grad(member_losses(model(images), labels).sum(), parameters)
        with torch.no_grad():
            for parameter, gradient, velocity in zip(parameters, gradients, velocities, strict=True):
                velocity.mul_(momentum).add_(gradient)
                parameter.sub_(velocity * LEARNING_RATES.view(-1, *[1] * (parameter.dim() - 1)))
    return model


def _sgd_steps(model: MLP, groups: int | None, steps: int, momentum: float, fused: bool) -> MLP:
    sgd = MemberSGD(model, LEARNING_RATES, momentum, fused=fused)
    with sgd.attached():
        for step in range(steps):
            images, labels = _batch(groups, seed=step)
            sgd.step(member_losses(model(images), labels), live=EVERY_MEMBER)
            # fused, ∂ℓ/∂W is never materialised; unfused, autograd writes it
            assert all((weight.grad is None) == fused for weight in _affine_weights(model))
    return model


@pytest.mark.parametrize("batch_norm", [False, True], ids=["vanilla", "bn"])
@GROUPINGS
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@FUSED
def test_a_step_equals_autograd_gradients_and_sgd(batch_norm, groups, momentum, fused):
    model = MLP(MEMBERS, batch_norm, seeds=SEEDS).double()
    reference = _reference_steps(copy.deepcopy(model), groups, steps=4, momentum=momentum)
    stepped = _sgd_steps(model, groups, steps=4, momentum=momentum, fused=fused)
    for (name, expected), (_, actual) in zip(reference.state_dict().items(), stepped.state_dict().items(), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12, msg=name)
    initial = MLP(MEMBERS, batch_norm, seeds=SEEDS).double()
    for weight, start in zip(_affine_weights(stepped), _affine_weights(initial), strict=True):
        for member in range(MEMBERS):  # every member's every weight really moved
            assert not torch.equal(weight[member], start[member])


@FUSED
def test_momentum_keeps_one_velocity_per_parameter_affine_weights_first(fused):
    model = MLP(MEMBERS, batch_norm=True, seeds=SEEDS).double()
    assert MemberSGD(model, LEARNING_RATES, fused=fused).velocities == []  # plain SGD keeps no state
    sgd = MemberSGD(model, LEARNING_RATES, momentum=0.9, fused=fused)
    weights = _affine_weights(model)
    # the same order fused or not, so that a checkpoint's list of velocities means one thing
    order = [*weights, *(p for p in model.parameters() if all(p is not weight for weight in weights))]
    assert [v.shape for v in sgd.velocities] == [p.shape for p in order] and len(order) == len([*model.parameters()])
    before = [parameter.clone() for parameter in order]
    with sgd.attached():
        images, labels = _batch(2, seed=0)
        sgd.step(member_losses(model(images), labels), live=EVERY_MEMBER)
    # one step from v = 0: v is the gradient, and each parameter moved by exactly −η_k v
    for parameter, velocity, start in zip(order, sgd.velocities, before, strict=True):
        assert velocity.abs().sum() > 0
        step_sizes = LEARNING_RATES.view(-1, *[1] * (parameter.dim() - 1))
        torch.testing.assert_close(parameter, start - step_sizes * velocity, rtol=0, atol=1e-15)


@GROUPINGS
@FUSED
def test_a_frozen_member_with_nan_activations_keeps_its_parameters_and_spares_the_others(groups, fused):
    model = MLP(MEMBERS, batch_norm=False, seeds=SEEDS).double()
    with torch.no_grad():
        model.hidden[1].weight[1] = float("nan")  # member 1 diverged: NaN activations from layer 2 on
    frozen_before = {name: p[1].clone() for name, p in model.named_parameters()}
    reference = dict(_reference_steps(copy.deepcopy(model), groups, steps=1, momentum=0.0).named_parameters())
    sgd = MemberSGD(model, LEARNING_RATES, fused=fused)
    with sgd.attached():
        images, labels = _batch(groups, seed=0)
        sgd.step(member_losses(model(images), labels), live=torch.tensor([True, False, True, True]))
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter[1], frozen_before[name], rtol=0, atol=0, equal_nan=True, msg=name)
        for member in (0, 2, 3):
            torch.testing.assert_close(parameter[member], reference[name][member], rtol=1e-10, atol=1e-12, msg=name)


def test_inside_the_block_a_backward_pass_must_be_a_step_and_outside_it_gradients_are_ordinary():
    model = MLP(2, batch_norm=True).double()
    images, labels = _batch(None, seed=0)
    sgd = MemberSGD(model, torch.ones(2, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="a backward pass through the attached model outside"), sgd.attached():
        member_losses(model(images), labels).sum().backward()
    assert all(layer.descent is None for layer in model.modules() if isinstance(layer, MemberLinear))
    model.zero_grad(set_to_none=True)
    member_losses(model(images), labels).sum().backward()
    assert model.hidden[0].weight.grad is not None and model.hidden[0].weight.grad.abs().sum() > 0


def test_a_fused_step_refuses_a_forward_pass_that_ran_outside_the_block():
    model = MLP(2, batch_norm=False).double()
    sgd = MemberSGD(model, torch.ones(2, dtype=torch.float64))
    images, labels = _batch(None, seed=0)
    losses = member_losses(model(images), labels)
    with pytest.raises(RuntimeError, match="the forward pass ran outside attached"), sgd.attached():
        sgd.step(losses, live=torch.ones(2, dtype=torch.bool))
