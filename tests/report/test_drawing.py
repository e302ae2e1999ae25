"""The figures draw what they are given: the right numbers, on the right scales, with legends clear of the data; and
the report's figures are drawn from the comparison."""

from __future__ import annotations

import struct

from src.report import figures
from src.report.drawing import save
from tests.report.drawn import ACCURACY, BOTH, STEPS


def test_save_writes_a_whole_png_of_a_readable_size_and_no_temporary_file(tmp_path):
    path = tmp_path / "figures" / "test_accuracy.png"
    save(figures.accuracy_figure(dict.fromkeys(BOTH, STEPS), ACCURACY), path)
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    width, height = struct.unpack(">II", header[16:24])
    assert 600 <= width <= 4000 and 400 <= height <= 3000, f"{width}×{height}"
    assert [p.name for p in path.parent.iterdir()] == ["test_accuracy.png"], "a temporary file was left behind"
