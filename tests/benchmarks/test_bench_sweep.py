"""The sweep benchmark: its baseline is today's single-model sweep, which the queue's default cut reproduces byte for
byte; its GEMM floor and unit shapes follow the cut."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from benchmarks import bench_sweep as bench
from pipeline import sweep as sweep_stage
from src.cli import report_user_errors
from src.training.members import MemberTable
from tests import synthetic
from tests.training.test_members import SWEEP


def _project(root, repo_root):
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["sweep"].update(
        lr_min=0.1,
        lr_max=10.0,
        lrs_per_decade=1,
        init_stds=[0.1, 1.0],
        seeds=2,
        steps=40,
        eval_every=20,
        evals_per_decade=0,
        checkpoint_every=20,
    )
    raw["model"].update(population_batches=3, hidden_units=16)
    raw["train"].update(tracked_units=2, percentile_examples=50, device="cpu")
    raw["evaluate"]["figure1_lrs"] = [1.0]
    raw["edge"]["init_stds"] = [0.1]
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    synthetic.write_processed(root / "data" / "processed")
    return root


def _outputs(project) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (project / "results/sweep/bn").iterdir()}


def test_the_queues_default_cut_writes_what_todays_single_model_sweep_writes(
    tmp_path, repo_root, _migrated_mlflow_store, one_torch_thread
):
    today, queue = _project(tmp_path / "today", repo_root), _project(tmp_path / "queue", repo_root)
    for project in (today, queue):
        (project / "mlflow.db").write_bytes(_migrated_mlflow_store.read_bytes())

    bench.in_process(today, lambda: bench.single_model_sweep("bn"))
    bench.in_process(queue, lambda: sweep_stage.main(["--variant", "bn"]))

    assert _outputs(queue) == _outputs(today)
    assert len(_outputs(today)) == 5


def test_each_cut_is_measured_at_its_units_shape():
    grid = MemberTable.grid(SWEEP)  # 3 rates × 2 init stds × 2 seeds
    assert bench.shapes(grid) == {"variant": (12, 2), "seed": (6, 1), "seed_and_rates 3": (6, 1)}


def test_the_gemm_floor_grows_with_the_members():
    small, large = bench.gemm_floor_s(2, 1, repeats=3), bench.gemm_floor_s(64, 2, repeats=3)
    assert 0 < small < large


def test_the_machine_line_names_the_cpu_threads_and_load():
    line = bench.machine()
    assert "CPUs, flags" in line and "threads; load average" in line


@pytest.mark.parametrize(
    "argv", [["--steps", "5"], ["--seeds", "0"], ["--test-images", "10"], ["--rounds", "0"], ["--threads", "0"]]
)
def test_bad_arguments_are_one_clear_line(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        report_user_errors(lambda: bench.main(argv))
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --steps must be >= 10, --rounds, --seeds and --threads >= 1 and --test-images")
