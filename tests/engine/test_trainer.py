"""The engine trains K members at once: reproducibly, each on its own learning rate and its group's data order,
isolated from each other, and resumable from any checkpoint bit for bit."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from src.config import load_params
from src.engine.batches import BatchOrder, gather
from src.engine.batchnorm import population_statistics
from src.engine.network import build_model, member_losses
from src.engine.schedule import Schedule, eval_schedule
from src.engine.scoring import score_members as evaluate
from src.engine.scoring import sigmoid_input_percentiles
from src.engine.sgd import MemberSGD
from src.engine.trainer import PERCENTILES, Evaluation, Trainer, TrainingData
from tests import synthetic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
TRAIN_EXAMPLES, BATCH = 600, 20  # 30 batches per epoch


@pytest.fixture(scope="module")
def model_config(repo_root):
    return load_params(repo_root / "params.yaml").model


@pytest.fixture(scope="module")
def noise(repo_root):
    return load_params(repo_root / "params.yaml").noisy_bn


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
    assert result.eval_steps == expected.eval_steps
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


# --- the schedule the trainer is given ------------------------------------------------------------------------


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


def test_each_member_trains_at_its_own_learning_rate_as_it_would_alone(model_config, data):
    # one init, one data order: only the learning rate differs between the members
    rates = (0.0, 0.01, 2.0)
    result, model = _train(model_config, "vanilla", [0, 0, 0], _schedule(rates), data)
    assert (result.accuracy[:, 0] == result.accuracy[0, 0]).all()
    initial = build_model(model_config, "vanilla", [0, 0, 0], CPU)
    for name, value in initial.state_dict().items():
        assert torch.equal(model.state_dict()[name][0], value[0]), name  # lr 0 never moves
    for member, rate in enumerate(rates[1:], start=1):
        alone, alone_model = _train(model_config, "vanilla", [0], _schedule([rate]), data)
        np.testing.assert_allclose(result.accuracy[:, member], alone.accuracy[:, 0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(result.loss[:, member], alone.loss[:, 0], rtol=1e-4)
        for name, value in alone_model.state_dict().items():
            torch.testing.assert_close(model.state_dict()[name][member], value[0], rtol=1e-4, atol=1e-5, msg=name)
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
    assert result.final.diverged == [False, False]
    for name, parameter in model.named_parameters():  # stopped at step 100: no step after it
        assert torch.equal(parameter[1], frozen[name]), name
    assert not torch.equal(model.hidden[0].weight[0], model.hidden[0].weight[1])  # the first went on


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_each_step_is_the_optimizers_step_at_the_schedules_rates_and_momentum_on_its_batch_order(
    model_config, data, variant
):
    # what the engine adds to MemberSGD (whose update rule tests/test_sgd.py checks): which batch each group gets,
    # which rate each member, which momentum; and that evaluating in between changes nothing
    steps, seeds, rates = 30, (3, 4), (0.5, 2.0)
    trained = {}
    for momentum in (0.0, 0.9):
        schedule = _schedule(rates, seeds, steps=steps, eval_steps=(0, 15, steps), momentum=momentum)
        _, model = _train(model_config, variant, [1, 2], schedule, data)
        reference = build_model(model_config, variant, [1, 2], CPU).train()
        order, sgd = BatchOrder(TRAIN_EXAMPLES, BATCH, seeds, CPU), MemberSGD(reference, torch.tensor(rates), momentum)
        with sgd.attached():
            for _ in range(steps):
                images, labels = gather(data.train, order.next())
                sgd.step(member_losses(reference(images), labels), live=torch.ones(2, dtype=torch.bool))
        for (name, parameter), expected in zip(model.named_parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(parameter, expected, rtol=0, atol=0, msg=f"momentum {momentum}: {name}")
        trained[momentum] = model
    # the momentum reached the optimizer: with it, other networks
    assert not torch.equal(trained[0.0].hidden[0].weight, trained[0.9].hidden[0].weight)


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
    percentiles = sigmoid_input_percentiles(moving, probed.probe_images, probed.tracked_units, PERCENTILES)
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


def test_noisy_bn_draws_its_noise_once_per_step_trains_on_it_and_is_scored_without_it(model_config, noise, data):
    schedule = _schedule([2.0, 2.0], data_seeds=[0, 1], steps=60, every=30)
    noisy = build_model(model_config, "noisy_bn", [0, 1], CPU, noise=noise)
    redraws = []
    draw = noisy.redraw_noise
    noisy.redraw_noise = lambda batch: (redraws.append(batch), draw(batch))
    result = Trainer(noisy, data, schedule).run(progress=False)
    bn_result, _ = _train(model_config, "bn", [0, 1], schedule, data)
    assert redraws == [BATCH] * schedule.steps
    # step 0: the same weights scored without noise; then the noise moves the training away from BN's
    assert np.array_equal(result.accuracy[0], bn_result.accuracy[0]) and np.array_equal(
        result.loss[0], bn_result.loss[0]
    )
    assert not np.array_equal(result.loss[-1], bn_result.loss[-1])
    assert min(result.final.accuracy) > 0.5  # it still learns the task


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


@pytest.mark.parametrize("variant", ["vanilla", "bn", "noisy_bn"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("data_seeds", [(5,), (5, 6)], ids=["one-group", "own-batches"])
def test_a_trainer_restored_from_a_checkpoint_continues_bit_for_bit(
    model_config, noise, probed, variant, momentum, data_seeds
):
    # checkpoints at 15 (an evaluation), 30 (the end of an epoch) and 45 (between evaluations, in an epoch)
    schedule = _schedule([0.5, 2.0], data_seeds, steps=50, eval_steps=(0, 15, 40, 50), momentum=momentum)

    def trainer(seeds=(1, 2)):
        # noisy_bn: other seeds draw other noise, so the noise generators too must come from the state
        return Trainer(build_model(model_config, variant, seeds, CPU, noise=noise), probed, schedule)

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
    assert expected.final.diverged == [False, True, False]
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
        ({"variant": "noisy_bn"}, r"the noise state does not fit this model"),
    ],
    ids=["members", "variant", "momentum", "data-seeds", "evaluations", "noise"],
)
def test_a_state_of_a_differently_shaped_trainer_is_refused(model_config, noise, data, other, message):
    def trainer(members=2, variant="bn", momentum=0.0, data_seeds=(0,), eval_steps=(0, 10, 20)):
        schedule = _schedule([1.0] * members, data_seeds, steps=20, eval_steps=eval_steps, momentum=momentum)
        return Trainer(build_model(model_config, variant, list(range(members)), CPU, noise=noise), data, schedule)

    with pytest.raises(ValueError, match=message):
        trainer().load_state_dict(_as_saved(trainer(**other).state_dict()))
