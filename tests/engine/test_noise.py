"""Noisy BN: BN's output plus noise of params.yaml's distribution, drawn once per step and held by the layers; the
same noise for every forward of a step, new noise after a redraw, none at inference; a seed's noise on a stream of its
own, apart from its init draws; and BN's exact gradient through the noisy layer."""

from __future__ import annotations

import math

import pytest
import torch

from src.config import ModelConfig, NoisyBNConfig, load_params
from src.engine.batchnorm import population_statistics
from src.engine.network import MLP, build_model
from src.engine.noise import NoiseDraws, NoisyBatchNorm, noise_seed

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
NOISE = NoisyBNConfig(mean_bound=0.5, std_min=0.5, std_max=1.5)
LAYERS, UNITS = 3, 100


@pytest.fixture(scope="module")
def model_config():
    return ModelConfig(
        hidden_layers=LAYERS, hidden_units=UNITS, init_std=0.1, bn_eps=1e-5, bn_momentum=0.1, population_batches=2
    )


def _images(batch: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(batch, 784, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def test_params_yaml_states_the_noise_of_a_non_zero_mean_and_a_non_unit_variance(repo_root):
    noise = load_params(repo_root / "params.yaml").noisy_bn
    assert noise.mean_bound > 0  # the unit means spread over an interval, not one point
    assert noise.std_min < noise.std_max  # and so do the standard deviations: a variance of 1 has probability 0


def test_each_steps_noise_has_the_stated_distribution_per_unit_and_its_examples_are_gaussian_about_it():
    # 4 members × 3 layers × 100 units: 1,200 unit distributions of one step, each seen through 4,000 examples
    noise = NoiseDraws([0, 1, 2, 3], NOISE).draw(LAYERS, 4000, UNITS).double()
    unit_means = noise.mean(dim=2).flatten()  # ≈ each unit's μ, to ± σ/√4000 ≤ 0.024
    unit_stds = noise.std(dim=2).flatten()  # ≈ each unit's σ, to ± σ/√8000 ≤ 0.017
    bound, low, high = NOISE.mean_bound, NOISE.std_min, NOISE.std_max
    # μ ~ U(−0.5, 0.5): mean 0, variance 1/12; σ ~ U(0.5, 1.5): mean 1, variance 1/12; each to ± 4 standard errors
    units = len(unit_means)
    assert unit_means.abs().max() < bound + 0.1
    assert abs(unit_means.mean()) < 4 * bound / math.sqrt(3 * units)
    assert unit_means.var() == pytest.approx(bound**2 / 3, rel=0.15)
    assert low - 0.08 < unit_stds.min() and unit_stds.max() < high + 0.08
    assert unit_stds.mean() == pytest.approx((low + high) / 2, abs=4 * (high - low) / math.sqrt(12 * units))
    assert unit_stds.var() == pytest.approx((high - low) ** 2 / 12, rel=0.15)
    # within a unit, N(μ, σ²): standardised, the examples' kurtosis is a Gaussian's 3 (not a uniform's 1.8)
    standardised = (noise - noise.mean(dim=2, keepdim=True)) / noise.std(dim=2, keepdim=True)
    assert standardised.pow(4).mean() == pytest.approx(3.0, abs=0.1)


def test_every_forward_of_a_step_sees_the_same_noise_and_a_redraw_brings_new_noise(model_config):
    model = build_model(model_config, "noisy_bn", [0, 1], CPU, noise=NOISE).train()
    images = _images(20)
    model.redraw_noise(20)
    first, second = model.last_hidden_inputs(images), model.last_hidden_inputs(images)
    assert torch.equal(first, second)
    model.redraw_noise(20)
    third = model.last_hidden_inputs(images)
    assert (third - first).abs().mean() > 0.3  # a new noise of σ ≥ 0.5 per unit, not a rounding difference


def test_the_noise_is_bns_output_plus_the_held_noise(model_config):
    noisy = build_model(model_config, "noisy_bn", [4], CPU, noise=NOISE).train()
    bn = build_model(model_config, "bn", [4], CPU).train()
    noisy.redraw_noise(30)
    images = _images(30)
    z = noisy.hidden[0](noisy._grouped_input(images))
    torch.testing.assert_close(noisy.norms[0](z), bn.norms[0](z) + noisy.norms[0].noise, rtol=0, atol=0)


def test_a_training_forward_without_this_steps_noise_is_refused(model_config):
    model = build_model(model_config, "noisy_bn", [0], CPU, noise=NOISE).train()
    with pytest.raises(ValueError, match=r"needs this step's noise of that shape .* holds None"):
        model(_images(20))
    model.redraw_noise(20)
    with pytest.raises(ValueError, match=r"output \(1, 10, 100\) .* holds \(1, 20, 100\)"):
        model(_images(10))


def test_inference_and_algorithm_2_see_no_noise(model_config):
    noisy = build_model(model_config, "noisy_bn", [2, 3], CPU, noise=NOISE)
    bn = build_model(model_config, "bn", [2, 3], CPU)
    noisy.redraw_noise(25)
    batches = [_images(25, seed) for seed in range(3)]
    for model in (noisy, bn):
        with population_statistics(model):
            for batch in batches:
                model.features(batch)
    assert not noisy.training  # the pass leaves it in eval mode, as BN's
    for name, value in bn.state_dict().items():
        assert torch.equal(noisy.state_dict()[name], value), name  # the population statistics of the noise-free net
    images = _images(7, seed=9)
    assert torch.equal(noisy(images), bn(images))


def test_a_members_noise_depends_on_its_seed_alone_on_a_stream_apart_from_its_init():
    together = NoiseDraws([5, 6, 5], NOISE).draw(LAYERS, 10, UNITS)
    alone = NoiseDraws([6], NOISE).draw(LAYERS, 10, UNITS)
    assert torch.equal(together[:, 1], alone[:, 0])
    assert torch.equal(together[:, 0], together[:, 2])  # one seed, one noise, at any learning rate or init
    assert not torch.equal(together[:, 0], together[:, 1])
    assert noise_seed(5) not in (5, 6) and noise_seed(5) != noise_seed(6)
    # the init draws come from torch.Generator().manual_seed(seed): the noise's generator is another one
    init_stream = torch.Generator().manual_seed(5)
    assert not torch.equal(torch.rand(LAYERS, 1, UNITS, generator=init_stream), _first_uniforms(5))


def _first_uniforms(seed: int) -> torch.Tensor:
    return torch.rand(LAYERS, 1, UNITS, generator=torch.Generator().manual_seed(noise_seed(seed)))


def test_noise_generators_restored_from_a_state_continue_with_the_same_draws():
    draws = NoiseDraws([1, 2], NOISE)
    draws.draw(LAYERS, 10, UNITS)
    saved = draws.state_dict()
    expected = draws.draw(LAYERS, 10, UNITS)
    restored = NoiseDraws([8, 9], NOISE)
    restored.load_state_dict(saved)
    assert torch.equal(restored.draw(LAYERS, 10, UNITS), expected)
    with pytest.raises(ValueError, match=r"noise generators of 2 members, expected 3"):
        NoiseDraws([1, 2, 3], NOISE).load_state_dict(saved)


def test_the_noisy_layers_gradient_is_plain_autograds_of_bn_plus_noise():
    generator = torch.Generator().manual_seed(11)
    members, batch, features = 2, 9, 4
    layer = NoisyBatchNorm(features, eps=1e-5, members=members).double()
    with torch.no_grad():
        layer.weight.copy_(torch.rand(members, features, generator=generator, dtype=torch.float64) + 0.5)
        layer.bias.copy_(torch.randn(members, features, generator=generator, dtype=torch.float64))
    layer.noise = torch.randn(members, batch, features, generator=generator, dtype=torch.float64) * 1.3 + 0.4
    x = torch.randn(members, batch, features, generator=generator, dtype=torch.float64).requires_grad_()
    upstream = torch.randn(members, batch, features, generator=generator, dtype=torch.float64)
    layer(x).backward(upstream)
    # the same function written in plain differentiable operations, its gradient left to autograd
    x_plain = x.detach().clone().requires_grad_()
    gamma, beta = layer.weight.detach().clone().requires_grad_(), layer.bias.detach().clone().requires_grad_()
    mean, var = x_plain.mean(dim=1, keepdim=True), x_plain.var(dim=1, unbiased=False, keepdim=True)
    plain = gamma.unsqueeze(1) * (x_plain - mean) / torch.sqrt(var + 1e-5) + beta.unsqueeze(1) + layer.noise
    plain.backward(upstream)
    for name, actual, expected in (
        ("x", x.grad, x_plain.grad),
        ("gamma", layer.weight.grad, gamma.grad),
        ("beta", layer.bias.grad, beta.grad),
    ):
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12, msg=name)
    assert torch.autograd.gradcheck(layer, (x.detach().clone().requires_grad_(),))


def test_noise_needs_bn_and_noisy_bn_needs_its_distribution(model_config):
    with pytest.raises(ValueError, match=r"noise follows BN"):
        MLP(1, batch_norm=False, noise=NOISE)
    with pytest.raises(ValueError, match=r"noisy_bn needs its noise distribution"):
        build_model(model_config, "noisy_bn", [0], CPU)
    with pytest.raises(RuntimeError, match=r"this net has no noise"):
        build_model(model_config, "bn", [0], CPU).redraw_noise(10)
