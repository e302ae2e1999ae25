"""The thesis's probes: each measure equals a plain per-member computation (torch.func on F.linear, F.batch_norm and
F.cross_entropy, one member at a time) to rtol 1e-10 in float64, and a probe leaves training bit for bit as it was.

Members see one shared batch or each its own; vanilla, BN and noisy BN (its step's noise held); the step with momentum
reads the velocities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, grad_and_value

from src.config import ModelConfig, NoisyBNConfig
from src.engine.network import MLP, MODEL_VARIANTS, Architecture, build_model, member_losses
from src.engine.schedule import Schedule
from src.engine.sgd import MemberSGD
from src.engine.trainer import Trainer, TrainingData
from src.thesis.probes import STEP_MULTIPLIERS, StepRule, effective_learning_rates, measure, probe_steps
from tests import synthetic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MEMBERS, BATCH, LAYERS = 2, 8, 3
TINY = Architecture(in_features=6, hidden_layers=LAYERS, hidden_units=5, classes=4)
LEARNING_RATES = torch.tensor([0.7, 2.3], dtype=torch.float64)
MOMENTUM = 0.9
NOISE = NoisyBNConfig(mean_bound=0.5, std_min=0.5, std_max=1.5)
MODEL_CONFIG = ModelConfig(
    hidden_layers=3, hidden_units=30, init_std=0.1, bn_eps=1e-5, bn_momentum=0.1, population_batches=3
)  # the short run's net
CLOSE = {"rtol": 1e-10, "atol": 1e-13}  # float64: the engine's BN and grouped GEMMs round differently from F's
VARIANT = pytest.mark.parametrize(
    ("batch_norm", "noisy"), [(False, False), (True, False), (True, True)], ids=["vanilla", "bn", "noisy_bn"]
)
INPUT = pytest.mark.parametrize("own_batches", [False, True], ids=["shared-batch", "own-batches"])


def _tiny(batch_norm: bool, noisy: bool = False) -> MLP:
    model = MLP(MEMBERS, batch_norm, seeds=[3, 4], init_std=0.8, architecture=TINY, noise=NOISE if noisy else None)
    model = model.double()
    if noisy:
        model.redraw_noise(BATCH)  # this step's ε, held by the BN layers: every probe pass sees the same
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():  # γ, β and biases away from 1 and 0, so that a step changes them visibly
        for name, parameter in model.named_parameters():
            if not name.endswith("weight") or name.startswith("norms"):
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return model


def _batch(own_batches: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    shape = (MEMBERS, BATCH) if own_batches else (BATCH,)
    images = torch.rand(*shape, TINY.in_features, generator=generator, dtype=torch.float64)
    return images, torch.randint(0, TINY.classes, shape, generator=generator)


def _velocities(model: MLP) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return {
        name: 0.2 * torch.randn(p.shape, generator=generator, dtype=p.dtype) for name, p in model.named_parameters()
    }


# --- the plain computation, one member at a time ---------------------------------------------------------------


def _member(tensors: dict[str, torch.Tensor], member: int) -> dict[str, torch.Tensor]:
    """Member `member`'s slice of each (K, …) tensor, as a plain layer holds it (biases flat)."""
    return {
        name: (tensor[member].flatten() if name.endswith("bias") else tensor[member]).detach().clone()
        for name, tensor in tensors.items()
    }


def _plain_loss(parameters: dict[str, torch.Tensor], images, labels, noises=None) -> torch.Tensor:
    """One member's mean cross-entropy: sigmoid(F.batch_norm(F.linear(h)) + ε) per hidden layer, batch statistics,
    ε the layer's held noise (noisy BN) or none."""
    h = images
    for layer in range(LAYERS):
        z = F.linear(h, parameters[f"hidden.{layer}.weight"], parameters.get(f"hidden.{layer}.bias"))
        if f"norms.{layer}.weight" in parameters:
            gamma, beta = parameters[f"norms.{layer}.weight"], parameters[f"norms.{layer}.bias"]
            z = F.batch_norm(z, None, None, gamma, beta, training=True, eps=TINY.bn_eps)
        if noises is not None:
            z = z + noises[layer]
        h = torch.sigmoid(z)
    return F.cross_entropy(F.linear(h, parameters["output.weight"], parameters["output.bias"]), labels)


def _plain_layer(name: str) -> int:
    kind, _, rest = name.partition(".")
    return int(rest.split(".")[0]) if kind in ("hidden", "norms") else LAYERS


def _member_batch(model, images, labels, member):
    """Member `member`'s images, labels and held noise per layer (None unless noisy BN)."""
    noises = [norm.noise[member] for norm in model.norms] if model.noisy else None
    return (images[member], labels[member], noises) if images.dim() == 3 else (images, labels, noises)


def _plain_covariate_shift(model, images, labels, momentum, velocities):
    distances = torch.zeros(MEMBERS, LAYERS, dtype=torch.float64)
    cosines = torch.zeros(MEMBERS, LAYERS, dtype=torch.float64)
    for member in range(MEMBERS):
        x, y, noises = _member_batch(model, images, labels, member)
        theta = _member(dict(model.named_parameters()), member)
        v = _member(velocities, member) if momentum else dict.fromkeys(theta, 0.0)
        g = grad(_plain_loss)(theta, x, y, noises)
        stepped = {name: theta[name] - LEARNING_RATES[member] * (momentum * v[name] + g[name]) for name in theta}
        for layer in range(LAYERS):
            weight = f"hidden.{layer}.weight"
            shifted = {name: stepped[name] if _plain_layer(name) < layer else theta[name] for name in theta}
            g_shifted = grad(_plain_loss)(shifted, x, y, noises)[weight]
            distances[member, layer] = torch.linalg.norm(g[weight] - g_shifted)  # Frobenius
            cosines[member, layer] = (g[weight] * g_shifted).sum() / (g[weight].norm() * g_shifted.norm())
    return distances, cosines


def _plain_landscape(model, images, labels):
    found = {"variation": [], "predictiveness": [], "beta": []}
    for member in range(MEMBERS):
        x, y, noises = _member_batch(model, images, labels, member)
        theta = _member(dict(model.named_parameters()), member)
        g = grad(_plain_loss)(theta, x, y, noises)
        g_norm = math.sqrt(sum(float(t.square().sum()) for t in g.values()))
        losses, changes, betas = [], [], []
        for multiplier in STEP_MULTIPLIERS:
            eta = multiplier * float(LEARNING_RATES[member])
            moved_g, loss = grad_and_value(_plain_loss)({n: theta[n] - eta * g[n] for n in theta}, x, y, noises)
            change = math.sqrt(sum(float((moved_g[n] - g[n]).square().sum()) for n in g))
            losses.append(float(loss))
            changes.append(change)
            betas.append(change / (eta * g_norm))
        found["variation"].append(max(losses) - min(losses))
        found["predictiveness"].append(max(changes))
        found["beta"].append(max(betas))
    return {name: torch.tensor(values, dtype=torch.float64) for name, values in found.items()}


# --- each measure against it -----------------------------------------------------------------------------------


@VARIANT
@INPUT
@pytest.mark.parametrize("momentum", [0.0, MOMENTUM], ids=["plain", "momentum"])
def test_covariate_shift_is_definition_2_1_with_the_step_memberSGD_takes(batch_norm, noisy, own_batches, momentum):
    model = _tiny(batch_norm, noisy)
    images, labels = _batch(own_batches)
    velocities = _velocities(model) if momentum else {}
    shift = measure(model, images, labels, StepRule(LEARNING_RATES, momentum, velocities)).covariate_shift
    distances, cosines = _plain_covariate_shift(model, images, labels, momentum, velocities)
    torch.testing.assert_close(shift.distance, distances, **CLOSE)
    torch.testing.assert_close(shift.cosine, cosines, **CLOSE)
    # nothing lies below the first layer, and the step does move the gradients of the ones above it
    assert torch.all(shift.distance[:, 0] == 0) and torch.all(shift.distance[:, 1:] > 1e-6)


def test_the_velocities_move_the_layers_below_as_momentum_would():
    model = _tiny(batch_norm=True)
    images, labels = _batch(own_batches=False)
    plain = measure(model, images, labels, StepRule(LEARNING_RATES)).covariate_shift
    heavy = measure(model, images, labels, StepRule(LEARNING_RATES, MOMENTUM, _velocities(model))).covariate_shift
    assert not torch.allclose(plain.distance[:, 1:], heavy.distance[:, 1:], rtol=1e-3)


@VARIANT
@INPUT
def test_the_landscape_along_the_step_is_section_3_1s_on_the_stated_grid(batch_norm, noisy, own_batches):
    model = _tiny(batch_norm, noisy)
    images, labels = _batch(own_batches)
    landscape = measure(model, images, labels, StepRule(LEARNING_RATES)).landscape
    plain = _plain_landscape(model, images, labels)
    assert landscape.multipliers == STEP_MULTIPLIERS == (0.5, 1.0, 2.0, 4.0)
    torch.testing.assert_close(landscape.loss_variation, plain["variation"], **CLOSE)
    torch.testing.assert_close(landscape.gradient_predictiveness, plain["predictiveness"], **CLOSE)
    torch.testing.assert_close(landscape.effective_beta, plain["beta"], **CLOSE)


def test_a_member_that_does_not_step_has_no_shift_and_no_beta():
    model = _tiny(batch_norm=True)
    images, labels = _batch(own_batches=False)
    probes = measure(model, images, labels, StepRule(torch.tensor([0.0, 1.0], dtype=torch.float64)))
    assert torch.all(probes.covariate_shift.distance[0] == 0) and torch.all(probes.covariate_shift.distance[1, 1:] > 0)
    assert probes.landscape.loss_variation[0] == 0 and probes.landscape.gradient_predictiveness[0] == 0
    assert math.isnan(probes.landscape.effective_beta[0]) and math.isfinite(probes.landscape.effective_beta[1])


@VARIANT
def test_the_effective_learning_rate_is_eta_over_the_squared_weight_norm_per_layer(batch_norm, noisy):
    model = _tiny(batch_norm, noisy)
    rates = effective_learning_rates(model, LEARNING_RATES)
    for member in range(MEMBERS):
        for layer in range(LAYERS):
            norm = torch.linalg.norm(model.hidden[layer].weight[member].detach())
            torch.testing.assert_close(rates.weight_norm[member, layer], norm, **CLOSE)
            torch.testing.assert_close(rates.rate[member, layer], LEARNING_RATES[member] / norm**2, **CLOSE)
    images, labels = _batch(own_batches=False)
    measured = measure(model, images, labels, StepRule(LEARNING_RATES)).effective_rates
    assert torch.equal(measured.weight_norm, rates.weight_norm) and torch.equal(measured.rate, rates.rate)


# --- probes are pure -------------------------------------------------------------------------------------------


def _snapshot(model: MLP, sgd: MemberSGD) -> dict[str, torch.Tensor]:
    grads = {f"grad {name}": p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    noises = {f"noise {layer}": norm.noise.clone() for layer, norm in enumerate(model.norms) if model.noisy}
    velocities = {f"velocity {i}": v.clone() for i, v in enumerate(sgd.velocities)}
    return {**{name: t.clone() for name, t in model.state_dict().items()}, **grads, **velocities, **noises}


@VARIANT
def test_a_probe_inside_the_optimizers_block_changes_nothing_and_restores_the_mode(batch_norm, noisy):
    model = _tiny(batch_norm, noisy)
    images, labels = _batch(own_batches=False)
    sgd = MemberSGD(model, LEARNING_RATES, MOMENTUM)
    with sgd.attached():
        for _ in range(2):  # velocities, running statistics and the small parameters' .grad all set
            sgd.step(member_losses(model(images), labels), live=torch.ones(MEMBERS, dtype=torch.bool))
        model.eval()
        before = _snapshot(model, sgd)
        probes = measure(model, images, labels, StepRule.of(sgd))
        after = _snapshot(model, sgd)
        assert all(layer.descent is sgd for layer in model.hidden)
    assert before.keys() == after.keys() and all(torch.equal(before[name], after[name]) for name in before)
    # γ, β or the hidden biases, and the output bias, had a .grad to keep
    assert sum(name.startswith("grad ") for name in before) == (2 * LAYERS if batch_norm else LAYERS) + 1
    assert not any(module.training for module in model.modules())
    # in eval mode or not, a probe normalises by the batch's statistics
    model.train()
    again = measure(model, images, labels, StepRule.of(sgd))
    assert torch.equal(again.landscape.effective_beta, probes.landscape.effective_beta)


def test_a_short_run_probed_at_its_evaluations_ends_bit_for_bit_as_one_never_probed():
    """The trainer's own loop, momentum on, probes called from inside it while the optimizer is attached."""
    data = TrainingData(synthetic.split(600, seed=0), synthetic.split(200, seed=1))
    schedule = Schedule(
        steps=24,
        batch_size=20,
        eval_steps=(0, 1, 2, 5, 10, 22, 24),
        momentum=MOMENTUM,
        learning_rates=(0.5, 3.0, 1.0, 0.1),
        data_seeds=(0, 1),
        population_batches=3,
    )
    probe_batch = data.train.images[:20], data.train.labels[:20]

    def trained(variant: str, probed: bool) -> dict:
        model = build_model(MODEL_CONFIG, variant, [0, 0, 1, 1], "cpu", noise=NOISE)
        trainer = Trainer(model, data, schedule)

        def probe(_evaluation) -> None:
            probes.append(measure(trainer.model, *probe_batch, StepRule.of(trainer._sgd)))

        probes: list = []
        trainer.run(on_eval=probe if probed else None, progress=False)
        assert len(probes) == (6 if probed else 0)
        return {name: value for name, value in trainer.state_dict().items() if name != "phase_s"}

    for variant in MODEL_VARIANTS:
        plain, probed = trained(variant, probed=False), trained(variant, probed=True)
        assert _flat(plain).keys() == _flat(probed).keys()
        assert [name for name, value in _flat(plain).items() if not _same_bits(value, _flat(probed)[name])] == []


def _same_bits(one: torch.Tensor, other: torch.Tensor) -> bool:
    """Equal bit for bit (a NaN where the run has recorded nothing yet equals the same NaN)."""
    bits = (lambda t: t.contiguous().view(torch.uint8)) if one.is_floating_point() else (lambda t: t)
    return one.dtype == other.dtype and one.shape == other.shape and torch.equal(bits(one), bits(other))


def _flat(state: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a nested state dict, by its path; numbers as tensors, so one comparison serves all."""
    found = {}
    for key, value in state.items() if isinstance(state, dict) else enumerate(state):
        path = f"{prefix}/{key}"
        if isinstance(value, dict | list | tuple):
            found.update(_flat(value, path))
        else:
            found[path] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return found


# --- the step and the probe steps ------------------------------------------------------------------------------


def test_the_step_rule_of_an_optimizer_reads_its_own_velocities_and_stills_frozen_members():
    model = _tiny(batch_norm=True)
    sgd = MemberSGD(model, LEARNING_RATES, MOMENTUM)
    rule = StepRule.of(sgd, live=torch.tensor([True, False]))
    assert rule.velocities["hidden.0.weight"] is sgd.velocities[0]  # the affine weights' come first
    assert rule.velocities["norms.2.bias"] is sgd._velocity_of[id(model.norms[2].bias)]
    assert rule.momentum == MOMENTUM and rule.learning_rates.tolist() == [0.7, 0.0]
    assert StepRule.of(MemberSGD(model, LEARNING_RATES)).velocities == {}


def test_momentum_without_velocities_is_refused():
    with pytest.raises(ValueError, match=r"momentum 0\.9 needs the optimizer's velocities"):
        StepRule(LEARNING_RATES, momentum=0.9)


def test_probe_steps_are_step_0_and_three_a_decade_below_the_last():
    assert probe_steps(50_000) == (0, 1, 2, 5, 10, 22, 46, 100, 220, 460, 1000, 2200, 4600, 10_000, 22_000, 46_000)
    assert probe_steps(5000, per_decade=2) == (0, 1, 3, 10, 32, 100, 320, 1000, 3200)
