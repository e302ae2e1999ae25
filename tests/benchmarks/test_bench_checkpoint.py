"""benchmarks/bench_checkpoint.py: the durable row flushes and the other does not, each saves a checkpoint that loads
back, and the table has a row per stage with params.yaml's member count."""

from __future__ import annotations

import os

import torch

from benchmarks import bench_checkpoint
from src.training.checkpoint import Checkpoint
from tests.processes import write_params


def test_only_the_durable_save_flushes_and_both_save_a_checkpoint_that_loads(tmp_path, monkeypatch):
    flushed = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: flushed.append(descriptor) or fsync(descriptor))
    payload = {"trainer": {"weights": torch.arange(6.0)}}
    for durable, flushes in ((False, 0), (True, 2)):  # durable: the file, then its directory
        flushed.clear()
        assert bench_checkpoint.save_seconds(payload, tmp_path / "unit.pt", durable) > 0
        assert len(flushed) == flushes, f"durable={durable}"
        torch.testing.assert_close(Checkpoint(tmp_path / "unit.pt", {}).load(), payload)


def test_the_table_has_a_row_per_stage_with_its_members(tmp_path, monkeypatch, capsys):
    def small(raw: dict) -> None:
        raw["model"]["hidden_units"] = 8
        raw["train"].update(seeds=2, steps=20, checkpoint_every=10)
        raw["sweep"].update(lr_min=0.1, lr_max=1.0, lrs_per_decade=1, init_stds=[0.1], seeds=3, steps=20)
        raw["evaluate"]["figure1_lrs"] = [1.0]

    write_params(tmp_path, small)
    monkeypatch.chdir(tmp_path)
    bench_checkpoint.main(["--rounds", "2", "--directory", "scratch"])
    rows = [line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row[:2] for row in rows[2:]] == [["train@", "2"], ["sweep@", "6"]]  # 2 seeds; 2 rates × 1 init × 3 seeds
    assert os.listdir(tmp_path / "scratch") == [], "the benchmark's checkpoints were left behind"
