"""benchmarks/bench_step.py: each stage's shape as params.yaml makes it, a step timed in a fresh process of a tree's
own code, and the table that sets a ref's step beside this tree's and its GEMM floor."""

from __future__ import annotations

import torch

from benchmarks import bench_step, trees
from src.config import load_params, with_overrides


def test_the_shapes_are_each_stages_members_and_data_orders(repo_root):
    params = with_overrides(load_params(repo_root / "params.yaml"), {"tune.trials_per_batch": 4, "sweep.seeds": 2})
    shapes = {shape.stage: (shape.members, shape.orders) for shape in bench_step.stage_shapes(params)}
    assert shapes == {"tune": (4, 1), "train": (10, 10), "edge": (10, 2), "sweep": (54, 2)}


def test_a_trees_step_is_timed_in_its_own_code(repo_root):
    with trees.working_copy() as tree:
        found = bench_step.step_seconds(tree, [("bn", 2, 1), ("vanilla", 4, 2)], steps=5, device="cpu")
    assert set(found) == {"bn,2,1", "vanilla,4,2"} and all(seconds > 0 for seconds in found.values())


def test_the_table_sets_each_step_beside_the_refs_and_its_floor(capsys):
    shapes = [bench_step.Shape("train", 10, 10)]
    found = {
        "best": {
            "ref": {"vanilla,10,10": 0.004, "bn,10,10": 0.006},
            "new": {"vanilla,10,10": 0.002, "bn,10,10": 0.003},
        },
        "floors": {"10,10": 0.0015},
    }
    bench_step.print_table(found, shapes, "main (abc1234)")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| train@")]
    assert rows == [
        "| train@ | 10, 10 | vanilla | 4.00 | 2.00 | 2.00× | 1.50 | 75 % |",
        "| train@ | 10, 10 | bn | 6.00 | 3.00 | 2.00× | 1.50 | 50 % |",
    ]


def test_the_gemm_floor_is_a_steps_matrix_products_alone():
    assert 0 < bench_step.gemm_floor_s(8, 2, torch.device("cpu"), repeats=2) < 1
