"""Benchmark: the sweep through its work queue against today's single-model sweep, on one machine.

    python -m benchmarks.bench_sweep                    # params.yaml's grid, 100 steps a member, 3 rounds
    python -m benchmarks.bench_sweep --seeds 3 --steps 300 --rounds 5

Side by side in one run, on random data of MNIST's shapes (speed does not depend on what the pixels show), each run
the whole stage (MLflow runs, checkpoints, outputs) in a scratch project; a test split of --test-images images and a
population pass of 50 batches, the same compute in every run, keep a short run from being buried under them:
(a) today's single-model sweep: the grid trained by `train_members` as pipeline/sweep.py did before the queue;
(b) the queue in one process: its default cut (one unit, the whole grid) and finer ones;
(c) two processes × one thread each (the stage and one worker) against one process × two threads;
and (d) the step's own GEMMs alone at each unit's shapes (60-row batches, K members), against which the engine's step
is set. Fixed costs (MLflow runs, the study) weigh more at a short horizon than at the sweep's 10,000 steps, so the
ratios are upper bounds of the queue's cost there.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import mlflow
import numpy as np
import torch
import yaml

from benchmarks.bench_engine import (
    BATCH,
    WIDTHS,
    Configuration,
    engine_model_steps_per_s,
    machine_matmul_flops,
    matmul_flops_per_step,
    random_split,
)
from pipeline import sweep as sweep_stage
from src import paths
from src.cli import OneLineParser, report_user_errors
from src.config import load_params, with_overrides
from src.results.members import write_final, write_history, write_predictions, write_sigmoid_inputs
from src.results.sweep import SweepSummary
from src.training.members import MemberTable
from src.training.runner import train_members

REPO = Path(__file__).resolve().parents[1]
CUTS = {"variant": "variant", "seed": "seed", "seed_and_rates 3": {"seed_and_rates": 3}}
POPULATION_BATCHES = 50  # BN's population pass, the same compute in every run and no part of what is compared
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")  # what decides the CPU's GEMM kernels


def machine() -> str:
    """The CPU model, core count and vector flags (lscpu), torch's threads, and the load when the benchmark starts."""
    info = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in info.splitlines())}
    flags = [flag for flag in FLAGS if flag in fields.get("Flags", "").split()]
    return (
        f"{fields.get('Model name', 'unknown CPU')}, {fields.get('CPU(s)', '?')} CPUs, flags {' '.join(flags) or '-'}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}"
    )


def single_model_sweep(variant: str) -> None:
    """Today's sweep@variant, as pipeline/sweep.py ran it before the queue: one model, written from its block."""
    params = load_params()
    members = MemberTable.grid(params.sweep)
    with train_members(params.sweep_run, variant, members, log_percentiles=False) as trained:
        directory = paths.stage_dir("sweep", variant)
        write_history(directory, trained.result, members)
        write_sigmoid_inputs(directory, trained.result, members)
        write_final(directory, trained.result.final, members)
        write_predictions(directory, trained.predictions(), members)
        SweepSummary(variant=variant, members=len(members), steps=params.sweep.steps, device=str(trained.device)).write(
            directory
        )
        trained.finish()


class Timing(NamedTuple):
    wall_s: float
    cpu_s: float  # of every thread (and, for processes, every child): less disturbed by a busy machine than wall


class Scratch:
    """Scratch projects sharing one set of random data and one migrated MLflow store, each a copy."""

    def __init__(self, root: Path, args: argparse.Namespace):
        self.root, self.args, self.made = root, args, 0
        data = root / "data"
        for name, count in (("train", 50_000), ("val", 1_000), ("test", args.test_images)):
            split = random_split(count, torch.device("cpu"), seed=len(name))
            (data / "processed").mkdir(parents=True, exist_ok=True)
            images = split.images.numpy().astype(np.uint8) * 255
            np.savez(data / "processed" / f"{name}.npz", images=images, labels=split.labels.numpy().astype(np.uint8))
        self.store = root / "mlflow.db"
        mlflow.MlflowClient(f"sqlite:///{self.store}").search_experiments()  # migrate once

    def project(self, cut: object) -> Path:
        """A project of params.yaml's sweep at the benchmark's steps and seeds, cut by `cut`, its queue in its own
        SQLite file."""
        self.made += 1
        project = self.root / f"project{self.made}"
        project.mkdir()
        (project / "data").symlink_to(self.root / "data")
        shutil.copyfile(self.store, project / "mlflow.db")
        raw = yaml.safe_load((REPO / "params.yaml").read_text())
        raw["sweep"].update(
            steps=self.args.steps,
            seeds=self.args.seeds or raw["sweep"]["seeds"],
            unit=cut,
            storage="sqlite:///optuna.db",
        )
        raw["model"]["population_batches"] = POPULATION_BATCHES
        (project / "params.yaml").write_text(yaml.safe_dump(raw))
        return project


def in_process(project: Path, run: Callable[[], None]) -> Timing:
    """How long `run` takes in `project` as the working directory, with its MLflow store."""
    previous, uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(project)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    try:
        started, cpu = time.perf_counter(), time.process_time()
        run()
        return Timing(time.perf_counter() - started, time.process_time() - cpu)
    finally:
        os.chdir(previous)
        os.environ.pop("MLFLOW_TRACKING_URI") if uri is None else os.environ.update(MLFLOW_TRACKING_URI=uri)


def processes(project: Path, workers: int, threads: int) -> Timing:
    """From starting the stage and `workers` workers, each with `threads` threads, until all have ended."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
    }
    commands = [["pipeline.sweep", "--variant", "bn"]] + [["src.sweep", "--worker", "--variant", "bn"]] * workers
    started, cpu = time.perf_counter(), _children_cpu_s()
    running = [
        subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    for process in running:
        _, err = process.communicate()
        if process.returncode:
            raise RuntimeError(f"{process.args}: {err.strip().splitlines()[-1:]}")
    return Timing(time.perf_counter() - started, _children_cpu_s() - cpu)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def gemm_floor_s(members: int, orders: int, repeats: int = 50) -> float:
    """Seconds of one step's GEMMs alone at K `members` in `orders` groups: forward, ∂ℓ/∂u of every layer but the
    first, and the fused weight steps (as src/engine/affine.py and sgd.py compute them); the best of `repeats`."""
    per_group, hidden, classes = members // orders, WIDTHS[1], WIDTHS[-1]
    x, h = torch.rand(orders, BATCH, WIDTHS[0]), torch.rand(members, BATCH, hidden)
    first = torch.rand(orders, per_group * hidden, WIDTHS[0])
    weights = [
        torch.rand(members, hidden, hidden),
        torch.rand(members, hidden, hidden),
        torch.rand(members, classes, hidden),
    ]
    grad_first = torch.rand(orders, BATCH, per_group * hidden)
    grads = [torch.rand(members, BATCH, weight.shape[1]) for weight in weights]

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
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best


def shapes(grid: MemberTable) -> dict[str, tuple[int, int]]:
    """Each cut's unit shape: (members, data orders)."""
    return {
        name: (len(units[0]), 1 if name != "variant" else len(grid.data_seeds))
        for name, units in ((name, grid.units(cut)) for name, cut in CUTS.items())
    }


def stage_runs(scratch: Scratch) -> dict[str, Callable[[], Timing]]:
    """(a) and (b): today's stage and the queue's cuts, one process each, as name -> a timed run."""
    runs = {
        "today: one model, train_members": lambda: in_process(
            scratch.project("variant"), lambda: single_model_sweep("bn")
        )
    }
    for name, cut in CUTS.items():
        runs[f"queue, unit: {name}"] = lambda cut=cut: in_process(
            scratch.project(cut), lambda: sweep_stage.main(["--variant", "bn"])
        )
    return runs


def process_runs(scratch: Scratch) -> dict[str, Callable[[], Timing]]:
    """(c): the stage alone with two threads, and the stage beside one worker, one thread each."""
    return {
        "1 process × 2 threads, unit: variant": lambda: processes(scratch.project("variant"), 0, 2),
        "2 processes × 1 thread, unit: seed": lambda: processes(scratch.project("seed"), 1, 1),
    }


def best_of(runs: dict[str, Callable[[], Timing]], rounds: int) -> dict[str, Timing]:
    """Each run's best wall and CPU times over `rounds` interleaved rounds (a busy machine only slows a run down)."""
    best = dict.fromkeys(runs, Timing(float("inf"), float("inf")))
    for _ in range(rounds):
        for name, run in runs.items():
            timing = run()
            best[name] = Timing(min(best[name].wall_s, timing.wall_s), min(best[name].cpu_s, timing.cpu_s))
            print(f"  {name}: {timing.wall_s:.1f} s, {timing.cpu_s:.1f} s of CPU", file=sys.stderr)
    return best


def print_times(title: str, best: dict[str, Timing], grid_step_s: dict[str, float], target: int, steps: int) -> None:
    """The runs' times against the first, and each projected to `target` steps: the extra steps at the engine's step
    time of the run's cut (`grid_step_s`, the whole grid's)."""
    first = next(iter(best.values()))
    projected = {name: timing.wall_s + (target - steps) * grid_step_s[_cut_of(name)] for name, timing in best.items()}
    print(
        f"\n{title}\n\n| run | wall s | CPU s | CPU / first | wall at {target:,} steps, projected | ratio |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for name, timing in best.items():
        print(
            f"| {name} | {timing.wall_s:.1f} | {timing.cpu_s:.1f} | {timing.cpu_s / first.cpu_s:.3f} | "
            f"{projected[name]:,.0f} | {projected[name] / next(iter(projected.values())):.3f} |"
        )


def _cut_of(run: str) -> str:
    return next((cut for cut in sorted(CUTS, key=len, reverse=True) if run.endswith(cut)), "variant")


def engine_rate(members: int, orders: int, steps: int, threads: int) -> float:
    """Model-steps/s of the engine alone (bn) on a `members` model in `orders` data orders, in a fresh process of
    `threads` threads."""
    code = (
        "from benchmarks.bench_engine import *; import torch; cpu = torch.device('cpu'); "
        f"print(engine_model_steps_per_s(Configuration('bn', {members}, {orders}), random_split(50_000, cpu, 0), "
        f"random_split({BATCH}, cpu, 1), {steps}))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return float(
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    )


def parallel_rate(grid: MemberTable, steps: int) -> dict[str, float]:
    """(c) at steady state: the engine's model-steps/s, one process × 2 threads on the whole grid against 2
    processes × 1 thread at once, each on a unit of one seed."""
    (members, orders), (per_seed, _) = shapes(grid)["variant"], shapes(grid)["seed"]
    code = f"from benchmarks.bench_sweep import engine_rate; print(engine_rate({per_seed}, 1, {steps}, threads=1))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    whole = engine_rate(members, orders, steps, threads=2)  # alone: the pair must not start until it has ended
    pair = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    return {
        "1 process × 2 threads, the whole grid": whole,
        "2 processes × 1 thread, a seed's unit each": sum(float(process.communicate()[0]) for process in pair),
    }


def grid_steps(grid: MemberTable, steps: int, rounds: int) -> dict[str, dict[str, float]]:
    """(d) per cut: one step of the whole grid (each unit's step × units), its GEMMs alone and the engine's (bn,
    vanilla), in seconds; each the best of `rounds` interleaved rounds."""
    data, probe = random_split(50_000, torch.device("cpu"), seed=0), random_split(BATCH, torch.device("cpu"), seed=1)
    found = {name: {"units": len(grid.units(CUTS[name]))} for name in CUTS}
    for _ in range(rounds):
        for name, (members, orders) in shapes(grid).items():
            units, best = found[name]["units"], found[name]
            best["gemms"] = min(best.get("gemms", float("inf")), units * gemm_floor_s(members, orders))
            for variant in ("bn", "vanilla"):
                rate = engine_model_steps_per_s(Configuration(variant, members, orders), data, probe, steps)
                best[variant] = min(best.get(variant, float("inf")), units * members / rate)
    return found


def print_floor(grid: MemberTable, found: dict[str, dict[str, float]]) -> None:
    print(
        "\n(d) one step of the whole grid: its GEMMs alone (forward, ∂ℓ/∂u, fused weight steps) against the engine's"
        "\n\n| cut | unit: K, data orders | units | GEMMs alone: ms | GFLOP/s | engine bn: ms | engine vanilla: ms | "
        "GEMMs / engine (bn, vanilla) |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for name, (members, orders) in shapes(grid).items():
        step = found[name]
        gflops = len(grid) * matmul_flops_per_step() / step["gemms"] / 1e9
        print(
            f"| {name} | {members}, {orders} | {step['units']} | {1e3 * step['gemms']:.1f} | {gflops:.1f} | "
            f"{1e3 * step['bn']:.1f} | {1e3 * step['vanilla']:.1f} | {100 * step['gemms'] / step['bn']:.0f} %, "
            f"{100 * step['gemms'] / step['vanilla']:.0f} % |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="steps a member trains in each run (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions, best kept (default 3)")
    parser.add_argument("--seeds", type=int, help="seeds of the grid (default: params.yaml's sweep.seeds)")
    parser.add_argument("--test-images", type=int, default=1000, help="images of the test split (default 1000)")
    parser.add_argument("--threads", type=int, help="torch's threads in one process (default: torch's own)")
    args = parser.parse_args(argv)
    given = [count for count in (args.rounds, args.seeds, args.threads) if count is not None]
    if args.steps < 10 or min(given) < 1 or args.test_images < 100:
        parser.error(
            f"--steps must be >= 10, --rounds, --seeds and --threads >= 1 and --test-images >= 100, got "
            f"{args.steps}, {args.rounds}, {args.seeds}, {args.threads} and {args.test_images}"
        )
    if args.threads:  # on a machine busy with other work, a second thread mostly waits at every kernel's barrier
        torch.set_num_threads(args.threads)
    params = load_params()
    if args.seeds:
        params = with_overrides(params, {"sweep.seeds": args.seeds})
    grid, target = MemberTable.grid(params.sweep), params.sweep.steps
    print(
        f"machine: {machine()}\nGEMM 2048² float32: {machine_matmul_flops(torch.device('cpu')) / 1e9:.1f} GFLOP/s"
        f"\nthe sweep's grid: {len(grid)} members in {len(grid.data_seeds)} data orders, {args.steps:,} steps each; "
        f"best of {args.rounds} round(s)"
    )
    found = grid_steps(grid, min(args.steps, 200), args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as root:
        scratch = Scratch(Path(root), args)
        stages = best_of(stage_runs(scratch), args.rounds)
        spread = best_of(process_runs(scratch), args.rounds)
    bn_steps = {name: step["bn"] for name, step in found.items()}
    print_times("(a, b) the stage in one process, torch's own threads", stages, bn_steps, target, args.steps)
    print_times(
        "(c) processes × threads, each a fresh process, start-up included (projected as one process)",
        spread,
        bn_steps,
        target,
        args.steps,
    )
    measured = [parallel_rate(grid, min(args.steps, 200)) for _ in range(args.rounds)]
    rates = {name: max(rates[name] for rates in measured) for name in measured[0]}
    print("\n(c) at steady state, the engine alone (bn)\n\n| run | model-steps/s | ratio |\n| --- | ---: | ---: |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / next(iter(rates.values())):.3f} |")
    print_floor(grid, found)


if __name__ == "__main__":
    report_user_errors(main)
