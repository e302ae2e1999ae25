"""A trained member as a plain PyTorch module: the engine's predictions, torch.nn only, loadable without this code."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from src.engine.batches import BatchOrder, gather
from src.engine.network import MLP
from src.engine.scoring import score_members
from src.tracking.export import plain_network
from tests import synthetic

MEMBERS = 3


def _trained(batch_norm: bool) -> tuple[MLP, torch.Tensor]:
    """A few SGD steps of a 3-member MLP on synthetic data, BN's statistics then set as after training."""
    torch.manual_seed(0)
    train = synthetic.split(600, seed=1)
    model = MLP(MEMBERS, batch_norm, seeds=[0, 1, 2], init_std=[0.1, 0.3, 1.0])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    order = BatchOrder(len(train.labels), 60, data_seeds=[0], device=torch.device("cpu"))
    for _ in range(30):
        images, labels = gather(train, order.next())
        logits = model(images[0])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels[0].repeat(MEMBERS))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if batch_norm:  # moving averages far from their initial 0 and 1, so a wrong copy would show
        for norm in model.norms:
            norm.running_mean.add_(torch.randn_like(norm.running_mean))
            norm.running_var.mul_(torch.rand_like(norm.running_var) + 0.5)
    return model.eval(), synthetic.split(500, seed=2).images


@pytest.mark.parametrize("batch_norm", [False, True], ids=["vanilla", "bn"])
def test_each_plain_network_computes_what_its_engine_member_computes(batch_norm):
    model, images = _trained(batch_norm)
    with torch.no_grad():
        engine_logits = model(images)  # (members, examples, classes), BN under its running statistics
    for member in range(MEMBERS):
        network = plain_network(model, member)
        with torch.no_grad():
            logits = network(images)
        torch.testing.assert_close(logits, engine_logits[member], rtol=1e-5, atol=1e-5)
        assert torch.equal(logits.argmax(-1), engine_logits[member].argmax(-1))
    assert not torch.equal(plain_network(model, 0)[0].weight, plain_network(model, 1)[0].weight)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["vanilla", "bn"])
def test_a_plain_network_is_built_from_torch_nn_alone_in_eval_mode(batch_norm):
    model, _ = _trained(batch_norm)
    network = plain_network(model, 1)
    kinds = [type(layer) for layer in network]
    hidden = [nn.Linear, nn.BatchNorm1d, nn.Sigmoid] if batch_norm else [nn.Linear, nn.Sigmoid]
    assert kinds == hidden * 3 + [nn.Linear]
    assert all(type(module).__module__.startswith("torch.nn.") for module in network.modules())
    assert not network.training
    if batch_norm:
        assert network[0].bias is None, "BN's β replaces the bias (Section 3.2)"
        torch.testing.assert_close(network[1].running_var, model.norms[0].running_var[1])


def test_the_copy_is_detached_from_the_engine():
    model, _ = _trained(batch_norm=True)
    network = plain_network(model, 0)
    before = network[0].weight.clone()
    with torch.no_grad():
        model.hidden[0].weight.add_(1.0)
        model.norms[0].running_mean.add_(1.0)
    assert torch.equal(network[0].weight, before)
    torch.testing.assert_close(network[1].running_mean, plain_network(model, 0)[1].running_mean - 1.0)


def test_a_saved_plain_network_loads_and_predicts_in_a_python_without_this_project(tmp_path):
    model, images = _trained(batch_norm=True)
    network = plain_network(model, 2)
    torch.save(network, tmp_path / "net.pt")
    torch.save(images, tmp_path / "images.pt")
    with torch.no_grad():
        torch.save(network(images).argmax(-1), tmp_path / "expected.pt")
    # -I: isolated mode, neither the repository nor the current directory is importable
    script = (
        "import sys, torch; sys.modules.pop('src', None); "
        "net = torch.load('net.pt', weights_only=False); "
        "assert all(not name.startswith('src') for name in sys.modules), 'project code was imported'; "
        "assert torch.equal(net(torch.load('images.pt')).argmax(-1), torch.load('expected.pt')); print('ok')"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "ok"


def test_member_must_exist():
    model, _ = _trained(batch_norm=False)
    with pytest.raises(IndexError, match=r"member must be in 0\.\.2, got 3"):
        plain_network(model, 3)


def test_scores_agree_on_a_whole_split():
    model, _ = _trained(batch_norm=True)
    split = synthetic.split(400, seed=3)
    accuracy, _ = score_members(model, split)
    for member in range(MEMBERS):
        with torch.no_grad():
            predicted = plain_network(model, member)(split.images).argmax(-1)
        assert (predicted == split.labels).float().mean().item() == pytest.approx(accuracy[member].item(), abs=1e-9)
