"""The benchmark counts FLOPs right and prints one comparable row per configuration."""

from __future__ import annotations

import re

import pytest
import torch

from benchmarks import bench_engine as bench
from src.cli import report_user_errors
from src.data.splits import Split
from src.engine.network import build_model
from src.engine.schedule import Schedule
from src.engine.trainer import Trainer, TrainingData


def test_matmul_flops_of_one_step_follow_the_layer_shapes():
    forward = 2 * 60 * (784 * 100 + 100 * 100 + 100 * 100 + 100 * 10)
    input_gradients = 2 * 60 * (100 * 100 + 100 * 100 + 100 * 10)  # none for the data
    assert bench.matmul_flops_per_step(60) == 2 * forward + input_gradients


def test_the_plain_baseline_is_the_papers_network():
    vanilla, batch_normed = bench.plain_model(batch_norm=False), bench.plain_model(batch_norm=True)
    assert sum(p.numel() for p in vanilla.parameters()) == 99_710
    assert [type(layer).__name__ for layer in batch_normed][:3] == ["Linear", "BatchNorm1d", "Sigmoid"]
    assert batch_normed[0].bias is None


def _rows(out: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in out.splitlines()
        if re.match(r"\| (vanilla|bn) \|", line)
    ]


def test_a_short_run_prints_a_row_per_configuration_whose_numbers_agree(capsys):
    bench.main(["--steps", "10", "--rounds", "1", "--members", "1", "2", "--device", "cpu"])
    out = capsys.readouterr().out
    rows = _rows(out)
    # per variant: the plain loop, K=1, and K=2 with its own and a shared data order
    assert [(row[0], row[2], row[3]) for row in rows] == [
        (variant, k, order)
        for variant in ("vanilla", "bn")
        for k, order in (
            ("1", "shuffled"),
            ("1", "own per member (seeds)"),
            ("2", "own per member (seeds)"),
            ("2", "shared (tuning)"),
        )
    ]
    peak = float(re.search(r"GEMM\): ([\d.]+) GFLOP/s", out).group(1))
    for variant in ("vanilla", "bn"):
        mine = [row for row in rows if row[0] == variant]
        plain = float(mine[0][4].replace(",", ""))
        for row in mine:
            rate = float(row[4].replace(",", ""))
            ratio = rate / plain  # the printed rates are rounded to whole steps/s: allow for that, and for 2 digits
            assert float(row[5]) == pytest.approx(ratio, abs=0.006 + ratio * (0.5 / rate + 0.5 / plain))
            gflops = rate * bench.matmul_flops_per_step() / 1e9
            # printed to 0.1 GFLOP/s from the unrounded rate: allow that rounding and the rate's own (±0.5 steps/s)
            assert float(row[6]) == pytest.approx(gflops, abs=0.05 + 0.5 * bench.matmul_flops_per_step() / 1e9 + 1e-9)
            share = int(row[7].removesuffix(" %"))
            # not bounded by 100 %, nor above 0 %: on a busy machine either side of the ratio may have been slowed
            assert share == pytest.approx(100 * gflops / peak, abs=1)


def test_from_k_8_the_engine_is_also_measured_without_its_fused_weight_step():
    rows = bench.configurations([1, 8])
    unfused = [row for row in rows if not row.fused]
    assert [(row.variant, row.members, row.orders) for row in unfused] == [
        ("vanilla", 8, None),
        ("vanilla", 8, 1),
        ("bn", 8, None),
        ("bn", 8, 1),
    ]
    assert all(row.loop.startswith("engine, autograd") for row in unfused)


def test_at_the_sweeps_member_count_the_sweeps_data_layout_is_measured_too():
    rows = [row for row in bench.configurations([81]) if row.variant == "bn" and row.fused]
    assert [row.order for row in rows] == [
        "shuffled",
        "own per member (seeds)",
        "shared (tuning)",
        "3 orders, one per seed (sweep)",
    ]


@pytest.mark.parametrize("variant", ["vanilla", "bn"])
def test_the_unfused_engine_trains_the_same_networks_as_the_engine(variant, one_torch_thread):
    def double(split):  # float64, so that the two orders of summation agree to far below any real difference
        return Split(images=split.images.double(), labels=split.labels)

    data, probe = (double(bench.random_split(n, torch.device("cpu"), seed)) for n, seed in ((600, 0), (60, 1)))
    schedule = Schedule(
        steps=20,
        batch_size=60,
        eval_steps=(0, 20),
        momentum=0.0,
        learning_rates=(0.5, 2.0),
        data_seeds=(0, 1),
        population_batches=2,
    )

    def trainer(fused: bool) -> Trainer:
        model = build_model(bench.BENCH_MODEL, variant, [0, 1], "cpu").double()
        return Trainer(model, TrainingData(data, probe), schedule, fused=fused)

    fused, unfused = trainer(fused=True), trainer(fused=False)
    fused.run(progress=False)
    unfused.run(progress=False)
    trained, untrained = unfused.model.state_dict(), build_model(bench.BENCH_MODEL, variant, [0, 1], "cpu")
    for name, expected in fused.model.state_dict().items():
        torch.testing.assert_close(trained[name], expected, rtol=1e-9, atol=1e-11, msg=name)
    assert not torch.equal(trained["hidden.0.weight"].float(), untrained.hidden[0].weight)


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
        base = 1000.0 if configuration.members == bench.PLAIN else 3000.0
        return base / 10 if slow_round else base

    monkeypatch.setattr(bench, "_measure", measure)
    monkeypatch.setattr(bench, "machine_matmul_flops", lambda device: 100e9)
    bench.main(["--rounds", "2", "--members", "2", "--device", "cpu"])
    # rounds interleave: every configuration once, then every configuration again
    assert calls[:6] == calls[6:] and len(calls) == 12
    rows = _rows(capsys.readouterr().out)
    assert [row[4] for row in rows] == ["1,000", "3,000", "3,000"] * 2
    assert {row[5] for row in rows if row[1] == "engine"} == {"3.00"}


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
