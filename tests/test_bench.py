"""The benchmark counts FLOPs right and prints one comparable row per configuration."""

from __future__ import annotations

import re

import pytest

from src import bench
from src.cli import report_user_errors


def test_matmul_flops_of_one_step_follow_the_layer_shapes():
    forward = 2 * 60 * (784 * 100 + 100 * 100 + 100 * 100 + 100 * 10)
    input_gradients = 2 * 60 * (100 * 100 + 100 * 100 + 100 * 10)  # none for the data
    assert bench.matmul_flops_per_step(60) == 2 * forward + input_gradients


def test_the_plain_baseline_is_the_papers_network():
    vanilla, batch_normed = bench.plain_model(batch_norm=False), bench.plain_model(batch_norm=True)
    assert sum(p.numel() for p in vanilla.parameters()) == 99_710
    assert [type(layer).__name__ for layer in batch_normed][:3] == ["Linear", "BatchNorm1d", "Sigmoid"]
    assert batch_normed[0].bias is None


def test_a_short_run_prints_a_row_per_configuration(capsys):
    bench.main(["--steps", "10", "--rounds", "1", "--members", "1", "2", "--device", "cpu"])
    rows = [line for line in capsys.readouterr().out.splitlines() if re.match(r"\| (vanilla|bn) \|", line)]
    # per variant: the plain loop, K=1, and K=2 with its own and a shared data order
    assert len(rows) == 2 * 4
    for row in rows:
        ratio, share = row.split("|")[6].strip(), row.split("|")[8].strip()
        assert float(ratio) > 0 and share.endswith("%")


def test_an_unavailable_device_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("torch.backends.mps.is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: bench.main(["--device", "cuda"]))
    assert exit_info.value.code == 2
    expected = "error: --device: 'cuda' is not available on this machine (usable here: auto, cpu)\n"
    assert capsys.readouterr().err == expected


def test_each_configuration_keeps_its_best_interleaved_round(monkeypatch, capsys):
    calls = []

    def measure(configuration, *_):
        calls.append(configuration)
        slow_round = len(calls) > 6  # two variants × (plain, K=2 own order, K=2 shared): the second round is slow
        base = 1000.0 if configuration[1] == bench.PLAIN else 3000.0
        return base / 10 if slow_round else base

    monkeypatch.setattr(bench, "_measure", measure)
    monkeypatch.setattr(bench, "machine_matmul_flops", lambda device: 100e9)
    bench.main(["--rounds", "2", "--members", "2", "--device", "cpu"])
    # rounds interleave: every configuration once, then every configuration again
    assert calls[:6] == calls[6:] and len(calls) == 12
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if re.match(r"\| (vanilla|bn) \|", line)]
    assert [row[5].strip() for row in rows] == ["1,000", "3,000", "3,000"] * 2
    assert {row[6].strip() for row in rows if "engine" in row[2]} == {"3.00"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "--rounds must be >= 1, got 0"),
        (["--members", "8", "0"], "--members must all be >= 1, got 8 0"),
        (["--steps", "5"], "--steps must be >= 10, got 5"),
    ],
)
def test_bad_arguments_are_one_clear_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: bench.main(argv))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(message)
