"""Benchmark: what the thesis's probes (src/thesis/probes.py) would cost a training stage, as a share of its training.

    python -m benchmarks.bench_probes                        # params.yaml's stages, 20 steps timed, best of 3
    python -m benchmarks.bench_probes --steps 5 --rounds 1 --device cuda

At each training stage's own shape (bench_step's: tune@, train@, edge@ and sweep@ as params.yaml makes them) and for
each variant, on random binary images as sparse as binarised MNIST: the engine's step, timed over --steps steps of
the trainer's own loop, and one probe set (`measure`: one full gradient, one per hidden layer for ICS, one per step
size of the landscape) on a batch of the same shape, rounds interleaved, each keeping its best. A run would probe at
`probe_steps` of its horizon (step 0 and 3 log-spaced steps a decade: 16 of train@'s 50,000), so the share is
probe steps × probe set / (steps × step). The target is ≤ 10 % of a stage's training time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.bench_engine import machine_matmul_flops
from benchmarks.bench_step import MNIST_DENSITY, Shape, stage_shapes
from benchmarks.bench_sweep import machine
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, ModelConfig, Params, load_params
from src.data.splits import Split
from src.engine.batches import BatchOrder, gather
from src.engine.device import resolve_device
from src.engine.network import build_model
from src.engine.schedule import Schedule
from src.engine.trainer import Trainer, TrainingData
from src.thesis.probes import PROBES_PER_DECADE, STEP_MULTIPLIERS, StepRule, measure, probe_steps

EXAMPLES = 6000  # random training images: 100 batches of 60, enough that a timed stretch is no single epoch's edge
LEARNING_RATE = 0.5  # every member's: the time of a step or a probe does not depend on it


@dataclass(frozen=True)
class Stage:
    shape: Shape
    steps: int  # its horizon: how many training steps a run takes
    batch_size: int
    momentum: float


def stages(params: Params) -> list[Stage]:
    """Each training stage's shape with its horizon, batch size and momentum."""
    runs = {"tune": params.tune_run, "train": params.train_run, "edge": params.edge_run, "sweep": params.sweep_run}
    return [
        Stage(shape, runs[shape.stage].horizon.steps, runs[shape.stage].batch_size, runs[shape.stage].momentum)
        for shape in stage_shapes(params)
    ]


def overhead(stage: Stage, step_s: float, probe_s: float) -> float:
    """The probes' time over a run's training time: probe steps × a probe set / (steps × a step)."""
    return len(probe_steps(stage.steps)) * probe_s / (stage.steps * step_s)


def _seconds_of(run: Callable[[], None], sync: Callable[[], None]) -> float:
    sync()
    started = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - started


def seconds(
    stage: Stage, variant: str, device: torch.device, args: argparse.Namespace, model_config: ModelConfig
) -> tuple[float, float]:
    """Seconds of one training step and of one probe set at `stage`'s shape, rounds interleaving the two; each the
    best of `args.rounds` (`args.steps` steps a round)."""
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(EXAMPLES, 784, generator=generator) < MNIST_DENSITY).float()
    train = Split(images.to(device), torch.randint(0, 10, (EXAMPLES,), generator=generator).to(device))
    members, orders = stage.shape.members, stage.shape.orders
    model = build_model(model_config, variant, [k * orders // members for k in range(members)], device)
    schedule = Schedule(
        steps=10**9,
        batch_size=stage.batch_size,
        eval_steps=(0, 10**9),
        momentum=stage.momentum,
        learning_rates=(LEARNING_RATE,) * members,
        data_seeds=tuple(range(orders)),
    )
    trainer = Trainer(model, TrainingData(train, train), schedule)
    batch = gather(train, BatchOrder(EXAMPLES, stage.batch_size, schedule.data_seeds, device).next())
    batch = batch if orders > 1 else (batch[0][0], batch[1][0])  # one order: the (B, in) batch every member shares
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    model.train()
    step_s = probe_s = float("inf")
    with trainer._sgd.attached():  # the step loop Trainer.run calls, without its evaluations (as bench_step times it)
        trainer._train_until(2)  # warm-up
        measure(model, *batch, StepRule.of(trainer._sgd))
        for _ in range(args.rounds):
            steps = _seconds_of(lambda: trainer._train_until(trainer.step + args.steps), sync)
            step_s = min(step_s, steps / args.steps)
            probe_s = min(probe_s, _seconds_of(lambda: measure(model, *batch, StepRule.of(trainer._sgd)), sync))
    return step_s, probe_s


def print_table(found: dict[tuple[str, str], tuple[float, float]], all_stages: list[Stage]) -> None:
    print(
        "\n| stage | K, data orders | variant | steps | probe steps | ms/step | ms/probe set | probes / training |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    )
    worst = 0.0
    for stage in all_stages:
        for variant in VARIANTS:
            step_s, probe_s = found[stage.shape.stage, variant]
            share = overhead(stage, step_s, probe_s)
            worst = max(worst, share)
            print(
                f"| {stage.shape.stage}@ | {stage.shape.members}, {stage.shape.orders} | {variant} | {stage.steps:,} "
                f"| {len(probe_steps(stage.steps))} | {1e3 * step_s:.2f} | {1e3 * probe_s:.1f} | {100 * share:.2f} % |"
            )
    print(f"\nlargest share: {100 * worst:.2f} % of a stage's training time (target ≤ 10 %)")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps timed at a time (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions, best kept (default 3)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        parser.error(f"--steps and --rounds must be >= 1, got {args.steps} and {args.rounds}")
    params = load_params()
    device = resolve_device(args.device, setting="--device")
    all_stages = stages(params)
    found = {
        (stage.shape.stage, variant): seconds(stage, variant, device, args, params.model)
        for stage in all_stages
        for variant in VARIANTS
    }
    flops = machine_matmul_flops(device)
    print(
        f"machine: {machine()}\ndevice: {device}; GEMM 2048² float32: {flops / 1e9:.1f} GFLOP/s; best of "
        f"{args.rounds} round(s) of {args.steps} steps; batches of {params.train.batch_size}, images "
        f"{MNIST_DENSITY:.0%} on\na probe set: 1 + hidden layers + {len(STEP_MULTIPLIERS)} forward-backward passes "
        f"(step sizes {', '.join(f'{m:g}' for m in STEP_MULTIPLIERS)} × η); probe steps: step 0 and "
        f"{PROBES_PER_DECADE} a decade"
    )
    print_table(found, all_stages)


if __name__ == "__main__":
    report_user_errors(main)
