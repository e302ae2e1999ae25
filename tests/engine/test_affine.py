"""The members' affine layers: each member its own map of its group's batch, and a backward pass that hands the
weight step to a `Descent` with exactly the factors of autograd's ∂ℓ/∂W.

Members come in G groups of K/G, each group seeing one batch: G = 1 (every member the same batch), G = K (each
its own) and a grouping in between, where a group's members sit side by side in one GEMM.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.engine.affine import MemberLinear, grouped, member_affine

MEMBERS = 4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


class _Recorder:
    """A `Descent` that only records what the backward pass hands it."""

    def __init__(self):
        self.calls = []

    def descend(self, weight, u, grad_z, u_is_data):
        self.calls.append((weight, u.clone(), grad_z.clone(), u_is_data))


@pytest.mark.parametrize("groups", [1, 2, MEMBERS])
@pytest.mark.parametrize("input_is_data", [True, False], ids=["data", "activations"])
def test_a_layer_with_a_descent_hands_it_the_factors_of_the_weight_gradient_and_returns_the_others(
    groups, input_is_data
):
    u, weight, bias = (t.double() for t in _affine_case(groups, seed=3))
    upstream = torch.randn(MEMBERS, 6, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def layer_and_input():
        layer = MemberLinear(MEMBERS, 4, 5, bias=True).double()
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        return layer, u.clone().requires_grad_(not input_is_data)

    plain, plain_u = layer_and_input()
    (plain(plain_u) * upstream).sum().backward()
    layer, layer_u = layer_and_input()
    layer.descent = recorder = _Recorder()
    (layer(layer_u) * upstream).sum().backward()
    assert layer.weight.grad is None and torch.equal(layer.weight, weight)  # the step is the descent's, not autograd's
    torch.testing.assert_close(layer.bias.grad, plain.bias.grad, rtol=1e-12, atol=1e-12)
    assert (layer_u.grad is None) if input_is_data else torch.allclose(layer_u.grad, plain_u.grad, atol=1e-12)
    [(stepped, seen_u, grad_z, u_is_data)] = recorder.calls
    assert stepped is layer.weight and u_is_data == input_is_data and torch.equal(seen_u, u)
    # ∂ℓ/∂W = (∂ℓ/∂z)ᵀ u, one GEMM per group: what the descent folds into its step
    torch.testing.assert_close(torch.bmm(grad_z.mT, seen_u), grouped(plain.weight.grad, groups), rtol=1e-12, atol=1e-12)
