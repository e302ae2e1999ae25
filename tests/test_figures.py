"""Every figure renders to a real PNG of a readable size, also from awkward inputs (NaN, one seed, failed trials)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from src import figures
from src.evaluate import Curves, Percentiles, Trial

STEPS = np.arange(0, 5001, 500)


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def _assert_sane_png(path: Path) -> None:
    width, height = _png_size(path)
    assert path.stat().st_size > 10_000, f"{path}: {path.stat().st_size} bytes, expected a drawn figure"
    assert 600 <= width <= 3000 and 400 <= height <= 2000, f"{path}: {width}×{height}"
    assert not list(path.parent.glob(".*.tmp")), "a temporary file was left behind"


def _curves(seeds: int, time_constant: float) -> Curves:
    accuracy = np.array([1 - 0.9 * np.exp(-STEPS / (time_constant * (1 + 0.1 * s))) for s in range(seeds)])
    return Curves(
        steps=STEPS, seeds=list(range(seeds)), accuracy=accuracy, loss=1 - accuracy, diverged=np.zeros(seeds, bool)
    )


def test_figure_1a_renders_both_variants(tmp_path):
    path = tmp_path / "test_accuracy.png"
    figures.plot_test_accuracy({"vanilla": _curves(3, 1500), "bn": _curves(3, 300)}, path)
    _assert_sane_png(path)


def test_figure_1a_renders_one_seed_and_a_seed_missing_evaluations(tmp_path):
    gappy = _curves(2, 1500)
    gappy.accuracy[1, 4:] = np.nan  # a seed with no evaluations after step 1500
    path = tmp_path / "test_accuracy.png"
    figures.plot_test_accuracy({"vanilla": gappy, "bn": _curves(1, 300)}, path)
    _assert_sane_png(path)


def test_figure_1bc_renders_one_panel_per_variant(tmp_path):
    drifting = Percentiles(STEPS, -1 - STEPS / 2000, -STEPS / 3000, 1 + STEPS / 5000)
    still = Percentiles(STEPS, np.full(STEPS.shape, -1.0), np.zeros(STEPS.shape), np.ones(STEPS.shape))
    path = tmp_path / "sigmoid_inputs.png"
    figures.plot_sigmoid_inputs({"vanilla": drifting, "bn": still}, path, seed=0, unit=0)
    width, height = _png_size(path)
    _assert_sane_png(path)
    assert width > height  # two panels side by side


def test_the_learning_rate_search_renders_every_kind_of_trial(tmp_path):
    trials = [
        Trial(0, 0.01, 0.91, "COMPLETE", False),
        Trial(1, 0.3, 0.95, "PRUNED", False),
        Trial(2, 30.0, float("nan"), "PRUNED", True),
        Trial(3, 3.0, None, "FAIL", False),
        Trial(4, 1.0, None, "PRUNED", False),
        Trial(5, 10.0, 0.0, "COMPLETE", True),
    ]
    path = tmp_path / "lr_search.png"
    figures.plot_lr_search({"vanilla": trials, "bn": trials[:2]}, {"vanilla": 0.3, "bn": None}, path)
    _assert_sane_png(path)


def test_the_confusion_matrices_render(tmp_path):
    confusion = np.diag(np.full(10, 480)) + np.random.default_rng(0).integers(0, 4, (10, 10))
    path = tmp_path / "confusion.png"
    figures.plot_confusion({"vanilla": confusion, "bn": confusion.T}, path)
    _assert_sane_png(path)
