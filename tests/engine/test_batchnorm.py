"""BatchNorm is Algorithm 1/2 of the paper and agrees with torch.nn.BatchNorm1d, member by member."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.engine.batchnorm import BatchNorm, _BatchNormFunction, population_statistics

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}
# (members, batch, features): the paper's layer (60 × 100), odd small shapes, and a members dimension
SHAPES = [(None, 60, 100), (None, 7, 3), (1, 2, 5), (4, 9, 3), (8, 60, 100)]


def _pair(members, features, dtype, seed=0):
    """Our BatchNorm with random γ, β and one nn.BatchNorm1d per member holding the same γ, β."""
    generator = torch.Generator().manual_seed(seed)
    ours = BatchNorm(features, members=members).to(dtype)
    with torch.no_grad():
        ours.weight.copy_(torch.rand(ours.weight.shape, generator=generator, dtype=dtype) + 0.5)
        ours.bias.copy_(torch.randn(ours.bias.shape, generator=generator, dtype=dtype))
    references = []
    for member in range(members or 1):
        reference = nn.BatchNorm1d(features).to(dtype)
        with torch.no_grad():
            reference.weight.copy_(ours.weight if members is None else ours.weight[member])
            reference.bias.copy_(ours.bias if members is None else ours.bias[member])
        references.append(reference)
    return ours, references


def _input(members, batch, features, dtype, seed, scale=3.0, offset=2.0):
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, features) if members is None else (members, batch, features)
    # by default an offset and a spread far from (0, 1), as the pre-activations of a net have
    return torch.randn(shape, generator=generator, dtype=dtype) * scale + offset


def _per_member(tensor, members):
    return [tensor] if members is None else list(tensor.unbind(0))


def _member(tensor, members, member):
    return tensor if members is None else tensor[member]


def _assert_close(actual, expected, dtype):
    torch.testing.assert_close(actual, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def _forward_backward_matches(ours, references, x, upstream, members, dtype):
    x_ours = x.clone().requires_grad_()
    y = ours(x_ours)
    y.backward(upstream)
    for member, (reference, x_member, upstream_member) in enumerate(
        zip(references, _per_member(x, members), _per_member(upstream, members), strict=True)
    ):
        x_reference = x_member.clone().requires_grad_()
        y_reference = reference(x_reference)
        y_reference.backward(upstream_member)
        _assert_close(_member(y, members, member), y_reference, dtype)
        _assert_close(_member(x_ours.grad, members, member), x_reference.grad, dtype)
        _assert_close(_member(ours.weight.grad, members, member), reference.weight.grad, dtype)
        _assert_close(_member(ours.bias.grad, members, member), reference.bias.grad, dtype)
    ours.zero_grad()
    for reference in references:
        reference.zero_grad()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("members", "batch", "features"), SHAPES)
def test_training_forward_and_backward_match_batchnorm1d(members, batch, features, dtype):
    ours, references = _pair(members, features, dtype)
    x = _input(members, batch, features, dtype, seed=1)
    upstream = _input(members, batch, features, dtype, seed=2, scale=1.0, offset=0.0)
    _forward_backward_matches(ours, references, x, upstream, members, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("members", "batch", "features"), SHAPES)
def test_moving_averages_then_eval_mode_match_batchnorm1d(members, batch, features, dtype):
    ours, references = _pair(members, features, dtype)
    for step in range(5):
        x = _input(members, batch, features, dtype, seed=10 + step)
        ours(x)
        for reference, x_member in zip(references, _per_member(x, members), strict=True):
            reference(x_member)
    for member, reference in enumerate(references):
        _assert_close(_member(ours.running_mean, members, member), reference.running_mean, dtype)
        _assert_close(_member(ours.running_var, members, member), reference.running_var, dtype)
    assert int(ours.num_batches_tracked) == 5 == int(references[0].num_batches_tracked)

    ours.eval()
    for reference in references:
        reference.eval()
    x = _input(members, batch, features, dtype, seed=20)
    upstream = _input(members, batch, features, dtype, seed=21, scale=1.0, offset=0.0)
    _forward_backward_matches(ours, references, x, upstream, members, dtype)


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 2)])
@pytest.mark.parametrize("input_needs_grad", [True, False])
def test_the_hand_written_backward_passes_gradcheck(shape, input_needs_grad):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_(input_needs_grad)
    gamma = (torch.rand(shape[:-2] + shape[-1:], generator=generator, dtype=torch.float64) + 0.5).requires_grad_()
    beta = torch.randn(gamma.shape, generator=generator, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda *inputs: _BatchNormFunction.apply(*inputs, 1e-5)[0], (x, gamma, beta))


def test_training_output_is_normalised_per_feature_and_member():
    layer = BatchNorm(3, members=2)
    y = layer(_input(2, 50, 3, torch.float64, seed=3).float())
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=1, correction=0), torch.ones(2, 3), atol=1e-3, rtol=0)


def test_eval_output_for_one_example_does_not_depend_on_the_rest_of_the_batch():
    layer = BatchNorm(5, members=3)
    layer(_input(3, 8, 5, torch.float32, seed=4))
    layer.eval()
    batch = _input(3, 8, 5, torch.float32, seed=5)
    other = batch.clone()
    other[:, 1:] = _input(3, 7, 5, torch.float32, seed=6)
    torch.testing.assert_close(layer(batch)[:, :1], layer(other)[:, :1], rtol=0, atol=0)
    torch.testing.assert_close(layer(batch[:, :1]), layer(batch)[:, :1], rtol=0, atol=0)


@pytest.mark.parametrize("members", [None, 2])
def test_a_training_batch_of_one_is_refused(members):
    layer = BatchNorm(4, members=members)
    x = torch.zeros((1, 4) if members is None else (members, 1, 4))
    with pytest.raises(ValueError, match=r"batch of size 1 .* need >= 2"):
        layer(x)
    with pytest.raises(ValueError, match=r"batch of size 1"), population_statistics(layer):
        layer(x)
    layer.eval()
    assert layer(x).shape == x.shape  # inference needs no batch statistics


@pytest.mark.parametrize(("members", "shape"), [(None, (4, 3)), (None, (2, 4, 4)), (2, (4, 4)), (2, (3, 4, 4))])
def test_input_of_the_wrong_shape_is_refused(members, shape):
    with pytest.raises(ValueError, match=r"expected input .* 4 features, got shape"):
        BatchNorm(4, members=members)(torch.zeros(shape))


def test_population_statistics_are_the_mean_of_batch_means_and_the_corrected_mean_of_batch_variances():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype=torch.float64), BatchNorm(4, members=None).double())
    layer = model[1]
    layer.train()
    batches = [torch.randn(6, 3, dtype=torch.float64) * 2 + 1 for _ in range(5)]
    inputs = [model[0](batch).detach() for batch in batches]
    moving_before = (layer.running_mean.clone(), layer.running_var.clone(), layer.num_batches_tracked.clone())
    m = 6
    expected_mean = torch.stack([z.mean(0) for z in inputs]).mean(0)
    expected_var = m / (m - 1) * torch.stack([z.var(0, correction=0) for z in inputs]).mean(0)

    with population_statistics(model):
        outputs = [model(batch) for batch in batches]
        # inside the block: batch statistics, no gradient, and the moving averages untouched
        assert not outputs[0].requires_grad
        batch_normalised = (inputs[0] - inputs[0].mean(0)) / (inputs[0].var(0, correction=0) + layer.eps).sqrt()
        torch.testing.assert_close(outputs[0], batch_normalised * layer.weight + layer.bias, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(layer.running_mean, moving_before[0], rtol=0, atol=0)

    torch.testing.assert_close(layer.running_mean, expected_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_var, expected_var, rtol=1e-12, atol=1e-12)
    assert int(layer.num_batches_tracked) == int(moving_before[2])
    assert not model.training and not layer.training


def test_population_statistics_give_each_member_its_own_statistics():
    layer = BatchNorm(2, members=3).double()
    spread = torch.tensor([1.0, 5.0, 9.0], dtype=torch.float64).view(3, 1, 1)  # members differ, and must not mix
    batches = [_input(3, 4, 2, torch.float64, seed=seed) * spread for seed in (7, 8)]
    with population_statistics(layer):
        for batch in batches:
            layer(batch)
    expected_var = 4 / 3 * torch.stack([batch.var(1, correction=0) for batch in batches]).mean(0)
    torch.testing.assert_close(layer.running_mean, torch.stack([b.mean(1) for b in batches]).mean(0))
    torch.testing.assert_close(layer.running_var, expected_var)


def test_a_population_pass_that_fails_or_sees_no_batch_leaves_the_statistics_alone():
    layer = BatchNorm(2)
    layer(torch.randn(5, 2))
    before = layer.running_var.clone()
    with pytest.raises(RuntimeError, match="interrupted"), population_statistics(layer):
        layer(torch.randn(5, 2) * 10)
        raise RuntimeError("interrupted")
    with pytest.raises(ValueError, match="no mini-batch"), population_statistics(layer):
        pass
    torch.testing.assert_close(layer.running_var, before, rtol=0, atol=0)
    assert layer._population is None
