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
    bench.main(["--steps", "10", "--members", "1", "2", "--device", "cpu"])
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
