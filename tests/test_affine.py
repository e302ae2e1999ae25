"""The fused weight step: exactly what autograd's gradient and a plain SGD step would do, frozen members left alone.

Members come in G groups of K/G, each group seeing one batch: G = 1 (every member the same batch), G = K (each
its own) and a grouping in between, where a group's members sit side by side in one GEMM.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from src.affine import MemberLinear, WeightDescent, grouped, member_affine
from src.models import MLP, member_losses

MEMBERS, BATCH, IN = 4, 7, 784
SEEDS = [4, 5, 6, 7]
STEP_SIZES = torch.tensor([0.3, 1.1, 0.05, 0.7], dtype=torch.float64)
# None: one (B, in) batch shared by every member, the 2-D input; otherwise (G, B, in), one batch per group
GROUPINGS = pytest.mark.parametrize("groups", [None, 1, 2, MEMBERS], ids=["shared", "1-group", "2-groups", "own"])

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(groups: int | None, seed: int):
    generator = torch.Generator().manual_seed(seed)
    shape = (BATCH, IN) if groups is None else (groups, BATCH, IN)
    images = (torch.rand(shape, generator=generator) < 0.3).double()
    labels = torch.randint(0, 10, shape[:-1], generator=generator)
    return images, labels


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
                parameter.sub_(velocity * STEP_SIZES.view(-1, *[1] * (parameter.dim() - 1)))
    return model


def _fused_steps(model: MLP, groups: int | None, steps: int, momentum: float) -> MLP:
    descent = WeightDescent(model, momentum)
    others = [p for p in model.parameters() if all(p is not weight for weight in descent.weights)]
    velocities = [torch.zeros_like(p) for p in others]
    with descent.attached():
        for step in range(steps):
            images, labels = _batch(groups, seed=step)
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
@GROUPINGS
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_fused_step_equals_autograd_gradients_and_sgd(batch_norm, groups, momentum):
    model = MLP(MEMBERS, batch_norm, seeds=SEEDS).double()
    reference = _reference_steps(copy.deepcopy(model), groups, steps=4, momentum=momentum)
    fused = _fused_steps(model, groups, steps=4, momentum=momentum)
    for (name, expected), (_, actual) in zip(reference.state_dict().items(), fused.state_dict().items(), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12, msg=name)
    initial = MLP(MEMBERS, batch_norm, seeds=SEEDS).double()
    for affine, start in zip([*fused.hidden, fused.output], [*initial.hidden, initial.output], strict=True):
        for member in range(MEMBERS):  # every member's every weight really moved
            assert not torch.equal(affine.weight[member], start.weight[member])


def test_momentum_keeps_one_velocity_per_affine_weight_in_the_weights_order():
    model = MLP(MEMBERS, batch_norm=True, seeds=SEEDS).double()
    assert WeightDescent(model).velocities == []  # plain SGD keeps no state
    descent = WeightDescent(model, momentum=0.9)
    assert descent.weights == [*(affine.weight for affine in model.hidden), model.output.weight]
    assert [v.shape for v in descent.velocities] == [w.shape for w in descent.weights]
    before = [weight.clone() for weight in descent.weights]
    with descent.attached():
        images, labels = _batch(2, seed=0)
        descent.step_sizes = STEP_SIZES
        member_losses(model(images), labels).sum().backward()
    # one step from v = 0: v is the gradient, and each weight moved by exactly −η_k v
    for weight, velocity, start in zip(descent.weights, descent.velocities, before, strict=True):
        assert velocity.abs().sum() > 0
        torch.testing.assert_close(weight, start - STEP_SIZES.view(-1, 1, 1) * velocity, rtol=0, atol=1e-15)


@GROUPINGS
def test_a_frozen_member_with_nan_activations_keeps_its_weights_and_spares_the_others(groups):
    model = MLP(MEMBERS, batch_norm=False, seeds=SEEDS).double()
    with torch.no_grad():
        model.hidden[1].weight[1] = float("nan")  # member 1 diverged: NaN activations from layer 2 on
    frozen_before = {name: p[1].clone() for name, p in model.named_parameters()}
    reference = _reference_steps(copy.deepcopy(model), groups, steps=1, momentum=0.0)
    descent = WeightDescent(model)
    with descent.attached():
        images, labels = _batch(groups, seed=0)
        descent.step_sizes = STEP_SIZES * torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
        member_losses(model(images), labels).sum().backward()
    for name, weight in ((n, p) for n, p in model.named_parameters() if n.endswith("weight")):
        torch.testing.assert_close(weight[1], frozen_before[name], rtol=0, atol=0, equal_nan=True, msg=name)
        for member in (0, 2, 3):
            expected = dict(reference.named_parameters())[name][member]
            torch.testing.assert_close(weight[member], expected, rtol=1e-10, atol=1e-12, msg=name)


def test_outside_the_block_the_weights_get_ordinary_gradients_again():
    model = MLP(2, batch_norm=True).double()
    images, labels = _batch(None, seed=0)
    descent = WeightDescent(model)
    with pytest.raises(RuntimeError, match="set step_sizes before the backward pass"), descent.attached():
        member_losses(model(images), labels).sum().backward()
    assert all(layer.descent is None for layer in model.modules() if isinstance(layer, MemberLinear))
    model.zero_grad(set_to_none=True)
    member_losses(model(images), labels).sum().backward()
    assert model.hidden[0].weight.grad is not None and model.hidden[0].weight.grad.abs().sum() > 0


def test_a_forward_without_gradients_inside_the_block_steps_nothing():
    model = MLP(2, batch_norm=False).double()
    before = copy.deepcopy(model.state_dict())
    descent = WeightDescent(model)
    with descent.attached(), torch.no_grad():
        descent.step_sizes = torch.ones(2, dtype=torch.float64)
        model(_batch(None, seed=0)[0])
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)


def _affine_case(groups: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(MEMBERS, 5, 4, generator=generator), torch.randn(MEMBERS, 1, 5, generator=generator)
    return torch.randn(groups, 6, 4, generator=generator), weight, bias


@pytest.mark.parametrize("groups", [1, 2, MEMBERS])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_member_affine_puts_each_groups_members_side_by_side(groups, with_bias):
    u, weight, bias = _affine_case(groups)
    z = member_affine(u, weight, bias if with_bias else None)
    per_group = MEMBERS // groups
    assert z.shape == (groups, 6, per_group * 5)
    for member in range(MEMBERS):
        group, slot = divmod(member, per_group)
        expected = F.linear(u[group], weight[member], bias[member, 0] if with_bias else None)
        torch.testing.assert_close(z[group, :, slot * 5 : (slot + 1) * 5], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("groups", [1, 2, MEMBERS])
def test_member_linear_gives_member_k_its_own_map_of_its_groups_batch(groups):
    u, weight, bias = _affine_case(groups, seed=1)
    layer = MemberLinear(MEMBERS, 4, 5, bias=True)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    z = layer(u)
    assert z.shape == (MEMBERS, 6, 5)
    for member in range(MEMBERS):
        expected = F.linear(u[member // (MEMBERS // groups)], weight[member], bias[member, 0])
        torch.testing.assert_close(z[member], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("groups", [1, 2, MEMBERS])
def test_grouped_weights_are_a_view_with_each_groups_members_stacked(groups):
    weight = torch.randn(MEMBERS, 5, 4, generator=torch.Generator().manual_seed(2))
    stacked = grouped(weight, groups)
    per_group = MEMBERS // groups
    assert stacked.shape == (groups, per_group * 5, 4) and stacked.data_ptr() == weight.data_ptr()
    for member in range(MEMBERS):
        group, slot = divmod(member, per_group)
        assert torch.equal(stacked[group, slot * 5 : (slot + 1) * 5], weight[member])
