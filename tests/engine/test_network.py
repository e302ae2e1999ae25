"""The paper's MNIST net, K members at once: the right shapes, members independent, scored in chunks, saved and loaded
safely."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from src.config import ModelConfig, NoisyBNConfig
from src.engine.batchnorm import BatchNorm
from src.engine.network import MLP, Architecture, build_model, load_member, member_labels, member_losses
from src.errors import StudyError

IN, HIDDEN, LAYERS, CLASSES = 784, 100, 3, 10

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_config():
    return ModelConfig(
        hidden_layers=LAYERS,
        hidden_units=HIDDEN,
        init_std=0.1,
        bn_eps=1e-5,
        bn_momentum=0.1,
        population_batches=10,
    )


def _images(*shape, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < 0.3).to(dtype)  # binary, like the paper's MNIST


def _labels(*shape, seed=0):
    return torch.randint(0, CLASSES, shape, generator=torch.Generator().manual_seed(seed))


def _trained(model, steps=3, lr=0.5):
    """A few SGD steps, so BN's γ, β and running statistics are no longer at their initial values."""
    model.train()
    for step in range(steps):
        loss = member_losses(model(_images(12, IN, seed=step, dtype=torch.float32)), _labels(12, seed=step)).sum()
        gradients = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for parameter, gradient in zip(model.parameters(), gradients, strict=True):
                parameter.sub_(lr * gradient)
    return model


def test_the_vanilla_net_has_the_papers_parameter_count():
    # 784 → 100 → 100 → 100 → 10, every layer with weights and biases
    expected = IN * HIDDEN + HIDDEN + 2 * (HIDDEN * HIDDEN + HIDDEN) + HIDDEN * CLASSES + CLASSES
    assert expected == 99_710
    assert sum(p.numel() for p in MLP(1, batch_norm=False).parameters()) == expected


def test_the_bn_net_trades_each_hidden_bias_for_gamma_and_beta():
    # hidden layers without bias, γ and β per hidden unit, the output layer as in the vanilla net
    expected = IN * HIDDEN + 2 * HIDDEN * HIDDEN + LAYERS * 2 * HIDDEN + HIDDEN * CLASSES + CLASSES
    assert expected == 100_010
    model = MLP(1, batch_norm=True)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert sum(isinstance(module, BatchNorm) for module in model.modules()) == LAYERS


@pytest.mark.parametrize("batch_norm", [False, True])
def test_every_parameter_carries_the_members_dimension_first(batch_norm):
    one, five = MLP(1, batch_norm), MLP(5, batch_norm)
    assert five.hidden[0].weight.shape == (5, HIDDEN, IN) and five.output.bias.shape == (5, 1, CLASSES)
    for (name, p1), (_, p5) in zip(one.named_parameters(), five.named_parameters(), strict=True):
        assert p5.shape == (5, *p1.shape[1:]), name
    assert sum(p.numel() for p in five.parameters()) == 5 * sum(p.numel() for p in one.parameters())


def test_weights_are_small_gaussians_and_biases_zero():
    model = MLP(2, batch_norm=False, init_std=0.1)
    weight = model.hidden[0].weight
    assert abs(weight.mean().item()) < 0.005 and abs(weight.std().item() - 0.1) < 0.005
    assert all(torch.count_nonzero(affine.bias) == 0 for affine in (*model.hidden, model.output))


def test_the_shared_first_layer_multiplies_one_matrix_holding_every_member_side_by_side():
    model = MLP(4, batch_norm=True).double()  # the layout survives a dtype (or device) change
    weight = model.hidden[0].weight
    side_by_side = weight.view(4 * HIDDEN, IN)  # raises unless the layout makes this a view: no copy per forward
    assert side_by_side.data_ptr() == weight.data_ptr()
    torch.testing.assert_close(side_by_side[2 * HIDDEN : 3 * HIDDEN], weight[2], rtol=0, atol=0)


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_a_shared_input_equals_the_same_input_given_to_every_member(batch_norm, training):
    shared = _trained(MLP(3, batch_norm)).double().train(training)
    per_member = MLP(3, batch_norm).double()
    per_member.load_state_dict(shared.state_dict())
    per_member.train(training)
    x, labels = _images(10, IN), _labels(10)
    logits, expected_logits = shared(x), per_member(x.expand(3, 10, IN))
    torch.testing.assert_close(logits, expected_logits, rtol=1e-12, atol=1e-12)
    gradients = torch.autograd.grad(member_losses(logits, labels).sum(), list(shared.parameters()))
    expected = torch.autograd.grad(member_losses(expected_logits, labels).sum(), list(per_member.parameters()))
    for gradient, reference in zip(gradients, expected, strict=True):
        torch.testing.assert_close(gradient, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        shared.last_hidden_inputs(x), per_member.last_hidden_inputs(x.expand(3, 10, IN)), rtol=1e-12, atol=1e-12
    )
    if training and batch_norm:
        torch.testing.assert_close(shared.norms[2].running_var, per_member.norms[2].running_var)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_member_m_of_a_k_member_model_is_the_one_member_model_built_with_its_seed(batch_norm):
    seeds = [11, 7, 3]
    many = MLP(3, batch_norm, seeds=seeds)
    one = MLP(1, batch_norm, seeds=[7])
    assert many.member_state_dict(1).keys() == one.state_dict().keys()
    for name, value in one.state_dict().items():
        torch.testing.assert_close(many.member_state_dict(1)[name], value, rtol=0, atol=0, msg=name)
    x = _images(3, 20, IN, seed=1, dtype=torch.float32)
    torch.testing.assert_close(many(x)[1:2], one(x[1:2]), rtol=1e-6, atol=1e-6)
    assert not torch.equal(many.member_state_dict(0)["output.weight"], one.state_dict()["output.weight"])


def _affine_weights(model: MLP) -> dict[str, torch.Tensor]:
    return {
        name: value for name, value in model.state_dict().items() if name.endswith("weight") and "norms" not in name
    }


def test_members_of_one_seed_start_from_the_same_draws_scaled_by_their_own_init_std():
    model = MLP(4, batch_norm=False, seeds=[3, 3, 8, 3], init_std=[1.0, 0.1, 1.0, 0.05])
    unit = MLP(1, batch_norm=False, seeds=[3], init_std=1.0)
    weights = _affine_weights(model)
    assert len(weights) == LAYERS + 1
    for name, weight in weights.items():
        torch.testing.assert_close(weight[0], 10 * weight[1], rtol=1e-6, atol=0, msg=name)
        torch.testing.assert_close(weight[0], 20 * weight[3], rtol=1e-6, atol=0, msg=name)
        assert torch.equal(weight[0], unit.state_dict()[name][0]), name  # the draws depend on the seed alone
        assert not torch.allclose(weight[2], weight[0]), name  # another seed, other draws
    assert abs(weights["hidden.0.weight"][1].std().item() - 0.1) < 0.005
    assert abs(weights["hidden.0.weight"][3].std().item() - 0.05) < 0.0025


def test_both_variants_start_from_the_same_weights_for_the_same_seed_and_init_std():
    vanilla = MLP(2, batch_norm=False, seeds=[5, 6], init_std=[0.1, 0.3])
    bn = MLP(2, batch_norm=True, seeds=[5, 6], init_std=[0.1, 0.3])
    for name, weight in _affine_weights(vanilla).items():
        assert torch.equal(weight, bn.state_dict()[name]), name


def test_noisy_bn_member_s_starts_from_bn_member_ss_weights_and_state(model_config):
    noise = NoisyBNConfig(mean_bound=0.5, std_min=0.5, std_max=1.5)
    bn = build_model(model_config, "bn", [5, 6, 5], "cpu", init_stds=[0.1, 0.3, 1.0])
    noisy = build_model(model_config, "noisy_bn", [5, 6, 5], "cpu", init_stds=[0.1, 0.3, 1.0], noise=noise)
    assert noisy.noisy and not bn.noisy
    assert noisy.state_dict().keys() == bn.state_dict().keys()
    for name, value in bn.state_dict().items():
        assert torch.equal(noisy.state_dict()[name], value), name


@pytest.mark.parametrize("init_std", [[0.1], [0.1, 0.2, 0.3]])
def test_an_init_std_per_member_must_match_the_members(init_std):
    with pytest.raises(ValueError, match=r"one seed and init std per member, got members=2"):
        MLP(2, batch_norm=False, init_std=init_std)


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_a_grouped_input_gives_each_member_its_groups_batch(batch_norm, training, groups):
    seeds = [11, 7, 3, 5]
    model = _trained(MLP(4, batch_norm, seeds=seeds)).double().train(training)
    x = _images(groups, 9, IN, seed=2)
    logits, inputs = model(x), model.last_hidden_inputs(x)
    assert logits.shape == (4, 9, CLASSES)
    for member in range(4):
        one = MLP(1, batch_norm).double()
        one.load_state_dict(model.member_state_dict(member))
        one.train(training)
        batch = x[member // (4 // groups)]  # group g holds members g·K/G … (g+1)·K/G − 1
        torch.testing.assert_close(logits[member], one(batch)[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(inputs[member], one.last_hidden_inputs(batch)[0], rtol=1e-10, atol=1e-12)
    if groups > 1:
        assert not torch.allclose(logits[0], logits[-1])  # different groups, different batches


@pytest.mark.parametrize("batch_norm", [False, True])
def test_one_group_is_the_shared_input(batch_norm):
    model = _trained(MLP(2, batch_norm)).double()
    x = _images(9, IN, seed=3)
    assert torch.equal(model(x.unsqueeze(0)), model(x))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_members_do_not_interact(batch_norm):
    model = MLP(3, batch_norm).double()
    x = _images(3, 8, IN)
    before = model(x)
    poisoned = x.clone()
    poisoned[1] = float("nan")
    after = model(poisoned)
    assert torch.isnan(after[1]).all()
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]], rtol=0, atol=0)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_last_hidden_inputs_are_what_the_last_sigmoid_receives(batch_norm):
    model = _trained(MLP(2, batch_norm)).double().eval()
    x = _images(6, IN)
    inputs = model.last_hidden_inputs(x)
    assert inputs.shape == (2, 6, HIDDEN)
    torch.testing.assert_close(model.output(torch.sigmoid(inputs)), model(x), rtol=1e-12, atol=1e-12)
    h = x.unsqueeze(0)  # a layer takes (G, B, in): one group
    for index, affine in enumerate(model.hidden):
        pre_activation = model.norms[index](affine(h)) if batch_norm else affine(h)
        h = torch.sigmoid(pre_activation)
    torch.testing.assert_close(inputs, pre_activation, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(5, 783), (2, 5, IN), (4, 5, IN), (3, 5, 783), (5,), (1, 3, 5, IN)])
def test_input_of_the_wrong_shape_is_refused(shape):
    expected = r"expected input \(batch, 784\) or \(groups, batch, 784\) with groups dividing 3 members, got shape"
    with pytest.raises(ValueError, match=expected):
        MLP(3, batch_norm=False)(torch.zeros(shape))


def test_member_labels_give_each_member_its_groups_labels():
    shared = torch.tensor([0, 1, 2])
    assert member_labels(shared, 4).tolist() == [[0, 1, 2]] * 4
    per_group = torch.tensor([[0, 1, 2], [3, 4, 5]])
    assert member_labels(per_group, 4).tolist() == [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]]
    assert member_labels(per_group, 2).tolist() == per_group.tolist()


@pytest.mark.parametrize("groups", [None, 1, 2, 4], ids=["shared", "1-group", "2-groups", "own"])
def test_member_losses_are_each_members_mean_cross_entropy(groups):
    logits = torch.randn(4, 9, CLASSES, generator=torch.Generator().manual_seed(0))
    labels = _labels(9) if groups is None else _labels(groups, 9)
    expected = torch.stack(
        [F.cross_entropy(logits[m], labels if groups is None else labels[m // (4 // groups)]) for m in range(4)]
    )
    torch.testing.assert_close(member_losses(logits, labels), expected)


def test_build_model_follows_the_model_config(model_config):
    model = build_model(model_config, "bn", seeds=[4, 5], device="cpu")
    assert model.members == 2 and len(model.norms) == LAYERS and model.norms[0].eps == model_config.bn_eps
    reference = MLP(2, batch_norm=True, seeds=[4, 5], init_std=model_config.init_std)
    assert torch.equal(model.hidden[0].weight, reference.hidden[0].weight)
    scaled = build_model(model_config, "bn", seeds=[4, 4], device="cpu", init_stds=[0.5, model_config.init_std])
    assert torch.equal(scaled.hidden[0].weight[1], model.hidden[0].weight[0])
    torch.testing.assert_close(scaled.hidden[0].weight[0], 5 * model.hidden[0].weight[0], rtol=1e-6, atol=0)
    assert not build_model(model_config, "vanilla", seeds=[4], device="cpu").batch_norm
    with pytest.raises(ValueError, match=r"unknown variant 'bnn': expected one of vanilla, bn"):
        build_model(model_config, "bnn", seeds=[0], device="cpu")


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_a_saved_member_loads_back_with_identical_outputs(tmp_path, model_config, variant):
    x = _images(7, IN, dtype=torch.float32)
    one = _trained(build_model(model_config, variant, seeds=[5], device="cpu")).eval()
    torch.save(one.member_state_dict(0), tmp_path / "one.pt")
    loaded = load_member(tmp_path / "one.pt", model_config, variant, "cpu")
    assert not loaded.training
    torch.testing.assert_close(loaded(x), one(x), rtol=0, atol=0)

    many = _trained(build_model(model_config, variant, seeds=[0, 1, 2], device="cpu")).eval()
    torch.save(many.member_state_dict(1), tmp_path / "seed_1.pt")
    loaded = load_member(tmp_path / "seed_1.pt", model_config, variant, "cpu")
    # the same numbers; only the GEMM's blocking (one member vs three side by side) may round differently
    torch.testing.assert_close(loaded(x), many(x)[1:2], rtol=1e-6, atol=1e-6)


def test_a_pickle_that_is_not_a_state_dict_is_refused_without_running_it(tmp_path, model_config):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(marker), protocol=2))  # torch.save's protocol
    with pytest.raises(StudyError, match=rf"{path}: not a loadable model state dict"):
        load_member(path, model_config, "bn", "cpu")
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the file does run code when loaded without weights_only
    assert marker.exists()


def test_a_file_that_is_not_this_variants_state_dict_is_refused(tmp_path, model_config):
    vanilla = tmp_path / "vanilla.pt"
    torch.save(MLP(1, batch_norm=False).state_dict(), vanilla)
    with pytest.raises(StudyError, match=rf"{vanilla}: not a bn model state dict \(Missing key\(s\) .*norms"):
        load_member(vanilla, model_config, "bn", "cpu")

    narrow = tmp_path / "narrow.pt"
    torch.save(MLP(1, batch_norm=False, architecture=Architecture(hidden_units=50)).state_dict(), narrow)
    mismatch = rf"{narrow}: not a vanilla model state dict \(size mismatch for hidden.0.weight: .*\[1, 50, 784\]"
    with pytest.raises(StudyError, match=mismatch):
        load_member(narrow, model_config, "vanilla", "cpu")

    not_a_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], not_a_dict)
    with pytest.raises(
        StudyError, match=rf"{not_a_dict}: not a vanilla model state dict \(.*dict-like, got <class 'list'>"
    ):
        load_member(not_a_dict, model_config, "vanilla", "cpu")

    with pytest.raises(StudyError, match="no such model file"):
        load_member(tmp_path / "absent.pt", model_config, "vanilla", "cpu")


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))
