"""Benchmark: the default pipeline's training work, today's params.yaml against the previous round's defaults.

    python -m benchmarks.bench_defaults                 # 150 steps a shape, best of 3 interleaved rounds
    python -m benchmarks.bench_defaults --steps 300 --rounds 5

Tuning is the same in both and left out. Every stage that trains (train@, sweep@, edge@) runs the engine at its own
shape, K members in so many data orders; this times each shape side by side in one run (model-steps/s, each the best
of its rounds: noise on a shared machine only slows a run), and projects each stage's seconds as its member-steps
over that rate. The previous defaults, before the verdicts were redesigned: 5 seeds for train@, a sweep of 81 members
(3 seeds) at 10,000 steps, no edge@. What it leaves out (MLflow, checkpoints, evaluation) is a few percent of a stage.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

import torch

from benchmarks.bench_engine import Configuration, engine_model_steps_per_s, machine_matmul_flops, random_split
from benchmarks.bench_sweep import machine
from src.cli import OneLineParser, report_user_errors
from src.config import Params, load_params
from src.training.members import MemberTable

VARIANTS = ("vanilla", "bn")


class Shape(NamedTuple):
    members: int
    orders: int
    steps: int


PREVIOUS = {"train@": Shape(5, 5, 50_000), "sweep@": Shape(81, 3, 10_000)}


def shapes_now(params: Params) -> dict[str, Shape]:
    """Each training stage's shape under `params`: train@'s seeds, the sweep's grid, edge@'s refined rates."""
    grid = MemberTable.grid(params.sweep)
    seeds = params.sweep.seeds
    edge_members = seeds * len(params.edge.init_stds) * params.edge.rates_between
    return {
        "train@": Shape(params.train.seeds, params.train.seeds, params.train.steps),
        "sweep@": Shape(len(grid), len(grid.data_seeds), params.sweep.steps),
        "edge@": Shape(edge_members, seeds, params.sweep.steps),
    }


def best_rates(plans: dict[str, dict[str, Shape]], steps: int, rounds: int) -> dict[tuple[str, str, str], float]:
    """(plan, stage, variant) -> the engine's best model-steps/s at that stage's shape over interleaved rounds."""
    cpu = torch.device("cpu")
    data, probe = random_split(50_000, cpu, seed=0), random_split(60, cpu, seed=1)
    best: dict[tuple[str, str, str], float] = {}
    for _ in range(rounds):
        for plan, stages in plans.items():
            for stage, shape in stages.items():
                for variant in VARIANTS:
                    rate = engine_model_steps_per_s(
                        Configuration(variant, shape.members, shape.orders), data, probe, steps
                    )
                    key = (plan, stage, variant)
                    best[key] = max(best.get(key, 0.0), rate)
    return best


def print_table(plans: dict[str, dict[str, Shape]], rates: dict[tuple[str, str, str], float]) -> dict[str, float]:
    """A row per plan and stage; returns each plan's projected training seconds, both variants."""
    print(
        "\n| defaults | stage | K, data orders | steps | vanilla: model-steps/s, s | BN: model-steps/s, s |"
        "\n| --- | --- | --- | ---: | --- | --- |"
    )
    totals = dict.fromkeys(plans, 0.0)
    for plan, stages in plans.items():
        for stage, shape in stages.items():
            cells = []
            for variant in VARIANTS:
                rate = rates[(plan, stage, variant)]
                seconds = shape.members * shape.steps / rate
                totals[plan] += seconds
                cells.append(f"{rate:,.0f}, {seconds:,.0f}")
            print(f"| {plan} | {stage} | {shape.members}, {shape.orders} | {shape.steps:,} | {cells[0]} | {cells[1]} |")
    return totals


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="steps timed at each shape (default 150)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions, best kept (default 3)")
    args = parser.parse_args(argv)
    if args.steps < 10 or args.rounds < 1:
        parser.error(f"--steps must be >= 10 and --rounds >= 1, got {args.steps} and {args.rounds}")
    plans = {"previous": PREVIOUS, "today": shapes_now(load_params())}
    print(
        f"machine: {machine()}\nGEMM 2048² float32: {machine_matmul_flops(torch.device('cpu')) / 1e9:.1f} GFLOP/s"
        f"\nbest of {args.rounds} interleaved round(s) of {args.steps:,} steps at each shape"
    )
    totals = print_table(plans, best_rates(plans, args.steps, args.rounds))
    print(
        f"\ntraining, both variants: previous defaults {totals['previous']:,.0f} s, today's {totals['today']:,.0f} s:"
        f" {totals['today'] / totals['previous']:.2f}×"
    )


if __name__ == "__main__":
    report_user_errors(main)
