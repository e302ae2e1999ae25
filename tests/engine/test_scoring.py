"""Scoring trained members on a whole split, block of members by chunk of examples, the first layer over each
image's active pixels: the same accuracy, loss, predictions and percentiles as the network's own forward pass in
inference mode, whatever the blocks and chunks."""

from __future__ import annotations

import pytest
import torch

from src.config import ModelConfig
from src.data.splits import Split
from src.engine import scoring
from src.engine.network import build_model, member_losses
from src.engine.scoring import predict_members, score_members, sigmoid_input_percentiles
from tests import synthetic
from tests.engine.test_network import _trained


@pytest.fixture
def model_config() -> ModelConfig:
    return ModelConfig(
        hidden_layers=3, hidden_units=12, init_std=0.3, bn_eps=1e-5, bn_momentum=0.1, population_batches=2
    )


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_scoring_in_chunks_gives_the_whole_splits_accuracy_and_mean_loss(model_config, variant, monkeypatch):
    split = synthetic.split(200, seed=1)
    model = build_model(model_config, variant, seeds=[0, 1], device="cpu").train()
    monkeypatch.setattr(scoring, "EXAMPLE_CHUNK", 7)  # 200 examples: 28 full chunks and a remainder of 4
    monkeypatch.setattr(scoring, "MEMBER_BLOCK", 1)
    accuracy, loss = score_members(model, split)
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        logits = model.eval()(split.images)
    expected_accuracy = (logits.argmax(-1) == split.labels).double().mean(dim=1)
    torch.testing.assert_close(accuracy.double(), expected_accuracy, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss, member_losses(logits, split.labels), rtol=1e-5, atol=0)


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_each_members_prediction_is_the_argmax_of_its_inference_mode_logits_whatever_the_chunks(
    model_config, variant, monkeypatch
):
    split = synthetic.split(200, seed=1)
    model = _trained(build_model(model_config, variant, seeds=[0, 1, 2], device="cpu")).train()
    whole = predict_members(model, split)
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        logits = model.eval()(split.images)
    model.train()
    assert whole.dtype == torch.uint8 and whole.shape == (3, 200)
    torch.testing.assert_close(whole, logits.argmax(-1).to(torch.uint8), rtol=0, atol=0)
    monkeypatch.setattr(scoring, "EXAMPLE_CHUNK", 7)  # 28 full chunks and a remainder of 4
    monkeypatch.setattr(scoring, "MEMBER_BLOCK", 2)  # a block of 2 and one of 1
    torch.testing.assert_close(predict_members(model, split), whole, rtol=0, atol=0)
    # the predictions are what the scores count: each member's share right is its accuracy
    accuracy, _ = score_members(model, split)
    torch.testing.assert_close((whole == split.labels).double().mean(dim=1), accuracy.double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_grey_level_images_are_weighted_by_their_pixels(model_config, variant, monkeypatch):
    binary = synthetic.split(60, seed=2)
    grey = Split(
        binary.images * torch.rand(binary.images.shape, generator=torch.Generator().manual_seed(3)), binary.labels
    )
    model = _trained(build_model(model_config, variant, seeds=[0, 1], device="cpu")).double().eval()
    grey = Split(grey.images.double(), grey.labels)
    monkeypatch.setattr(scoring, "EXAMPLE_CHUNK", 25)
    with torch.no_grad():
        logits = model(grey.images)
    accuracy, loss = score_members(model, grey)
    torch.testing.assert_close(loss, member_losses(logits, grey.labels), rtol=1e-12, atol=0)
    assert accuracy.tolist() == (logits.argmax(-1) == grey.labels).double().mean(dim=1).tolist()


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_percentiles_are_those_of_the_last_hidden_layers_sigmoid_inputs(model_config, variant, monkeypatch):
    probe = synthetic.split(40, seed=4).images.double()
    model = _trained(build_model(model_config, variant, seeds=[0, 1, 2], device="cpu")).double().eval()
    monkeypatch.setattr(scoring, "MEMBER_BLOCK", 2)
    levels = (0.15, 0.5, 0.85)
    with torch.no_grad():
        inputs = model.last_hidden_inputs(probe)[..., :5]
    expected = torch.quantile(inputs, torch.tensor(levels, dtype=torch.float64), dim=1)
    torch.testing.assert_close(sigmoid_input_percentiles(model, probe, 5, levels), expected, rtol=1e-12, atol=1e-12)
