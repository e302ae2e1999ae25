"""Benchmark: model-steps per second of the engine against the plain loop a typical reproduction writes.

    python -m benchmarks.bench_engine                 # both variants, K = 1, 8, 16, 81, on the best device
    python -m benchmarks.bench_engine --steps 200 --rounds 1 --device cpu

Everything is measured side by side in one run on the paper's shapes (784 → 3×100 → 10, batch 60), and the
achieved matrix-multiply FLOP/s is set against the machine's own, measured in the same run on a large GEMM.
Data are random binary images: throughput does not depend on what the pixels show.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, ModelConfig
from src.data.splits import Split
from src.engine.device import resolve_device
from src.engine.network import build_model
from src.engine.schedule import Schedule
from src.engine.trainer import Trainer, TrainingData

BATCH = 60
WIDTHS = (784, 100, 100, 100, 10)
LEARNING_RATE = 0.5
BENCH_MODEL = ModelConfig(  # the paper's net; its init does not change the speed
    hidden_layers=3, hidden_units=100, init_std=0.1, bn_eps=1e-5, bn_momentum=0.1, population_batches=2
)


def matmul_flops_per_step(batch: int = BATCH) -> float:
    """Matrix-multiply FLOPs of one SGD step of one model: forward, weight gradients, input gradients.

    The first layer needs no input gradient (its input is the data); elementwise work is not counted.
    """
    products = [n_in * n_out for n_in, n_out in itertools.pairwise(WIDTHS)]
    return 2 * batch * (2 * sum(products) + sum(products[1:]))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def machine_matmul_flops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large float32 GEMM on `device`: the ceiling the engine is held against."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def plain_model(batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(WIDTHS[:-1]):
        layers += [nn.Linear(n_in, n_out, bias=not batch_norm)]
        layers += [nn.BatchNorm1d(n_out)] if batch_norm else []
        layers += [nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(WIDTHS[-2], WIDTHS[-1]))


def plain_loop_steps_per_s(data: Split, batch_norm: bool, steps: int, device: torch.device) -> float:
    """(a) One model at a time: a shuffling DataLoader, nn.Sequential with nn.BatchNorm1d, torch.optim.SGD."""
    torch.manual_seed(0)
    model = plain_model(batch_norm).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loader = DataLoader(TensorDataset(data.images, data.labels), batch_size=BATCH, shuffle=True, drop_last=True)
    loss_fn = nn.CrossEntropyLoss()

    def run(count: int) -> None:
        done = 0
        while done < count:
            for images, labels in loader:
                optimizer.zero_grad()
                loss_fn(model(images), labels).backward()
                optimizer.step()
                done += 1
                if done == count:
                    return

    run(max(steps // 10, 5))  # warm-up
    _synchronize(device)
    started = time.perf_counter()
    run(steps)
    _synchronize(device)
    return steps / (time.perf_counter() - started)


@dataclass(frozen=True)
class Configuration:
    """One row of the table: the plain loop (members=0), or the engine with K members."""

    variant: str
    members: int
    orders: int | None = None  # data orders, each shared by members/orders members; None: one per member (seeds)
    fused: bool = True  # the affine weights stepped inside the backward (src/engine/sgd.py), else autograd's ∂ℓ/∂W

    @property
    def loop(self) -> str:
        if self.members == PLAIN:
            return "plain (DataLoader, nn.Sequential, optim.SGD)"
        return "engine" if self.fused else "engine, autograd ∂ℓ/∂W + one per-member step"

    @property
    def order(self) -> str:
        if self.members == PLAIN:
            return "shuffled"
        if self.orders is None or self.orders == self.members:
            return "own per member (seeds)"
        return "shared (tuning)" if self.orders == 1 else f"{self.orders} orders, one per seed (sweep)"


PLAIN = 0  # "members" of the plain loop's row: one nn.Sequential, not the engine
SWEEP_ORDERS = 3  # sweep@'s default seeds: its 81 members share one data order per seed


def engine_model_steps_per_s(configuration: Configuration, data: Split, probe: Split, steps: int) -> float:
    """(b) The engine: K members as one computation, fused or autograd, on a shared or per-member data order.

    Unfused, autograd writes every ∂ℓ/∂W and one per-member SGD step updates every parameter after it: the plain
    form the fused step replaces, measured to show what the fusion is worth."""
    members, device = configuration.members, data.images.device

    def run(count: int) -> float:
        model = build_model(BENCH_MODEL, configuration.variant, seeds=list(range(members)), device=device)
        schedule = Schedule(
            steps=count,
            batch_size=BATCH,
            eval_steps=(0, count),
            momentum=0.0,
            population_batches=2,
            learning_rates=(LEARNING_RATE,) * members,
            data_seeds=tuple(range(configuration.orders or members)),
        )
        _synchronize(device)
        started = time.perf_counter()
        Trainer(model, TrainingData(data, probe), schedule, fused=configuration.fused).run(progress=False)
        _synchronize(device)
        return time.perf_counter() - started

    run(max(steps // 10, 5))  # warm-up
    return members * steps / run(steps)


def random_split(examples: int, device: torch.device, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = (torch.rand(examples, WIDTHS[0], generator=generator) < 0.2).float()
    labels = torch.randint(0, WIDTHS[-1], (examples,), generator=generator)
    return Split(images=images.to(device), labels=labels.to(device))


def configurations(members: list[int]) -> list[Configuration]:
    """Per variant: the plain loop; the engine at every K with one data order per member, and for K > 1 with one
    shared order (tuning) and, where K is a multiple of it, the sweep's SWEEP_ORDERS orders; at K ≥ 8 every engine
    row also unfused."""
    rows = []
    for variant in VARIANTS:
        rows.append(Configuration(variant, PLAIN))
        for k in members:
            orders = (
                [None] + ([1] if k > 1 else []) + ([SWEEP_ORDERS] if k > SWEEP_ORDERS and k % SWEEP_ORDERS == 0 else [])
            )
            for order in orders:
                rows += [Configuration(variant, k, order)] + (
                    [Configuration(variant, k, order, False)] if k >= 8 else []
                )
    return rows


def _measure(configuration: Configuration, data: Split, probe: Split, steps: int) -> float:
    if configuration.members == PLAIN:
        return plain_loop_steps_per_s(data, configuration.variant == "bn", steps, data.images.device)
    return engine_model_steps_per_s(configuration, data, probe, steps)


def measure(rows: list[Configuration], rounds: int, steps: int, device: torch.device) -> tuple[float, dict]:
    """The machine's GEMM FLOP/s and each row's model-steps/s, each the best of `rounds` interleaved rounds.

    Rounds interleave every configuration, so a noisy neighbour slows all of them alike; on a shared machine noise
    only ever slows a run down, so each configuration (and the GEMM ceiling) keeps its best round.
    """
    data = random_split(50_000, device, seed=0)
    probe = random_split(BATCH, device, seed=1)  # the engine's end-of-run evaluation: kept negligible
    peak, best = 0.0, dict.fromkeys(rows, 0.0)
    with tqdm(total=rounds * (len(rows) + 1), desc="benchmark", disable=not sys.stderr.isatty(), leave=False) as bar:
        for _ in range(rounds):
            peak = max(peak, machine_matmul_flops(device))
            bar.update()
            for row in rows:
                best[row] = max(best[row], _measure(row, data, probe, steps))
                bar.update()
    return peak, best


def print_table(peak: float, best: dict[Configuration, float]) -> None:
    flops_per_step = matmul_flops_per_step()
    print(
        f"machine matmul (2048² float32 GEMM): {peak / 1e9:.1f} GFLOP/s; one model-step = "
        f"{flops_per_step / 1e6:.2f} MFLOP of matmul\n"
    )
    print("| variant | loop | K | data order | model-steps/s | × plain loop | GFLOP/s | % of matmul |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for row, rate in best.items():
        plain = best[Configuration(row.variant, PLAIN)]
        gflops = rate * flops_per_step / 1e9
        k = max(row.members, 1)
        print(
            f"| {row.variant} | {row.loop} | {k} | {row.order} | {rate:,.0f} | {rate / plain:.2f} | {gflops:.1f} | "
            f"{100 * gflops * 1e9 / peak:.0f} % |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="timed steps per configuration (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions, best kept (default 3)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 8, 16, 81], help="K values (default 1 8 16 81)")
    args = parser.parse_args(argv)
    if args.steps < 10:
        parser.error(f"--steps must be >= 10, got {args.steps}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if min(args.members) < 1:
        parser.error(f"--members must all be >= 1, got {' '.join(map(str, args.members))}")
    device = resolve_device(args.device, setting="--device")
    load_average = os.getloadavg()[0]
    peak, best = measure(configurations(args.members), args.rounds, args.steps, device)
    print(
        f"device: {device} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; best of {args.rounds} interleaved rounds of {args.steps} steps, "
        f"load average {load_average:.1f} at the start"
    )
    print_table(peak, best)


if __name__ == "__main__":
    report_user_errors(main)
