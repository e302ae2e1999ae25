"""The defaults benchmark reads today's shapes from params and prints rows whose projections add up."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_defaults as bench
from src.cli import report_user_errors
from src.config import load_params


def test_todays_shapes_come_from_params(repo_root):
    params = load_params(repo_root / "params.yaml")
    shapes = bench.shapes_now(params)
    grid_members = params.sweep.seeds * len(params.sweep.init_stds) * len(params.sweep.learning_rates)
    assert shapes["train@"] == (params.train.seeds, params.train.seeds, params.train.steps)
    assert shapes["sweep@"] == (grid_members, params.sweep.seeds, params.sweep.steps)
    edge = params.sweep.seeds * len(params.edge.init_stds) * params.edge.rates_between
    assert shapes["edge@"] == (edge, params.sweep.seeds, params.sweep.steps)


def test_each_stage_is_projected_as_its_member_steps_over_its_rate(capsys):
    plans = {"previous": {"sweep@": bench.Shape(80, 4, 1_000)}, "today": {"sweep@": bench.Shape(200, 10, 500)}}
    rates = {
        ("previous", "sweep@", "vanilla"): 4_000.0,
        ("previous", "sweep@", "bn"): 2_000.0,
        ("today", "sweep@", "vanilla"): 5_000.0,
        ("today", "sweep@", "bn"): 2_500.0,
    }
    totals = bench.print_table(plans, rates)
    assert totals == {"previous": 80_000 / 4_000 + 80_000 / 2_000, "today": 100_000 / 5_000 + 100_000 / 2_500}
    assert "| today | sweep@ | 200, 10 | 500 | 5,000, 20 | 2,500, 40 |" in capsys.readouterr().out


def test_a_short_run_prints_a_row_per_stage_and_the_ratio_of_its_totals(monkeypatch, capsys):
    small = {"train@": bench.Shape(2, 2, 100), "sweep@": bench.Shape(4, 2, 50)}
    monkeypatch.setattr(bench, "PREVIOUS", small)
    monkeypatch.setattr(bench, "shapes_now", lambda params: {**small, "edge@": bench.Shape(2, 1, 50)})
    bench.main(["--steps", "10", "--rounds", "1"])
    out = capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if re.match(r"\| (previous|today) \|", line)]
    assert [(row[0].strip(), row[1].strip()) for row in rows] == [
        ("previous", "train@"),
        ("previous", "sweep@"),
        ("today", "train@"),
        ("today", "sweep@"),
        ("today", "edge@"),
    ]
    assert re.search(r"previous defaults [\d,]+ s, today's [\d,]+ s: \d+\.\d\d×", out)


@pytest.mark.parametrize("argv", [["--steps", "5"], ["--rounds", "0"]])
def test_bad_arguments_are_one_clear_line(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        report_user_errors(lambda: bench.main(argv))
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --steps must be >= 10 and --rounds >= 1, got")
