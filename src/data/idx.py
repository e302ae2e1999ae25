"""IDX, MNIST's file format, read with validation: a damaged file is one clear error, never a wrong array.

An IDX file is a header — two zero bytes, a dtype code, the number of dimensions, then each dimension
as a big-endian uint32 — followed by the elements in C order. MNIST ships it gzipped.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from src.errors import StudyError

UNSIGNED_BYTE = 0x08
# every code the format defines, so an unsupported one is named rather than shown as a number alone
DTYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
GZIP_MAGIC = b"\x1f\x8b"


class IdxError(StudyError):
    """An IDX file (or its gzip wrapping) is not what it claims to be."""


def read_idx(path: str | Path) -> np.ndarray:
    """The unsigned-byte array stored in the IDX file at `path` (gzipped or not), shaped as its header says."""
    path = Path(path)
    try:
        return parse_idx(decompressed(path.read_bytes()))
    except FileNotFoundError:
        raise IdxError(f"{path}: no such file") from None
    except OSError as error:  # a directory in its place, no permission, a failing disk
        raise IdxError(f"{path}: cannot read ({error.strerror or error})") from None
    except IdxError as error:
        raise IdxError(f"{path}: {error}") from None


def decompressed(content: bytes) -> bytes:
    """`content` un-gzipped if it starts with the gzip magic bytes, else as it is."""
    if not content.startswith(GZIP_MAGIC):
        return content
    try:
        return gzip.decompress(content)
    except EOFError:
        raise IdxError("truncated gzip: the data ends before the gzip end-of-stream marker") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise IdxError(f"corrupt gzip: {error}") from None


def parse_idx(content: bytes) -> np.ndarray:
    """The array held by the uncompressed IDX bytes `content`; any mismatch with the header raises IdxError."""
    if len(content) < 4:
        raise IdxError(f"truncated: {len(content)} bytes, shorter than the 4-byte IDX magic number")
    zeros, dtype_code, dims = content[:2], content[2], content[3]
    if zeros != b"\x00\x00":
        raise IdxError(f"not an IDX file: the magic number starts with 0x{zeros.hex()}, expected 0x0000")
    if dtype_code != UNSIGNED_BYTE:
        name = DTYPE_NAMES.get(dtype_code, "not an IDX dtype")
        raise IdxError(f"dtype code 0x{dtype_code:02x} ({name}) is not supported: expected 0x08 (unsigned byte)")
    if dims == 0:
        raise IdxError("the header declares 0 dimensions, expected at least 1")
    header_size = 4 + 4 * dims
    if len(content) < header_size:
        raise IdxError(f"truncated: {len(content)} bytes, shorter than the {header_size}-byte header of {dims} dims")
    shape = tuple(int(size) for size in np.frombuffer(content, dtype=">u4", count=dims, offset=4))
    expected = header_size + int(np.prod(shape))
    shape_text = "x".join(map(str, shape))
    if len(content) < expected:
        raise IdxError(f"truncated: {len(content)} bytes, but a {shape_text} array needs {expected}")
    if len(content) > expected:
        raise IdxError(f"oversized: {len(content)} bytes, {len(content) - expected} more than a {shape_text} array")
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape).copy()
