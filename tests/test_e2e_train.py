"""On the real MNIST, both networks learn: over 90 % test accuracy within 2,000 steps at params.yaml's rates."""

from __future__ import annotations

import pytest
import torch

from src.config import load_params
from src.data.splits import Split, make_splits
from src.engine.network import build_model
from src.engine.schedule import Schedule
from src.engine.trainer import Trainer, TrainingData

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def real_splits(real_mnist, repo_root):
    params = load_params(repo_root / "params.yaml")
    splits = make_splits(real_mnist, params.data.val_size, params.data.split_seed)
    return {
        name: Split(images=(torch.from_numpy(images) >= 128).float(), labels=torch.from_numpy(labels).long())
        for name, (images, labels) in splits.items()
    }


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_each_variant_passes_90_percent_within_2000_steps(real_splits, repo_root, variant):
    params = load_params(repo_root / "params.yaml")
    learning_rate = {"vanilla": 0.5, "bn": 2.0}[variant]  # rates that train both nets; the tuned ones are higher
    model = build_model(params.model, variant, seeds=[0, 1], device="cpu")
    schedule = Schedule(
        steps=2000,
        batch_size=60,
        eval_steps=(0, 1000, 2000),
        momentum=0.0,
        learning_rates=(learning_rate,) * 2,
        data_seeds=(0, 1),
        population_batches=50,
    )
    result = Trainer(model, TrainingData(real_splits["train"], real_splits["test"]), schedule).run(progress=False)
    final = result.final.accuracy
    assert min(final) > 0.90, f"{variant} at lr={learning_rate}: test accuracy {final} after 2,000 steps"
