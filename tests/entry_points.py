"""Every command-line entry point: its in-process `main` and arguments it accepts.

In-process, `main(argv)` is what `python -m module argv` runs.
"""

from __future__ import annotations

from benchmarks import bench_engine
from pipeline import download as download_stage
from pipeline import evaluate as evaluate_stage
from pipeline import preprocess as preprocess_stage
from pipeline import train as train_stage
from pipeline import tune as tune_stage
from src import tune

ENTRY_POINTS = {
    "pipeline.download": (download_stage.main, []),
    "pipeline.preprocess": (preprocess_stage.main, []),
    "pipeline.tune": (tune_stage.main, ["--variant", "bn"]),
    "src.tune": (tune.main, ["--variant", "bn"]),
    "pipeline.train": (train_stage.main, ["--variant", "vanilla"]),
    "pipeline.evaluate": (evaluate_stage.main, []),
    "benchmarks.bench_engine": (bench_engine.main, []),
}

# the ones that read params.yaml (the benchmark runs on fixed shapes)
PARAMS_READERS = {module: entry for module, entry in ENTRY_POINTS.items() if module != "benchmarks.bench_engine"}
