"""The fused weight step: exactly what autograd's gradient and a plain SGD step would do, frozen members left alone."""

from __future__ import annotations

import copy

import pytest
import torch

from src.affine import MemberLinear, member_affine, weight_descent
from src.models import MLP, member_losses

MEMBERS, BATCH, IN = 3, 7, 784
STEP_SIZES = torch.tensor([0.3, 1.1, 0.05], dtype=torch.float64)


def _batch(shared: bool, seed: int):
    generator = torch.Generator().manual_seed(seed)
    shape = (BATCH, IN) if shared else (MEMBERS, BATCH, IN)
    images = (torch.rand(shape, generator=generator) < 0.3).double()
    labels = torch.randint(0, 10, shape[:-1], generator=generator)
    return images, labels


def _reference_steps(model: MLP, shared: bool, steps: int, momentum: float) -> MLP:
    """torch.autograd.grad on every parameter, then v ← μ v + g, p ← p − η_k v per member."""
    parameters = list(model.parameters())
    velocities = [torch.zeros_like(p) for p in parameters]
    for step in range(steps):
        images, labels = _batch(shared, seed=step)
        gradients = torch.autograd.grad(member_losses(model(images), labels).sum(), parameters)
        with torch.no_grad():
            for parameter, gradient, velocity in zip(parameters, gradients, velocities, strict=True):
                velocity.mul_(momentum).add_(gradient)
                parameter.sub_(velocity * STEP_SIZES.view(-1, *[1] * (parameter.dim() - 1)))
    return model


def _fused_steps(model: MLP, shared: bool, steps: int, momentum: float) -> MLP:
    with weight_descent(model, momentum) as descent:
        others = [p for p in model.parameters() if all(p is not weight for weight in descent.weights)]
        velocities = [torch.zeros_like(p) for p in others]
        for step in range(steps):
            images, labels = _batch(shared, seed=step)
            descent.step_sizes = STEP_SIZES
            member_losses(model(images), labels).sum().backward()
            assert all(weight.grad is None for weight in descent.weights)  # never materialised
            with torch.no_grad():
                for parameter, velocity in zip(others, velocities, strict=True):
                    velocity.mul_(momentum).add_(parameter.grad)
                    parameter.sub_(velocity * STEP_SIZES.view(-1, *[1] * (parameter.dim() - 1)))
            model.zero_grad(set_to_none=True)
    return model


@pytest.mark.parametrize("batch_norm", [False, True], ids=["vanilla", "bn"])
@pytest.mark.parametrize("shared", [False, True], ids=["own-batches", "shared-batch"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_fused_step_equals_autograd_gradients_and_sgd(batch_norm, shared, momentum):
    model = MLP(MEMBERS, batch_norm, seeds=[4, 5, 6]).double()
    reference = _reference_steps(copy.deepcopy(model), shared, steps=4, momentum=momentum)
    fused = _fused_steps(model, shared, steps=4, momentum=momentum)
    for (name, expected), (_, actual) in zip(reference.state_dict().items(), fused.state_dict().items(), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12, msg=name)
    assert not torch.equal(fused.hidden[0].weight, MLP(MEMBERS, batch_norm, seeds=[4, 5, 6]).double().hidden[0].weight)


@pytest.mark.parametrize("shared", [False, True], ids=["own-batches", "shared-batch"])
def test_a_frozen_member_with_nan_activations_keeps_its_weights_and_spares_the_others(shared):
    model = MLP(MEMBERS, batch_norm=False, seeds=[4, 5, 6]).double()
    with torch.no_grad():
        model.hidden[1].weight[1] = float("nan")  # member 1 diverged: NaN activations from layer 2 on
    frozen_before = {name: p[1].clone() for name, p in model.named_parameters()}
    reference = _reference_steps(copy.deepcopy(model), shared, steps=1, momentum=0.0)
    with weight_descent(model) as descent:
        images, labels = _batch(shared, seed=0)
        descent.step_sizes = STEP_SIZES * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
        member_losses(model(images), labels).sum().backward()
    for name, weight in ((n, p) for n, p in model.named_parameters() if n.endswith("weight")):
        torch.testing.assert_close(weight[1], frozen_before[name], rtol=0, atol=0, equal_nan=True, msg=name)
        for member in (0, 2):
            expected = dict(reference.named_parameters())[name][member]
            torch.testing.assert_close(weight[member], expected, rtol=1e-10, atol=1e-12, msg=name)


def test_outside_the_block_the_weights_get_ordinary_gradients_again():
    model = MLP(2, batch_norm=True).double()
    images, labels = _batch(shared=True, seed=0)
    with pytest.raises(RuntimeError, match="set step_sizes before the backward pass"), weight_descent(model):
        member_losses(model(images), labels).sum().backward()
    assert all(layer.descent is None for layer in model.modules() if isinstance(layer, MemberLinear))
    model.zero_grad(set_to_none=True)
    member_losses(model(images), labels).sum().backward()
    assert model.hidden[0].weight.grad is not None and model.hidden[0].weight.grad.abs().sum() > 0


def test_a_forward_without_gradients_inside_the_block_steps_nothing():
    model = MLP(2, batch_norm=False).double()
    before = copy.deepcopy(model.state_dict())
    with weight_descent(model) as descent, torch.no_grad():
        descent.step_sizes = torch.ones(2, dtype=torch.float64)
        model(_batch(shared=True, seed=0)[0])
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("shared", [False, True], ids=["own-batches", "shared-batch"])
def test_member_affine_is_each_members_own_linear_map(shared):
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(MEMBERS, 5, 4, generator=generator), torch.randn(MEMBERS, 1, 5, generator=generator)
    u = torch.randn((6, 4) if shared else (MEMBERS, 6, 4), generator=generator)
    z = member_affine(u, weight, bias)
    z = z.view(6, MEMBERS, 5).transpose(0, 1) if shared else z
    for member in range(MEMBERS):
        expected = torch.nn.functional.linear(u if shared else u[member], weight[member], bias[member, 0])
        torch.testing.assert_close(z[member], expected)
