"""A stage's schedule from params: evaluations from step 0 to the end, linear and log-spaced, and the one builder
tune@, train@ and sweep@ share."""

from __future__ import annotations

import pytest

from src.config import load_params
from src.engine.schedule import Schedule, eval_schedule, schedule_for


@pytest.fixture(scope="module")
def params(repo_root):
    return load_params(repo_root / "params.yaml")


def test_eval_steps_run_from_the_start_every_so_many_steps_to_the_end():
    assert eval_schedule(120, 50) == (0, 50, 100, 120)
    assert eval_schedule(100, 50) == (0, 50, 100)  # the end is not repeated
    assert eval_schedule(30, 50) == (0, 30)
    assert eval_schedule(1000, 100, per_decade=0) == tuple(range(0, 1001, 100))  # linear only


def test_log_spaced_eval_steps_resolve_early_training_rounded_to_two_significant_digits():
    steps = eval_schedule(1000, 500, per_decade=10)
    # 10^(i/10) for i = 0 … 30, rounded to two significant digits, merged with 0, 500 and the end
    assert steps == (
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        8,
        10,
        13,
        16,
        20,
        25,
        32,
        40,
        50,
        63,
        79,
        100,
        130,
        160,
        200,
        250,
        320,
        400,
        500,
        630,
        790,
        1000,
    )
    between = [step for step in eval_schedule(3000, 1000, per_decade=20) if step >= 1000]
    assert between == [1000, 1100, 1300, 1400, 1600, 1800, 2000, 2200, 2500, 2800, 3000]
    long = eval_schedule(50_000, 500, per_decade=20)
    assert long[0] == 0 and long[-1] == 50_000 and list(long) == sorted(set(long))
    assert set(range(0, 50_000, 500)) <= set(long)


def test_schedule_for_reads_the_stages_section_and_the_shared_training_settings(params):
    for stage in ("train", "sweep", "tune"):
        section = getattr(params, stage)
        schedule = schedule_for(getattr(params, f"{stage}_run"), [0.5, 2.0], [3])
        assert schedule == Schedule(
            steps=section.steps,
            batch_size=params.train.batch_size,
            eval_steps=eval_schedule(section.steps, section.eval_every, section.evals_per_decade),
            momentum=params.train.momentum,
            learning_rates=(0.5, 2.0),
            data_seeds=(3,),
            population_batches=params.model.population_batches,
        )
