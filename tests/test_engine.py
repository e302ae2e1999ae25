"""The engine trains K members at once: reproducibly, each on its own learning rate, isolated from each other."""

from __future__ import annotations

import pytest
import torch

from src.config import load_params
from src.engine import BatchOrder, Schedule, resolve_device, train_members
from src.models import build_model
from tests import synthetic


@pytest.fixture(scope="module")
def model_config(repo_root):
    return load_params(repo_root / "params.yaml").model


@pytest.fixture(scope="module")
def train_split():
    return synthetic.split(600, seed=0)


@pytest.fixture(scope="module")
def test_split():
    return synthetic.split(200, seed=1)


def _schedule(learning_rates, data_seeds=None, steps=200, **overrides):
    members = len(learning_rates)
    return Schedule(
        steps=steps,
        batch_size=overrides.pop("batch_size", 20),
        eval_every=overrides.pop("eval_every", 50),
        momentum=overrides.pop("momentum", 0.0),
        learning_rates=learning_rates,
        data_seeds=data_seeds if data_seeds is not None else [0] * members,
    )


def _train(model_config, variant, seeds, schedule, train_split, test_split, **options):
    model = build_model(model_config, variant, seeds, torch.device("cpu"))
    return train_members(model, train_split, test_split, schedule, progress=False, **options)


def _accuracy_by_member(result, step):
    return [row["accuracy"] for row in result.history if row["step"] == step]


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_the_same_seed_and_config_give_identical_metrics(model_config, train_split, test_split, variant):
    schedule = _schedule([0.5, 2.0], data_seeds=[3, 4])
    first, second = (
        _train(model_config, variant, [3, 4], schedule, train_split, test_split,
               probe_images=test_split.images, tracked_units=2)
        for _ in range(2)
    )  # fmt: skip
    assert first.history == second.history
    assert first.sigmoid_inputs == second.sigmoid_inputs
    assert {name: p.tolist() for name, p in first.model.state_dict().items()} == {
        name: p.tolist() for name, p in second.model.state_dict().items()
    }


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_members_learn_the_task(model_config, train_split, test_split, variant):
    result = _train(
        model_config, variant, [0, 1], _schedule([2.0, 2.0], data_seeds=[0, 1], steps=300), train_split, test_split
    )
    assert min(_accuracy_by_member(result, 0)) < 0.3
    assert min(_accuracy_by_member(result, 300)) > 0.9


def test_per_member_learning_rates_really_differ_in_effect(model_config, train_split, test_split):
    # one init, one data order: only the learning rate differs between the members
    result = _train(model_config, "vanilla", [0, 0, 0], _schedule([0.0, 0.01, 2.0]), train_split, test_split)
    frozen, slow, fast = _accuracy_by_member(result, 200)
    assert frozen == _accuracy_by_member(result, 0)[0]  # lr 0 never moves
    assert fast > 0.9 > slow
    weights = result.model.state_dict()["hidden.0.weight"]
    assert not torch.equal(weights[1], weights[2])


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_a_diverging_member_is_frozen_and_does_not_disturb_the_others(model_config, train_split, test_split, variant):
    alone = _train(model_config, variant, [0], _schedule([1.0]), train_split, test_split)
    together = _train(model_config, variant, [0, 0], _schedule([1.0, 1e38]), train_split, test_split)
    assert together.diverged == [False, True]
    healthy = [row for row in together.history if row["member"] == 0]
    for reference, row in zip(alone.history, healthy, strict=True):
        assert row["accuracy"] == pytest.approx(reference["accuracy"], abs=1e-6)
        assert row["loss"] == pytest.approx(reference["loss"], rel=1e-4)
    # the diverged member keeps its last finite weights, so the trained model stays usable
    assert all(torch.isfinite(p).all() for p in together.model.parameters())
    assert any(row["diverged"] for row in together.history if row["member"] == 1)


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_gradients_left_on_the_model_before_training_change_nothing(model_config, train_split, test_split, variant):
    schedule = _schedule([0.5, 2.0], steps=50)
    clean = _train(model_config, variant, [1, 2], schedule, train_split, test_split)
    model = build_model(model_config, variant, [1, 2], torch.device("cpu"))
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, 1e3)  # e.g. from a backward pass the caller ran before
    stale = train_members(model, train_split, test_split, schedule, progress=False)
    assert stale.history == clean.history


def test_on_eval_can_stop_members(model_config, train_split, test_split):
    evaluations = []

    def stop_the_second(evaluation):
        evaluations.append(evaluation)
        return [False, evaluation.step >= 100]

    result = _train(model_config, "bn", [0, 0], _schedule([1.0, 1.0]), train_split, test_split, on_eval=stop_the_second)
    assert [e.step for e in evaluations] == [50, 100, 150, 200]
    assert result.stopped == [False, True]
    second = {row["step"]: row["accuracy"] for row in result.history if row["member"] == 1}
    assert second[100] == second[150] == second[200]


def test_momentum_changes_the_trajectory(model_config, train_split, test_split):
    plain = _train(model_config, "vanilla", [0], _schedule([0.1]), train_split, test_split)
    heavy = _train(model_config, "vanilla", [0], _schedule([0.1], momentum=0.9), train_split, test_split)
    assert _accuracy_by_member(heavy, 200)[0] > _accuracy_by_member(plain, 200)[0]


def test_sigmoid_input_percentiles_are_ordered_and_complete(model_config, train_split, test_split):
    result = _train(
        model_config, "bn", [0, 1], _schedule([1.0, 1.0], [0, 1]), train_split, test_split,
        probe_images=test_split.images[:100], tracked_units=3,
    )  # fmt: skip
    assert len(result.sigmoid_inputs) == 5 * 2 * 3  # evals × members × units
    assert all(row["p15"] <= row["p50"] <= row["p85"] for row in result.sigmoid_inputs)


def test_the_full_pass_sets_population_statistics(model_config, train_split, test_split):
    result = _train(
        model_config, "bn", [0], _schedule([1.0]), train_split, test_split,
        population_stats="full_pass", population_batches=10,
    )  # fmt: skip
    moving = _train(model_config, "bn", [0], _schedule([1.0]), train_split, test_split)
    assert result.history[:-1] == moving.history[:-1]  # the curve is the same training run
    assert result.history[-1]["accuracy"] > 0.9
    population_var = result.model.state_dict()["norms.0.running_var"]
    assert not torch.equal(population_var, moving.model.state_dict()["norms.0.running_var"])


def test_batch_orders_are_seeded_shuffles_of_whole_batches():
    shared = BatchOrder(100, 30, [7, 7], torch.device("cpu"))
    batches = list(shared.batches(7))
    assert len(batches) == 7 and all(b.shape == (30,) for b in batches)
    epoch = torch.cat(batches[:3])
    assert len(set(epoch.tolist())) == 90  # no example twice within an epoch
    own = list(BatchOrder(100, 30, [7, 8], torch.device("cpu")).batches(2))
    assert own[0].shape == (2, 30) and not torch.equal(own[0][0], own[0][1])
    assert torch.equal(own[0][0], batches[0])  # member 0's order is the shared order of its seed


def test_eval_steps_include_the_start_and_the_end():
    assert _schedule([1.0], steps=120, eval_every=50).eval_steps == [0, 50, 100, 120]


def test_devices_resolve(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"'cuda' is not available on this machine \(usable here: auto, cpu\)"):
        resolve_device("cuda")


def test_a_schedule_must_match_the_members(model_config, train_split, test_split):
    with pytest.raises(ValueError, match="one learning rate and one data seed per member"):
        _train(model_config, "vanilla", [0, 1], _schedule([1.0]), train_split, test_split)
