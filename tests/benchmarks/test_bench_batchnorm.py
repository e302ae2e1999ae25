"""benchmarks/bench_batchnorm.py: every row computes the paper's layer, and the table names every implementation at
each K with its ratio to the paper's layer."""

from __future__ import annotations

import torch

from benchmarks import bench_batchnorm


def test_every_row_computes_what_the_papers_layer_computes():
    for members in bench_batchnorm.MEMBERS:
        outputs = []
        for forward, x, _ in bench_batchnorm.cases(members).values():
            y = forward(x)
            if members > 1 and y.dim() == 2:  # (c): the members side by side, (B, K·F)
                y = y.view(bench_batchnorm.BATCH, members, -1).transpose(0, 1)
            outputs.append(y)
        for y in outputs[1:]:
            torch.testing.assert_close(y, outputs[0], rtol=1e-4, atol=1e-4)


def test_the_table_has_a_row_per_implementation_and_the_papers_layer_is_the_unit(capsys):
    bench_batchnorm.main(["--rounds", "1", "--seconds", "0.01", "--threads", "1"])
    rows = [line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| (")]
    assert [row[0] for row in rows] == [
        "(a) BatchNorm: custom Function",
        "(b) autograd composition",
        "(c) nn.BatchNorm1d(K·F)",
        "(c') K × nn.BatchNorm1d(F), looped",
    ]
    assert rows[0][2] == rows[0][4] == "1.00"
