"""The engine trains K members at once: reproducibly, each on its own learning rate and its group's data order,
isolated from each other, and resumable from any checkpoint bit for bit."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from src import models
from src.batchnorm import population_statistics
from src.config import load_params
from src.data import BatchOrder, gather
from src.device import resolve_device
from src.engine import PERCENTILES, Evaluation, Trainer, TrainingData
from src.errors import StudyError
from src.models import build_model, member_losses
from src.models import score_members as evaluate
from src.schedule import Schedule, eval_schedule, schedule_for
from tests import synthetic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
TRAIN_EXAMPLES, BATCH = 600, 20  # 30 batches per epoch


@pytest.fixture(scope="module")
def params(repo_root):
    return load_params(repo_root / "params.yaml")


@pytest.fixture(scope="module")
def model_config(params):
    return params.model


@pytest.fixture(scope="module")
def data():
    return TrainingData(synthetic.split(TRAIN_EXAMPLES, seed=0), synthetic.split(200, seed=1))


@pytest.fixture(scope="module")
def probed(data):
    """The data with the last hidden layer's sigmoid inputs recorded on 100 test images, 2 units."""
    return TrainingData(data.train, data.evaluation, probe_images=data.evaluation.images[:100], tracked_units=2)


def _schedule(learning_rates, data_seeds=(0,), steps=200, every=50, **overrides) -> Schedule:
    return Schedule(
        steps=steps,
        batch_size=BATCH,
        eval_steps=overrides.pop("eval_steps", eval_schedule(steps, every)),
        momentum=overrides.pop("momentum", 0.0),
        learning_rates=tuple(learning_rates),
        data_seeds=tuple(data_seeds),
        population_batches=10,
    )


def _train(model_config, variant, seeds, schedule, data, **options):
    """(result, trained model)."""
    model = build_model(model_config, variant, seeds, CPU)
    return Trainer(model, data, schedule).run(progress=False, **options), model


def _assert_identical(result, model, expected, expected_model) -> None:
    """Every recorded array, the final evaluation and the model's every parameter and buffer, bit for bit (a
    diverged member's NaN equal to NaN)."""
    assert result.eval_steps == expected.eval_steps and result.stopped == expected.stopped
    for name in ("accuracy", "loss", "diverged", "percentiles"):
        actual, reference = getattr(result, name), getattr(expected, name)
        assert (actual is None) == (reference is None), name
        assert reference is None or np.array_equal(actual, reference, equal_nan=True), name
    assert result.final.step == expected.final.step
    for name in ("accuracy", "loss", "diverged"):
        assert np.array_equal(getattr(result.final, name), getattr(expected.final, name), equal_nan=True), name
    state, reference_state = model.state_dict(), expected_model.state_dict()
    assert state.keys() == reference_state.keys()
    for name, value in reference_state.items():
        torch.testing.assert_close(state[name], value, rtol=0, atol=0, equal_nan=True, msg=name)


# --- the evaluation schedule ------------------------------------------------------------------------------------


def test_eval_steps_run_from_the_start_every_so_many_steps_to_the_end():
    assert eval_schedule(120, 50) == (0, 50, 100, 120)
    assert eval_schedule(100, 50) == (0, 50, 100)  # the end is not repeated
    assert eval_schedule(30, 50) == (0, 30)
    assert eval_schedule(1000, 100, per_decade=0) == tuple(range(0, 1001, 100))  # linear only


def test_log_spaced_eval_steps_resolve_early_training_rounded_to_two_significant_digits():
    steps = eval_schedule(1000, 500, per_decade=10)
    # 10^(i/10) for i = 0 … 30, rounded to two significant digits, merged with 0, 500 and the end
    assert steps == (0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 63, 79, 100, 130, 160, 200, 250, 320,
                     400, 500, 630, 790, 1000)  # fmt: skip
    between = [step for step in eval_schedule(3000, 1000, per_decade=20) if step >= 1000]
    assert between == [1000, 1100, 1300, 1400, 1600, 1800, 2000, 2200, 2500, 2800, 3000]
    long = eval_schedule(50_000, 500, per_decade=20)
    assert long[0] == 0 and long[-1] == 50_000 and list(long) == sorted(set(long))
    assert set(range(0, 50_000, 500)) <= set(long)


def test_schedule_for_reads_the_stages_section_and_the_shared_training_settings(params):
    for stage in ("train", "sweep", "tune"):
        section = getattr(params, stage)
        schedule = schedule_for(params, stage, [0.5, 2.0], [3])
        assert schedule == Schedule(
            steps=section.steps,
            batch_size=params.train.batch_size,
            eval_steps=eval_schedule(section.steps, section.eval_every, section.evals_per_decade),
            momentum=params.train.momentum,
            learning_rates=(0.5, 2.0),
            data_seeds=(3,),
            population_batches=params.model.population_batches,
        )


@pytest.mark.parametrize(
    ("learning_rates", "data_seeds", "eval_steps", "message"),
    [
        ((1.0,), (0,), (0, 10), r"one learning rate per member \(4\) .* got 1 and 1"),
        ((1.0,) * 4, (0, 1, 2), (0, 10), r"a number of data seeds that divides it, got 4 and 3"),
        ((1.0,) * 4, (0,) * 8, (0, 10), r"a number of data seeds that divides it, got 4 and 8"),
        ((1.0,) * 4, (0,), (5, 10), r"eval_steps must run from 0 to 10, got \(5, 10\)"),
        ((1.0,) * 4, (0,), (0, 5), r"eval_steps must run from 0 to 10, got \(0, 5\)"),
    ],
    ids=["learning-rates", "3-seeds-for-4", "8-seeds-for-4", "no-start", "no-end"],
)
def test_a_schedule_that_does_not_fit_the_members_is_refused(
    model_config, data, learning_rates, data_seeds, eval_steps, message
):
    schedule = _schedule(learning_rates, data_seeds, steps=10, eval_steps=eval_steps)
    with pytest.raises(ValueError, match=message):
        Trainer(build_model(model_config, "vanilla", [0, 1, 2, 3], CPU), data, schedule)


# --- data order, batches, evaluation ----------------------------------------------------------------------------


def test_batch_orders_are_one_seeded_shuffle_of_whole_batches_per_group():
    order = BatchOrder(100, 30, [7, 8], CPU)
    batches = [order.next() for _ in range(7)]
    assert all(batch.shape == (2, 30) for batch in batches)
    for group in range(2):
        epoch = torch.cat([batch[group] for batch in batches[:3]])
        assert len(set(epoch.tolist())) == 90  # no example twice within an epoch; the remainder is dropped
        assert not torch.equal(epoch, torch.cat([batch[group] for batch in batches[3:6]]))  # a new shuffle per epoch
    assert not torch.equal(batches[0][0], batches[0][1])  # two seeds, two orders
    alone = BatchOrder(100, 30, [8], CPU)
    assert all(torch.equal(alone.next(), batch[1:]) for batch in batches)  # group 1 follows seed 8's own order
    twice = BatchOrder(100, 30, [7, 7], CPU).next()
    assert torch.equal(twice[0], twice[1]) and torch.equal(twice[0], batches[0][0])


@pytest.mark.parametrize("taken_after", [0, 2, 3, 4])  # before the first epoch, inside one, at its end, in the next
def test_a_batch_order_restored_from_its_state_continues_the_same_order(taken_after):
    order = BatchOrder(100, 30, [7, 8], CPU)
    for _ in range(taken_after):
        order.next()
    state = copy.deepcopy(order.state_dict())
    expected = [order.next() for _ in range(5)]
    restored = BatchOrder(100, 30, [1, 2], CPU)  # other seeds: everything must come from the state
    restored.load_state_dict(state)
    assert all(torch.equal(restored.next(), batch) for batch in expected)


def test_a_batch_order_refuses_a_state_of_another_number_of_seeds_and_a_split_smaller_than_a_batch():
    with pytest.raises(ValueError, match="a batch order of 1 data seeds, expected 2"):
        BatchOrder(100, 30, [7, 8], CPU).load_state_dict(BatchOrder(100, 30, [7], CPU).state_dict())
    with pytest.raises(ValueError, match="the training split has 20 examples, fewer than one batch of 30"):
        BatchOrder(20, 30, [7], CPU)


def test_gather_returns_the_images_and_labels_at_the_indices(data):
    indices = torch.tensor([[3, 1, 4], [1, 5, 9]])
    images, labels = gather(data.train, indices)
    assert images.shape == (2, 3, 784) and labels.shape == (2, 3)
    assert torch.equal(images, data.train.images[indices]) and torch.equal(labels, data.train.labels[indices])


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_evaluation_in_chunks_is_the_whole_splits_accuracy_and_mean_loss(model_config, data, variant, monkeypatch):
    model = build_model(model_config, variant, [0, 1], CPU).train()
    monkeypatch.setattr(models, "EVAL_CHUNK", 7)  # 200 examples: 28 full chunks and a remainder of 4
    accuracy, loss = evaluate(model, data.evaluation)
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        logits = model.eval()(data.evaluation.images)
    expected_accuracy = (logits.argmax(-1) == data.evaluation.labels).double().mean(dim=1)
    torch.testing.assert_close(accuracy.double(), expected_accuracy, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss, member_losses(logits, data.evaluation.labels), rtol=1e-5, atol=0)


# --- training ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_the_same_seed_and_config_give_identical_results(model_config, probed, variant):
    schedule = _schedule([0.5, 2.0], data_seeds=[3, 4], steps=100)
    (first, first_model), (second, second_model) = (
        _train(model_config, variant, [3, 4], schedule, probed) for _ in range(2)
    )
    assert first.eval_steps == schedule.eval_steps and first.percentiles is not None
    _assert_identical(first, first_model, second, second_model)


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_members_learn_the_task(model_config, data, variant):
    result, model = _train(model_config, variant, [0, 1], _schedule([2.0, 2.0], data_seeds=[0, 1]), data)
    assert result.accuracy.shape == (len(eval_schedule(200, 50)), 2)
    assert result.accuracy[0].max() < 0.3
    assert result.accuracy[-1].min() > 0.9 and min(result.final.accuracy) > 0.9
    assert not model.training  # left in eval mode, ready to use


def test_per_member_learning_rates_really_differ_in_effect(model_config, data):
    # one init, one data order: only the learning rate differs between the members
    result, model = _train(model_config, "vanilla", [0, 0, 0], _schedule([0.0, 0.01, 2.0]), data)
    frozen, slow, fast = result.accuracy[-1]
    assert (result.accuracy[:, 0] == result.accuracy[0, 0]).all() and frozen == result.accuracy[0, 0]
    assert fast > 0.9 > slow
    initial = build_model(model_config, "vanilla", [0, 0, 0], CPU)
    for name, value in initial.state_dict().items():
        assert torch.equal(model.state_dict()[name][0], value[0]), name  # lr 0 never moves
    weights = model.state_dict()["hidden.0.weight"]
    assert not torch.equal(weights[1], weights[2])


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_a_diverging_member_is_frozen_and_does_not_disturb_the_others(model_config, data, variant):
    alone, _ = _train(model_config, variant, [0], _schedule([1.0], steps=100), data)
    together, model = _train(model_config, variant, [0, 0], _schedule([1.0, 1e38], steps=100), data)
    assert together.final.diverged == [False, True]
    assert together.diverged[:, 0].tolist() == [False] * 3
    assert not together.diverged[0, 1] and together.diverged[-1, 1]
    np.testing.assert_allclose(together.accuracy[:, 0], alone.accuracy[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(together.loss[:, 0], alone.loss[:, 0], rtol=1e-4)
    assert together.final.accuracy[0] == pytest.approx(alone.final.accuracy[0], abs=1e-6)
    # the diverged member keeps its last finite weights, so the trained model stays usable
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_gradients_left_on_the_model_before_training_change_nothing(model_config, data, variant):
    schedule = _schedule([0.5, 2.0], steps=50)
    clean, clean_model = _train(model_config, variant, [1, 2], schedule, data)
    model = build_model(model_config, variant, [1, 2], CPU)
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, 1e3)  # e.g. from a backward pass the caller ran before
    _assert_identical(Trainer(model, data, schedule).run(progress=False), model, clean, clean_model)


def test_on_eval_can_stop_members(model_config, data):
    model = build_model(model_config, "bn", [0, 0], CPU)
    evaluations, frozen = [], {}

    def stop_the_second(evaluation):
        evaluations.append(evaluation)
        if evaluation.step == 100:
            frozen.update({name: p[1].clone() for name, p in model.named_parameters()})
        return [False, evaluation.step >= 100]

    result = Trainer(model, data, _schedule([1.0, 1.0])).run(on_eval=stop_the_second, progress=False)
    assert [e.step for e in evaluations] == [50, 100, 150, 200]
    assert [e.accuracy for e in evaluations] == result.accuracy[1:].tolist()
    assert result.stopped == [False, True] and result.final.diverged == [False, False]
    for name, parameter in model.named_parameters():  # stopped at step 100: no step after it
        assert torch.equal(parameter[1], frozen[name]), name
    assert not torch.equal(model.hidden[0].weight[0], model.hidden[0].weight[1])  # the first went on


def test_momentum_changes_the_trajectory(model_config, data):
    plain, _ = _train(model_config, "vanilla", [0], _schedule([0.1], steps=100), data)
    heavy, _ = _train(model_config, "vanilla", [0], _schedule([0.1], steps=100, momentum=0.9), data)
    assert heavy.accuracy[-1, 0] > plain.accuracy[-1, 0]


def test_sigmoid_input_percentiles_are_ordered_and_complete(model_config, probed, data):
    result, _ = _train(model_config, "bn", [0, 1], _schedule([1.0, 1.0], [0, 1], steps=100), probed)
    assert result.percentiles.shape == (3, 3, 2, 2)  # evals × percentiles × members × units
    assert np.isfinite(result.percentiles).all()
    assert (result.percentiles[:, 0] <= result.percentiles[:, 1]).all()
    assert (result.percentiles[:, 1] <= result.percentiles[:, 2]).all()
    assert _train(model_config, "bn", [0, 1], _schedule([1.0, 1.0], [0, 1], steps=10), data)[0].percentiles is None


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_members_of_a_group_share_its_batches_and_groups_have_their_own(model_config, data, variant):
    # K = 4 in G = 2 groups: members 0, 1 follow data seed 3, members 2, 3 data seed 4
    schedule = _schedule([0.5, 2.0, 0.5, 2.0], data_seeds=[3, 4], steps=100)
    grouped, model = _train(model_config, variant, [1, 2, 1, 2], schedule, data)
    for group, seed in enumerate((3, 4)):
        alone_schedule = _schedule([0.5, 2.0], data_seeds=[seed], steps=100)
        alone, alone_model = _train(model_config, variant, [1, 2], alone_schedule, data)
        members = slice(2 * group, 2 * group + 2)
        np.testing.assert_allclose(grouped.accuracy[:, members], alone.accuracy, rtol=0, atol=1e-6)
        np.testing.assert_allclose(grouped.loss[:, members], alone.loss, rtol=1e-4)
        np.testing.assert_allclose(grouped.final.loss[members], alone.final.loss, rtol=1e-4)
        for name, value in alone_model.state_dict().items():
            actual = model.state_dict()[name]  # num_batches_tracked is a scalar shared by all members
            torch.testing.assert_close(
                actual[members] if value.dim() else actual, value, rtol=1e-4, atol=1e-5, msg=name
            )
    # the same init and learning rate on another group's data: another network
    assert not torch.allclose(model.hidden[0].weight[0], model.hidden[0].weight[2], atol=1e-3)


@pytest.mark.parametrize("data_seeds", [(5,), (5, 6)], ids=["one-group", "own-batches"])
def test_bn_curves_use_the_moving_averages_and_final_uses_algorithm_2(model_config, probed, data_seeds):
    schedule = _schedule([0.5, 2.0], data_seeds, steps=100)
    model = build_model(model_config, "bn", [1, 2], CPU)
    at_the_end = {}

    def keep_the_last_state(evaluation):
        if evaluation.step == schedule.steps:  # before Algorithm 2: the moving averages
            at_the_end.update(copy.deepcopy(model.state_dict()))

    result = Trainer(model, probed, schedule).run(on_eval=keep_the_last_state, progress=False)
    assert not model.training
    moving = build_model(model_config, "bn", [1, 2], CPU)
    moving.load_state_dict(at_the_end)
    accuracy, loss = evaluate(moving, probed.evaluation)
    assert result.accuracy[-1].tolist() == accuracy.tolist() and result.loss[-1].tolist() == loss.tolist()
    percentiles = models.sigmoid_input_percentiles(moving, probed.probe_images, probed.tracked_units, PERCENTILES)
    assert np.array_equal(result.percentiles[-1], percentiles.numpy())
    # Algorithm 2 over the first population_batches batches of the schedule's own data order
    population = copy.deepcopy(moving)
    order = BatchOrder(TRAIN_EXAMPLES, BATCH, data_seeds, CPU)
    with population_statistics(population):
        for _ in range(schedule.population_batches):
            population(gather(probed.train, order.next())[0])
    for name, value in population.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    accuracy, loss = evaluate(population, probed.evaluation)
    assert result.final == Evaluation(100, accuracy.tolist(), loss.tolist(), diverged=[False, False])
    # the population pass changed every member's network
    assert all(final != last for final, last in zip(result.final.loss, result.loss[-1], strict=True))
    assert not torch.equal(model.norms[0].running_var, moving.norms[0].running_var)


def test_vanilla_final_is_the_last_evaluation(model_config, data):
    result, model = _train(model_config, "vanilla", [1, 2], _schedule([0.5, 2.0], steps=100), data)
    assert result.final == Evaluation(100, result.accuracy[-1].tolist(), result.loss[-1].tolist(), [False, False])
    assert not model.training
    accuracy, loss = evaluate(model, data.evaluation)
    assert accuracy.tolist() == result.final.accuracy and loss.tolist() == result.final.loss


# --- checkpoints and resuming -----------------------------------------------------------------------------------


def _as_saved(state: dict) -> dict:
    """`state` through torch.save and torch.load(weights_only=True), as a checkpoint file holds it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _assert_same_state(actual, expected, where: str = "state") -> None:
    """Two trainer states hold the same values, NaN (an evaluation not yet recorded) equal to NaN."""
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key, value in expected.items():
            _assert_same_state(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), where
        for index, (item, value) in enumerate(zip(actual, expected, strict=True)):
            _assert_same_state(item, value, f"{where}[{index}]")
    elif isinstance(expected, torch.Tensor):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True, msg=where)
    else:
        assert actual == expected, where


@pytest.mark.parametrize(
    ("steps", "every", "expected"),
    [(100, 30, [30, 60, 90]), (90, 30, [30, 60]), (100, 50, [50]), (20, 30, []), (100, None, [])],
)
def test_checkpoints_fall_on_the_multiples_of_checkpoint_every_before_the_last_step(
    model_config, data, steps, every, expected
):
    schedule = _schedule([1.0], steps=steps, every=25)
    calls = []
    trainer = Trainer(build_model(model_config, "vanilla", [0], CPU), data, schedule)
    trainer.run(on_checkpoint=lambda at: calls.append((at.step, at.recorded())), checkpoint_every=every, progress=False)
    assert [step for step, _ in calls] == expected
    for step, recorded in calls:  # a checkpoint holds every evaluation up to its step, its own included
        assert recorded.eval_steps == tuple(s for s in schedule.eval_steps if s <= step)
        assert recorded.accuracy.shape == (len(recorded.eval_steps), 1) and recorded.final is None


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("data_seeds", [(5,), (5, 6)], ids=["one-group", "own-batches"])
def test_a_trainer_restored_from_a_checkpoint_continues_bit_for_bit(
    model_config, probed, variant, momentum, data_seeds
):
    # checkpoints at 15 (an evaluation), 30 (the end of an epoch) and 45 (between evaluations, in an epoch)
    schedule = _schedule([0.5, 2.0], data_seeds, steps=50, eval_steps=(0, 15, 40, 50), momentum=momentum)

    def trainer(seeds=(1, 2)):
        return Trainer(build_model(model_config, variant, seeds, CPU), probed, schedule)

    uninterrupted = trainer()
    expected = uninterrupted.run(progress=False)
    checkpointed, saved = trainer(), {}
    result = checkpointed.run(
        on_checkpoint=lambda at: saved.update({at.step: _as_saved(at.state_dict())}),
        checkpoint_every=15,
        progress=False,
    )
    assert sorted(saved) == [15, 30, 45]
    _assert_identical(result, checkpointed.model, expected, uninterrupted.model)  # checkpointing changes nothing
    for step, state in saved.items():
        resumed = trainer(seeds=(7, 8))  # another init: the model must come from the state
        resumed.load_state_dict(state)
        assert resumed.step == step
        _assert_same_state(resumed.state_dict(), state)
        so_far = resumed.recorded()
        assert so_far.eval_steps == tuple(s for s in schedule.eval_steps if s <= step) and so_far.final is None
        assert np.array_equal(so_far.accuracy, expected.accuracy[: len(so_far.eval_steps)])
        _assert_identical(resumed.run(progress=False), resumed.model, expected, uninterrupted.model)


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_a_restored_trainer_keeps_its_diverged_and_stopped_members_frozen(model_config, probed, variant):
    # member 1 diverges at once, member 2 is stopped at the first evaluation (step 15); checkpoints at 20 and 40
    schedule = _schedule([0.5, 1e38, 2.0], (5,), steps=50, eval_steps=(0, 15, 40, 50))

    def trainer(seeds=(1, 2, 3)):
        return Trainer(build_model(model_config, variant, seeds, CPU), probed, schedule)

    def stop_the_third(evaluation):
        return [False, False, True]

    uninterrupted = trainer()
    expected = uninterrupted.run(on_eval=stop_the_third, progress=False)
    assert expected.final.diverged == [False, True, False] and expected.stopped == [False, False, True]
    checkpointed, saved = trainer(), {}
    checkpointed.run(
        on_eval=stop_the_third,
        on_checkpoint=lambda at: saved.update({at.step: _as_saved(at.state_dict())}),
        checkpoint_every=20,
        progress=False,
    )
    assert sorted(saved) == [20, 40]
    for state in saved.values():
        resumed = trainer(seeds=(7, 8, 9))
        resumed.load_state_dict(state)
        _assert_same_state(resumed.state_dict(), state)
        # no on_eval now: that the third member stays stopped must come from the state
        _assert_identical(resumed.run(progress=False), resumed.model, expected, uninterrupted.model)


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"members": 3}, r"learning_rates: \(3,\), expected \(2,\)"),
        ({"variant": "vanilla"}, r"the model state does not fit this model"),
        ({"momentum": 0.9}, r"the optimizer state does not fit this model"),
        ({"data_seeds": (0, 1)}, r"a batch order of 2 data seeds, expected 1"),
        ({"eval_steps": (0, 5, 10, 20)}, r"accuracy: \(4, 2\), expected \(3, 2\)"),
    ],
    ids=["members", "variant", "momentum", "data-seeds", "evaluations"],
)
def test_a_state_of_a_differently_shaped_trainer_is_refused(model_config, data, other, message):
    def trainer(members=2, variant="bn", momentum=0.0, data_seeds=(0,), eval_steps=(0, 10, 20)):
        schedule = _schedule([1.0] * members, data_seeds, steps=20, eval_steps=eval_steps, momentum=momentum)
        return Trainer(build_model(model_config, variant, list(range(members)), CPU), data, schedule)

    with pytest.raises(ValueError, match=message):
        trainer().load_state_dict(_as_saved(trainer(**other).state_dict()))


def test_devices_resolve(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    unavailable = r"train.device: 'cuda' is not available on this machine \(usable here: auto, cpu\)"
    with pytest.raises(StudyError, match=unavailable):
        resolve_device("cuda")
