"""IDX files are read into the array their header describes, or rejected with one error naming file and defect."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from src.data.idx import IdxError, read_idx
from src.errors import StudyError

IMAGES = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
# a well-formed header for IMAGES: two zero bytes, dtype 0x08, 3 dims, then 3, 2, 2 as big-endian uint32
HEADER = bytes([0, 0, 0x08, 3]) + (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
GOOD = HEADER + IMAGES.tobytes()


@pytest.mark.parametrize("name", ["images-idx3-ubyte.gz", "images-idx3-ubyte"])
def test_a_good_file_gives_the_array_its_header_describes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(GOOD) if name.endswith(".gz") else GOOD)

    array = read_idx(path)

    assert array.dtype == np.uint8 and array.shape == (3, 2, 2)
    np.testing.assert_array_equal(array, IMAGES)
    assert array.flags.writeable


def test_one_dimensional_labels_are_read(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 1]) + (5).to_bytes(4, "big") + labels.tobytes()))

    np.testing.assert_array_equal(read_idx(path), labels)


def _gzip_with_bad_crc(content: bytes) -> bytes:
    packed = bytearray(gzip.compress(content))
    packed[-8] ^= 0xFF  # the CRC-32 of the uncompressed data sits in the trailer's first four bytes
    return bytes(packed)


@pytest.mark.parametrize(
    ("content", "defect"),
    [
        (b"\x01\x02" + GOOD[2:], r"not an IDX file: the magic number starts with 0x0102, expected 0x0000"),
        (GOOD[:2] + b"\x0d" + GOOD[3:], r"dtype code 0x0d \(float32\) is not supported: expected 0x08"),
        (GOOD[:2] + b"\x42" + GOOD[3:], r"dtype code 0x42 \(not an IDX dtype\) is not supported"),
        (GOOD[:3] + b"\x00", r"the header declares 0 dimensions"),
        (GOOD[:2], r"truncated: 2 bytes, shorter than the 4-byte IDX magic number"),
        (GOOD[:9], r"truncated: 9 bytes, shorter than the 16-byte header of 3 dims"),
        (GOOD[:-1], r"truncated: 27 bytes, but a 3x2x2 array needs 28"),
        (GOOD + b"\x00\x00", r"oversized: 30 bytes, 2 more than a 3x2x2 array"),
        (gzip.compress(GOOD)[:-12], r"truncated gzip: the data ends before the gzip end-of-stream marker"),
        (_gzip_with_bad_crc(GOOD), r"corrupt gzip: CRC check failed"),
        (b"\x1f\x8b" + b"\x00" * 30, r"corrupt gzip: "),
    ],
    ids=[
        "wrong-magic",
        "float-dtype",
        "unknown-dtype",
        "no-dims",
        "shorter-than-magic",
        "truncated-header",
        "truncated-data",
        "oversized",
        "truncated-gzip",
        "gzip-crc",
        "garbage-gzip",
    ],
)
def test_a_bad_file_is_one_error_naming_the_file_and_the_defect(tmp_path, content, defect):
    path = tmp_path / "bad-idx3-ubyte.gz"
    path.write_bytes(content)

    with pytest.raises(IdxError, match=defect) as caught:
        read_idx(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(IdxError, match=r"absent\.gz: no such file"):
        read_idx(tmp_path / "absent.gz")


def test_idx_errors_are_user_errors_so_a_stage_reports_them_in_one_line():
    assert issubclass(IdxError, StudyError)
