"""Every command-line entry point: its in-process `main` and arguments it accepts.

In-process, `main(argv)` is what `python -m module argv` runs. test_cli.py holds this list equal to the modules under
src/, pipeline/ and benchmarks/ that run as a program.
"""

from __future__ import annotations

from benchmarks import (
    bench_batchnorm,
    bench_checkpoint,
    bench_defaults,
    bench_engine,
    bench_probes,
    bench_stages,
    bench_step,
    bench_sweep,
)
from pipeline import download as download_stage
from pipeline import edge as edge_stage
from pipeline import evaluate as evaluate_stage
from pipeline import preprocess as preprocess_stage
from pipeline import sweep as sweep_stage
from pipeline import train as train_stage
from pipeline import tune as tune_stage
from src.analysis import simulation
from src.metrics import __main__ as metrics_cli
from src.sweep import __main__ as sweep_cli
from src.tune import __main__ as tune_cli

ENTRY_POINTS = {
    "pipeline.download": (download_stage.main, []),
    "pipeline.preprocess": (preprocess_stage.main, []),
    "pipeline.tune": (tune_stage.main, ["--variant", "bn"]),
    "src.tune": (tune_cli.main, ["--variant", "bn"]),
    "pipeline.train": (train_stage.main, ["--variant", "vanilla"]),
    "pipeline.sweep": (sweep_stage.main, ["--variant", "bn"]),
    "src.sweep": (sweep_cli.main, ["--worker", "--variant", "bn"]),
    "pipeline.edge": (edge_stage.main, ["--variant", "bn"]),
    "pipeline.evaluate": (evaluate_stage.main, []),
    "src.metrics": (metrics_cli.main, []),
    "src.analysis.simulation": (simulation.main, []),
    "benchmarks.bench_engine": (bench_engine.main, []),
    "benchmarks.bench_batchnorm": (bench_batchnorm.main, []),
    "benchmarks.bench_sweep": (bench_sweep.main, []),
    "benchmarks.bench_defaults": (bench_defaults.main, []),
    "benchmarks.bench_step": (bench_step.main, []),
    "benchmarks.bench_stages": (bench_stages.main, []),
    "benchmarks.bench_checkpoint": (bench_checkpoint.main, []),
    "benchmarks.bench_probes": (bench_probes.main, []),
}

# the ones that read params.yaml: the engine's benchmarks run on fixed shapes (bench_sweep reads the sweep's grid),
# bench_stages runs the repository's own params in scratch trees, src.metrics reads only the metrics file (its bad
# input is tested in test_metrics.py), and src.analysis.simulation simulates from fixed shapes
NO_PARAMS = (
    "benchmarks.bench_engine",
    "benchmarks.bench_batchnorm",
    "benchmarks.bench_stages",
    "src.metrics",
    "src.analysis.simulation",
)
PARAMS_READERS = {module: entry for module, entry in ENTRY_POINTS.items() if module not in NO_PARAMS}
