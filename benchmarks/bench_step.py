"""Benchmark: the engine's training step at each training stage's own shape, a git ref's code against this tree's,
side by side in one run, and each against its own GEMM floor.

    python -m benchmarks.bench_step --ref main              # today's main against the working tree
    python -m benchmarks.bench_step --ref main --rounds 5 --steps 60 --device cuda

Each stage's shape is read from params.yaml: tune@ (trials_per_batch members, one data order), train@ (one member
per seed, each its own order), edge@ (rates_between rates per seed) and sweep@ (the whole grid, one order per seed).
Each tree's step runs in a fresh process of that tree's code, on random binary images as sparse as binarised MNIST;
rounds interleave the trees, and each shape keeps its best round (noise on a shared machine only slows a run). A step
is timed over `--steps` steps, the best of three runs in each process. The GEMM floor is the step's matrix products
alone at the same shapes (forward, ∂ℓ/∂u, the fused weight steps), as src/engine/affine.py and sgd.py compute them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import trees
from benchmarks.bench_engine import BATCH, WIDTHS, machine_matmul_flops
from benchmarks.bench_sweep import machine
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, Params, load_params
from src.engine.device import resolve_device
from src.training.members import MemberTable

MNIST_DENSITY = 0.1324  # the share of binarised MNIST's pixels that are on (103.8 of 784 in the training split)


@dataclass(frozen=True)
class Shape:
    stage: str
    members: int
    orders: int


def stage_shapes(params: Params) -> list[Shape]:
    """Each training stage's model: its members and data orders at the default params."""
    grid = MemberTable.grid(params.sweep)
    seeds = params.train.seeds
    return [
        Shape("tune", params.tune.trials_per_batch, 1),
        Shape("train", seeds, seeds),
        Shape("edge", params.sweep.seeds * params.edge.rates_between * len(params.edge.init_stds), params.sweep.seeds),
        Shape("sweep", len(grid), len(grid.data_seeds)),
    ]


# Run in a tree's own code: the engine's step alone, best of a few short rounds. Trainer.run would add evaluations
# and Algorithm 2's pass; the step loop it calls (`_train_until` inside `_sgd.attached()`) is in every ref since the
# packages, so the probe uses it.
PROBE = """
import json, sys, time, torch
from src.config import ModelConfig
from src.data.splits import Split
from src.engine.network import build_model
from src.engine.schedule import Schedule
from src.engine.trainer import Trainer, TrainingData
spec = json.loads(sys.argv[1])
device = torch.device(spec["device"])
generator = torch.Generator().manual_seed(0)
images = (torch.rand(50_000, 784, generator=generator) < spec["density"]).float().to(device)
train = Split(images, torch.randint(0, 10, (50_000,), generator=generator).to(device))
probe = Split(train.images[:60], train.labels[:60])
model_config = ModelConfig(hidden_layers=3, hidden_units=100, init_std=0.1, bn_eps=1e-5, bn_momentum=0.1,
                           population_batches=2)
def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()
found = {}
for variant, members, orders in spec["shapes"]:
    model = build_model(model_config, variant, [k * orders // members for k in range(members)], device)
    schedule = Schedule(steps=10**9, batch_size=60, eval_steps=(0, 10**9), momentum=0.0, population_batches=2,
                        learning_rates=(0.5,) * members, data_seeds=tuple(range(orders)))
    trainer = Trainer(model, TrainingData(train, probe), schedule)
    model.train()
    best = float("inf")
    with trainer._sgd.attached():
        trainer._train_until(5)
        for _ in range(spec["repeats"]):
            sync()
            started = time.perf_counter()
            trainer._train_until(trainer.step + spec["steps"])
            sync()
            best = min(best, (time.perf_counter() - started) / spec["steps"])
    found[f"{variant},{members},{orders}"] = best
print(json.dumps(found))
"""


def step_seconds(tree: Path, shapes: list[tuple[str, int, int]], steps: int, device: str) -> dict[str, float]:
    """Seconds per step of each (variant, members, orders) in a fresh process of `tree`'s code."""
    spec = json.dumps({"shapes": shapes, "steps": steps, "repeats": 3, "device": device, "density": MNIST_DENSITY})
    env = {**os.environ, "PYTHONPATH": str(tree)}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, spec], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode:
        raise RuntimeError(f"{tree}: {completed.stderr.strip().splitlines()[-1:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def gemm_floor_s(members: int, orders: int, device: torch.device, repeats: int = 20) -> float:
    """Seconds of one step's GEMMs alone at K `members` in `orders` groups; the best of `repeats`."""
    per_group, hidden, classes = members // orders, WIDTHS[1], WIDTHS[-1]
    x = (torch.rand(orders, BATCH, WIDTHS[0], device=device) < MNIST_DENSITY).float()
    h = torch.rand(members, BATCH, hidden, device=device)
    first = torch.rand(orders, per_group * hidden, WIDTHS[0], device=device)
    weights = [torch.rand(members, n_out, hidden, device=device) for n_out in (hidden, hidden, classes)]
    grad_first = torch.rand(orders, BATCH, per_group * hidden, device=device)
    grads = [torch.rand(members, BATCH, weight.shape[1], device=device) for weight in weights]

    def step() -> None:
        torch.bmm(x, first.mT)
        for weight, grad in zip(weights, grads, strict=True):
            torch.bmm(h, weight.mT)
            torch.bmm(grad, weight)
        first.baddbmm_(grad_first.mT, x, alpha=-1e-12)
        for weight, grad in zip(weights, grads, strict=True):
            weight.baddbmm_(grad.mT, h, alpha=-1e-12)

    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def measure(ref_tree: Path, new_tree: Path, shapes: list[Shape], args: argparse.Namespace) -> dict:
    """Per tree and shape the best step time over interleaved rounds, and per shape its GEMM floor."""
    device = resolve_device(args.device, setting="--device")
    rows = [(variant, shape.members, shape.orders) for shape in shapes for variant in VARIANTS]
    best: dict[str, dict[str, float]] = {"ref": {}, "new": {}}
    floors: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, tree in (("ref", ref_tree), ("new", new_tree)):
            for key, seconds in step_seconds(tree, rows, args.steps, device.type).items():
                best[name][key] = min(best[name].get(key, float("inf")), seconds)
        for shape in shapes:
            key = f"{shape.members},{shape.orders}"
            floors[key] = min(floors.get(key, float("inf")), gemm_floor_s(shape.members, shape.orders, device))
    return {"best": best, "floors": floors, "peak": machine_matmul_flops(device), "device": device}


def print_table(found: dict, shapes: list[Shape], ref: str) -> None:
    print(
        f"\n| stage | K, data orders | variant | {ref}: ms/step | this tree: ms/step | speed-up | GEMM floor: ms | "
        "floor / step, this tree |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for shape in shapes:
        floor = found["floors"][f"{shape.members},{shape.orders}"]
        for variant in VARIANTS:
            key = f"{variant},{shape.members},{shape.orders}"
            old, new = found["best"]["ref"][key], found["best"]["new"][key]
            print(
                f"| {shape.stage}@ | {shape.members}, {shape.orders} | {variant} | {1e3 * old:.2f} | {1e3 * new:.2f} "
                f"| {old / new:.2f}× | {1e3 * floor:.2f} | {100 * floor / new:.0f} % |"
            )


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="main", help="the git ref whose engine is today's (default main)")
    parser.add_argument("--steps", type=int, default=20, help="steps timed at a time (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions, best kept (default 3)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    args = parser.parse_args(argv)
    if args.steps < 5 or args.rounds < 1:
        parser.error(f"--steps must be >= 5 and --rounds >= 1, got {args.steps} and {args.rounds}")
    shapes = stage_shapes(load_params())
    with trees.checkout(args.ref) as ref_tree, trees.working_copy() as new_tree:
        found = measure(ref_tree, new_tree, shapes, args)
    print(
        f"machine: {machine()}\ndevice: {found['device']}; GEMM 2048² float32: {found['peak'] / 1e9:.1f} GFLOP/s; "
        f"best of {args.rounds} interleaved round(s); a step of 60 examples, images {MNIST_DENSITY:.0%} on"
    )
    print_table(found, shapes, trees.describe(args.ref))


if __name__ == "__main__":
    report_user_errors(main)
