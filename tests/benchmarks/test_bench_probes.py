"""benchmarks/bench_probes.py: each stage's shape and horizon as params.yaml makes them, a step and a probe set timed
at that shape, and the table that turns them into the probes' share of the stage's training time."""

from __future__ import annotations

import argparse

import pytest
import torch

from benchmarks import bench_probes
from benchmarks.bench_step import Shape
from src.config import load_params, with_overrides

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_each_stage_has_its_shape_and_its_own_horizon(repo_root):
    params = with_overrides(
        load_params(repo_root / "params.yaml"), {"tune.trials_per_batch": 4, "tune.steps": 300, "sweep.seeds": 2}
    )
    found = {
        stage.shape.stage: (stage.shape.members, stage.shape.orders, stage.steps)
        for stage in bench_probes.stages(params)
    }
    assert found == {
        "tune": (4, 1, 300),
        "train": (10, 10, params.train.steps),
        "edge": (10, 2, params.sweep.steps),
        "sweep": (54, 2, params.sweep.steps),
    }


def test_the_share_is_the_probe_steps_probes_over_the_runs_steps():
    stage = bench_probes.Stage(Shape("train", 10, 10), steps=50_000, batch_size=60, momentum=0.0)
    # 16 probe steps (0 and 3 a decade below 50,000) × 0.1 s over 50,000 steps × 0.002 s
    assert bench_probes.overhead(stage, step_s=0.002, probe_s=0.1) == pytest.approx(16 * 0.1 / 100)


@pytest.mark.parametrize("orders", [1, 2])
def test_a_step_and_a_probe_set_are_timed_at_the_stages_shape(repo_root, orders):
    stage = bench_probes.Stage(Shape("tune", 2, orders), steps=100, batch_size=20, momentum=0.9)
    model_config = load_params(repo_root / "params.yaml").model
    step_s, probe_s = bench_probes.seconds(
        stage, "bn", torch.device("cpu"), argparse.Namespace(steps=2, rounds=1), model_config
    )
    assert 0 < step_s < probe_s < 10  # a probe set is several forward-backward passes, a step one


def test_the_table_sets_each_stages_probes_against_its_training(capsys):
    stages = [bench_probes.Stage(Shape("sweep", 270, 10), steps=5000, batch_size=60, momentum=0.0)]
    bench_probes.print_table({("sweep", "vanilla"): (0.05, 0.5), ("sweep", "bn"): (0.06, 1.2)}, stages)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("| sweep@")] == [
        "| sweep@ | 270, 10 | vanilla | 5,000 | 13 | 50.00 | 500.0 | 2.60 % |",
        "| sweep@ | 270, 10 | bn | 5,000 | 13 | 60.00 | 1200.0 | 5.20 % |",
    ]
    assert lines[-1] == "largest share: 5.20 % of a stage's training time (target ≤ 10 %)"
