"""The one training path of train@ and sweep@, in its parts: the trainer built from a member table, the metric
histories handed to MLflow, and the line a stage prints about its run. (Killed and resumed whole: test_resume.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src import paths
from src.config import load_params, with_overrides
from src.data.splits import load_split
from src.engine.clock import PhaseClock
from src.engine.network import build_model
from src.engine.schedule import schedule_for
from src.engine.trainer import Evaluation, TrainingHistory
from src.training.members import MemberTable
from src.training.runner import TrainedMembers, build_trainer, metric_histories
from tests import synthetic

CPU = torch.device("cpu")
EVAL_STEPS = (0, 10, 20)


def _result(members: int = 2, units: int = 2, percentiles: bool = True, wall_time_s: float = 8.0) -> TrainingHistory:
    """A result at EVAL_STEPS in which no two members, evaluations, levels or units share a number."""
    evals = len(EVAL_STEPS)
    accuracy = np.array([[0.1 * e + 0.01 * m for m in range(members)] for e in range(evals)])
    loss = np.array([[10 * e + m for m in range(members)] for e in range(evals)], dtype=float)
    levels = np.arange(evals * 3 * members * units, dtype=float).reshape(evals, 3, members, units)
    final = Evaluation(EVAL_STEPS[-1], accuracy[-1].tolist(), loss[-1].tolist(), [False] * members)
    diverged = np.zeros((evals, members), dtype=bool)
    return TrainingHistory(EVAL_STEPS, accuracy, loss, diverged, levels if percentiles else None, final, wall_time_s)


def test_each_members_history_is_its_test_accuracy_and_loss_at_every_evaluation_step():
    result = _result()
    histories = metric_histories(result, with_percentiles=False)
    assert len(histories) == 2
    for member, history in enumerate(histories):
        assert history == {
            "test_accuracy": list(zip(EVAL_STEPS, result.accuracy[:, member].tolist(), strict=True)),
            "test_loss": list(zip(EVAL_STEPS, result.loss[:, member].tolist(), strict=True)),
        }


def test_with_percentiles_each_units_sigmoid_inputs_are_a_metric_per_level():
    result = _result(units=2)
    first, second = metric_histories(result, with_percentiles=True)
    levels = [f"sigmoid_input_unit{unit}_{level}" for unit in range(2) for level in ("p15", "p50", "p85")]
    assert list(second) == ["test_accuracy", "test_loss", *levels]
    for index, level in enumerate(("p15", "p50", "p85")):
        expected = list(zip(EVAL_STEPS, result.percentiles[:, index, 1, 1].tolist(), strict=True))
        assert second[f"sigmoid_input_unit1_{level}"] == expected
    assert first["sigmoid_input_unit0_p85"] == list(
        zip(EVAL_STEPS, result.percentiles[:, 2, 0, 0].tolist(), strict=True)
    )
    # asked for, but not recorded: only the curves
    assert list(metric_histories(_result(percentiles=False), with_percentiles=True)[0]) == [
        "test_accuracy",
        "test_loss",
    ]


def _trained(resumed_from: int = 0, seconds: dict | None = None, wall_time_s: float = 8.0):
    members = MemberTable.tuned(0.5, 0.1, [0, 1, 2])
    return TrainedMembers(
        members=members,
        model=None,
        result=_result(members=3, wall_time_s=wall_time_s),
        device=CPU,
        splits={},
        member_runs=None,
        resumed_from=resumed_from,
        clock=PhaseClock(CPU, seconds or {"steps": 7.5, "evaluation": 0.5, "checkpoints": 0.25, "logging": 0.05}),
    )


def test_the_checkpoint_overhead_is_checkpointing_and_logging_time_as_a_fraction_of_training_time():
    assert _trained(wall_time_s=8.0).checkpoint_overhead == (0.25 + 0.05) / 8.0
    assert _trained(wall_time_s=0.0).checkpoint_overhead == 0.0  # nothing trained: no fraction


def test_the_stage_line_says_what_was_trained_how_long_it_took_and_where_the_time_went():
    assert _trained().describe("train@bn", 50_000) == (
        "train@bn: 3 members × 50,000 steps in 8.0 s of training on cpu; "
        "steps 7.5 s, evaluation 0.5 s, checkpoints 0.2 s, logging 0.1 s"
    )
    assert (
        _trained(resumed_from=25_000)
        .describe("train@bn", 50_000)
        .startswith(
            "train@bn: 3 members × 50,000 steps in 8.0 s of training on cpu, resumed from step 25,000; steps 7.5 s"
        )
    )


@pytest.fixture
def params(repo_root, tmp_path, monkeypatch):
    """The repository's params on the CPU, in a scratch working directory holding synthetic processed splits."""
    monkeypatch.chdir(tmp_path)
    synthetic.write_processed(tmp_path / paths.PROCESSED_DATA)
    changes = {"train.device": "cpu", "train.percentile_examples": 50, "train.tracked_units": 2}
    return with_overrides(load_params(repo_root / "params.yaml"), changes)


# two seeds, each with two members of their own rates and init stds, side by side
TABLE = MemberTable(lr=(0.1, 1.0, 0.3, 3.0), init_std=(0.1, 1.0, 0.01, 0.1), seed=(3, 3, 5, 5))


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_the_trainer_has_one_member_per_row_at_the_tables_rate_init_and_data_order(params, variant):
    trainer, _ = build_trainer(params.sweep_run, variant, TABLE)

    assert trainer.model.members == len(TABLE) and trainer.model.batch_norm == (variant == "bn")
    assert trainer.schedule == schedule_for(params.sweep_run, TABLE.lr, data_seeds=(3, 5))
    for member, (seed, init_std) in enumerate(zip(TABLE.seed, TABLE.init_std, strict=True)):
        alone = build_model(params.model, variant, [seed], CPU, init_stds=[init_std])
        for name, value in alone.state_dict().items():
            actual = trainer.model.state_dict()[name]  # num_batches_tracked is a scalar shared by all members
            assert torch.equal(actual[member] if value.dim() else actual, value[0] if value.dim() else value), name
    assert trainer.step == 0


def test_the_trainer_steps_on_train_scores_on_test_and_probes_the_first_test_images(params):
    trainer, splits = build_trainer(params.train_run, "bn", MemberTable.tuned(0.5, 0.1, [0, 1]))

    assert set(splits) == {"train", "test"}, "training never reads the validation split"
    for name, split in splits.items():
        stored = load_split(paths.PROCESSED_DATA, name, CPU, params.data.binarize)
        assert torch.equal(split.images, stored.images) and torch.equal(split.labels, stored.labels), name
    assert trainer.data.train is splits["train"] and trainer.data.evaluation is splits["test"]
    assert torch.equal(trainer.data.probe_images, splits["test"].images[:50]) and trainer.data.tracked_units == 2
    assert trainer.schedule == schedule_for(params.train_run, (0.5, 0.5), data_seeds=(0, 1))
