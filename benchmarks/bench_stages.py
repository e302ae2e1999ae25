"""Benchmark: each training stage whole, a git ref's code against this tree's, side by side in one run, and where this
tree's stage spends its wall time (training steps, evaluation, percentile tracking, population statistics,
checkpoints, MLflow logging, scoring, export, and start-up: the rest).

    python -m benchmarks.bench_stages --ref main                 # at a tenth of the default horizons
    python -m benchmarks.bench_stages --ref main --scale 1       # the default params whole (about an hour here)

Each stage runs as `dvc repro` runs it (`python -m pipeline.<stage> --variant bn`, a fresh process) in a scratch copy
of each tree, on the real MNIST splits (from $MNIST_MIRROR or data/raw), at the default params with every horizon
(train.steps, sweep.steps, tune.steps) and checkpoint interval multiplied by --scale; tune@ runs one batch of trials.
The trees alternate stage by stage, so a busy machine slows both alike. At a scale below 1 each phase of this tree is
also projected to the default horizon: the steps by the steps, evaluation and percentiles by the number of
evaluations, checkpoints and logging by the number of checkpoints, the rest as measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks import trees
from benchmarks.bench_sweep import machine
from src.cli import OneLineParser, report_user_errors
from src.config import load_params
from src.engine.clock import STAGE_PHASES, TRAINING_PHASES
from src.engine.schedule import eval_schedule

STAGES = ("tune", "train", "sweep", "edge")  # in the order they run: edge@ reads the sweep's final.csv
PHASE_LINE = re.compile(r"[\d.]+ s of training on \S+?(?:, resumed from step [\d,]+)?; (?P<phases>.*)$")


def scaled_params(raw: dict, scale: float) -> dict:
    """The default params with every horizon and checkpoint interval times `scale`, and one batch of trials."""
    raw = yaml.safe_load(yaml.safe_dump(raw))
    for section in ("train", "sweep", "tune"):
        raw[section]["steps"] = max(int(raw[section]["steps"] * scale), raw[section]["eval_every"])
    for section in ("train", "sweep", "edge"):
        raw[section]["checkpoint_every"] = max(int(raw[section]["checkpoint_every"] * scale), 1)
    raw["tune"]["trials"] = raw["tune"]["trials_per_batch"]
    return raw


def known_to(raw: dict, own: dict) -> dict:
    """`raw`'s values for the keys a tree's own params.yaml (`own`) has, and `own`'s where `raw` lacks one: an older
    ref's strict config rejects keys added since, and a key it needs that was since removed keeps its old value."""
    return {
        key: known_to(raw[key], value)
        if isinstance(value, dict) and isinstance(raw.get(key), dict)
        else raw.get(key, value)
        for key, value in own.items()
    }


def prepare(tree: Path, data: Path, raw_params: dict) -> None:
    """A scratch tree ready to run the stages: the splits, the scaled params as far as the tree knows them, the
    committed tuned rates."""
    (tree / "data").mkdir(exist_ok=True)
    shutil.copytree(data, tree / "data" / "processed", dirs_exist_ok=True)
    own = yaml.safe_load((tree / "params.yaml").read_text())
    (tree / "params.yaml").write_text(yaml.safe_dump(known_to(raw_params, own), sort_keys=False))
    for variant in ("vanilla", "bn"):
        best = trees.REPO / "results" / "tune" / variant / "best.json"
        (tree / "results" / "tune" / variant).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, tree / "results" / "tune" / variant / "best.json")


def processed_splits(root: Path) -> Path:
    """data/processed made once from the real MNIST files by this tree's download and preprocess stages."""
    work = root / "splits"
    with trees.working_copy() as tree:
        shutil.copytree(tree, work)
    for stage in ("download", "preprocess"):
        subprocess.run([sys.executable, "-m", f"pipeline.{stage}"], cwd=work, check=True, capture_output=True)
    return work / "data" / "processed"


def run_stage(tree: Path, stage: str, variant: str) -> tuple[float, str]:
    """The stage's wall time in a fresh process of `tree`'s code, and what it wrote on stderr."""
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(tree)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", f"pipeline.{stage}", "--variant", variant],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if completed.returncode:
        raise RuntimeError(f"{tree.name}: {stage}@{variant}: {completed.stderr.strip().splitlines()[-1:]}")
    return wall, completed.stderr + completed.stdout


def phases(output: str) -> dict[str, float]:
    """The phase seconds of every training line a stage printed, summed (the sweep prints one line per unit)."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        matched = PHASE_LINE.search(line)
        if matched:
            for part in matched["phases"].split(", "):
                name, seconds = part.rsplit(" ", 2)[0], float(part.rsplit(" ", 2)[1])
                found[name] = found.get(name, 0.0) + seconds
    return found


def projection(stage: str, measured: dict[str, float], wall: float, scaled: dict, full: dict) -> dict[str, float]:
    """Each phase of `stage` projected from the scaled params to the full ones, and the rest of the wall as is."""
    section = {"tune": "tune", "train": "train", "sweep": "sweep", "edge": "sweep"}[stage]
    checkpoints = {"tune": None, "train": "train", "sweep": "sweep", "edge": "edge"}[stage]

    def evals(raw: dict) -> int:
        part = raw[section]
        return len(eval_schedule(part["steps"], part["eval_every"], part["evals_per_decade"]))

    def count(raw: dict) -> int:
        return raw[section]["steps"] // raw[checkpoints]["checkpoint_every"] if checkpoints else 0

    factors = {
        "steps": full[section]["steps"] / scaled[section]["steps"],
        "evaluation": evals(full) / evals(scaled),
        "percentiles": evals(full) / evals(scaled),
        "checkpoints": count(full) / max(count(scaled), 1),
        "logging": count(full) / max(count(scaled), 1),
    }
    projected = {name: seconds * factors.get(name, 1.0) for name, seconds in measured.items()}
    projected["start-up and the rest"] = wall - sum(measured.values())
    return projected


def print_phases_side_by_side(found: dict, ref: str) -> None:
    """Each phase as measured in both trees, where the ref prints its phases too (the phase clock came in 60b4ca8)."""
    names = [*TRAINING_PHASES, *STAGE_PHASES]
    rows = [(stage, run) for stage, run in found.items() if run["ref_phases"]]
    if not rows:
        return
    print(f"\neach phase as measured, s: {ref} → this tree\n")
    print("| stage | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
    for stage, run in rows:
        cells = [f"{run['ref_phases'].get(name, 0.0):.1f} → {run['phases'].get(name, 0.0):.1f}" for name in names]
        print(f"| {stage}@bn | " + " | ".join(cells) + " |")


def print_tables(found: dict, ref: str, scaled: dict, full: dict) -> None:
    print(f"\n| stage | {ref}: wall s | this tree: wall s | this / {ref} | this tree: steps s | wall / steps |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for stage, run in found.items():
        steps = run["phases"].get("steps")
        per_steps = f"{run['new'] / steps:.2f}" if steps else "n/a"
        print(
            f"| {stage}@bn | {run['ref']:.1f} | {run['new']:.1f} | {run['new'] / run['ref']:.2f} | "
            f"{steps or 0:.1f} | {per_steps} |"
        )
    print_phases_side_by_side(found, ref)
    names = [*TRAINING_PHASES, *STAGE_PHASES, "start-up and the rest"]
    print("\nthis tree's wall time by phase, s (projected to the default horizon: wall / steps there)\n")
    print("| stage | " + " | ".join(names) + " | wall | wall / steps |\n|---|" + "---:|" * (len(names) + 2))
    for stage, run in found.items():
        projected = projection(stage, run["phases"], run["new"], scaled, full)
        wall = sum(projected.values())
        steps = projected.get("steps")
        ratio = f"{wall / steps:.2f}" if steps else "n/a"
        cells = [f"{projected.get(name, 0.0):.1f}" for name in names]
        print(f"| {stage}@bn | " + " | ".join(cells) + f" | {wall:.1f} | {ratio} |")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="main", help="the git ref whose stages are today's (default main)")
    parser.add_argument("--scale", type=float, default=0.1, help="horizons times this (default 0.1)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    full = yaml.safe_load((trees.REPO / "params.yaml").read_text())
    load_params(trees.REPO / "params.yaml")  # a bad params file is one line here, not a failed stage later
    scaled = scaled_params(full, args.scale)
    found: dict[str, dict] = {}
    with trees.checkout(args.ref) as ref_tree, trees.working_copy() as new_tree:
        data = processed_splits(new_tree.parent)
        for tree in (ref_tree, new_tree):
            prepare(tree, data, scaled)
        for stage in [stage for stage in STAGES if stage in args.stages]:
            ref_wall, ref_output = run_stage(ref_tree, stage, "bn")
            new_wall, output = run_stage(new_tree, stage, "bn")
            found[stage] = {
                "ref": ref_wall,
                "new": new_wall,
                "phases": phases(output),
                "ref_phases": phases(ref_output),
            }
            print(
                f"  {stage}@bn: {trees.describe(args.ref)} {ref_wall:.1f} s, this tree {new_wall:.1f} s",
                file=sys.stderr,
            )
    print(
        f"machine: {machine()}\nhorizons × {args.scale:g} (train.steps {scaled['train']['steps']:,}, sweep.steps "
        f"{scaled['sweep']['steps']:,}, tune.steps {scaled['tune']['steps']:,} × {scaled['tune']['trials']} trials)"
    )
    print_tables(found, trees.describe(args.ref), scaled, full)


if __name__ == "__main__":
    report_user_errors(main)
