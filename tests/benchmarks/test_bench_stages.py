"""benchmarks/bench_stages.py: the params each stage runs at, the phases read off what it printed, and each phase
projected from a shorter horizon to the default one."""

from __future__ import annotations

import pytest
import yaml

from benchmarks import bench_stages


@pytest.fixture
def full(repo_root) -> dict:
    return yaml.safe_load((repo_root / "params.yaml").read_text())


def test_every_horizon_and_checkpoint_interval_is_scaled_and_tuning_runs_one_batch(full):
    scaled = bench_stages.scaled_params(full, 0.1)
    assert scaled["train"]["steps"] == full["train"]["steps"] // 10 and scaled["sweep"]["steps"] == 500
    assert scaled["edge"]["checkpoint_every"] == full["edge"]["checkpoint_every"] // 10
    assert scaled["tune"]["trials"] == full["tune"]["trials_per_batch"]
    assert full["train"]["steps"] == 50_000  # the default is untouched


def test_the_phases_of_every_training_line_are_summed():
    printed = (
        "sweep-bn-seed0: 27 members × 500 steps in 3.0 s of training on cpu; steps 2.0 s, evaluation 1.0 s\n"
        "sweep-bn-seed1: 27 members × 500 steps in 3.5 s of training on cpu, resumed from step 250; "
        "steps 2.5 s, evaluation 1.0 s, export 0.5 s\n"
        "tune@bn: 9.0 s of training on cpu; steps 8.0 s, evaluation 1.0 s\n"
        "something else: 4 s\n"
    )
    assert bench_stages.phases(printed) == {"steps": 12.5, "evaluation": 3.0, "export": 0.5}


def test_each_phase_is_projected_by_what_it_scales_with(full):
    scaled = bench_stages.scaled_params(full, 0.1)
    measured = {"steps": 10.0, "evaluation": 2.0, "checkpoints": 0.5, "export": 3.0}
    projected = bench_stages.projection("train", measured, wall=20.0, scaled=scaled, full=full)
    assert projected["steps"] == pytest.approx(100.0) and projected["export"] == 3.0
    assert projected["checkpoints"] == pytest.approx(0.5)  # the interval scales with the horizon: as many
    assert 2.0 < projected["evaluation"] < 20.0  # the log-spaced evaluations do not grow with the horizon
    assert projected["start-up and the rest"] == pytest.approx(20.0 - 15.5)


def test_an_older_tree_gets_the_params_its_own_config_knows():
    new = {"train": {"steps": 500, "lr": 1.0}, "tracking": {"uri": "x", "system_metrics": True}, "figure1": {"n": 1}}
    old = {"train": {"steps": 50_000, "momentum": 0.9}, "tracking": {"uri": "old"}}
    assert bench_stages.known_to(new, old) == {"train": {"steps": 500, "momentum": 0.9}, "tracking": {"uri": "x"}}


def test_the_phases_are_set_side_by_side_only_where_the_ref_printed_them(capsys):
    found = {
        "train": {"ref": 9.0, "new": 6.0, "phases": {"steps": 4.0, "evaluation": 1.0}, "ref_phases": {"steps": 5.0}},
        "tune": {"ref": 3.0, "new": 2.0, "phases": {"steps": 1.5}, "ref_phases": {}},
    }
    bench_stages.print_phases_side_by_side(found, "main")
    printed = capsys.readouterr().out
    assert "| train@bn | 5.0 → 4.0 | 0.0 → 1.0 |" in printed and "tune@bn" not in printed
