"""The four MNIST files, fetched from the first source that serves them intact.

A source is a directory, a file:// URL or an http(s) URL holding the files under their usual names.
Each file is verified by the SHA-256 of its decompressed bytes, so any gzip of the real data passes,
and it lands in its directory only once verified: a failed or interrupted fetch leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse

from tqdm import tqdm

from src.atomic import atomic_path
from src.data.idx import IdxError, decompressed
from src.errors import StudyError

# SHA-256 of the decompressed bytes (../shared/mnist/README.md), keyed by the names the mirrors use
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
ALREADY_PRESENT = "already present"
# some mirrors refuse urllib's default agent
USER_AGENT = "bn-mnist-study"
CHUNK_BYTES = 1 << 20


class DownloadError(StudyError):
    """No source served a file intact."""


class _SourceFailed(Exception):
    """One source could not deliver one file; the message is the reason, for the final report."""


def mirror_list(mirrors: Sequence[str], override: str | None) -> list[str]:
    """The sources in the order they are tried: `override` (MNIST_MIRROR) first when set, then `mirrors`."""
    return [override, *mirrors] if override else list(mirrors)


def download_mnist(
    raw_dir: Path,
    sources: Sequence[str],
    timeout_s: float,
    *,
    checksums: Mapping[str, str] = MNIST_SHA256,
    progress: bool | None = None,
) -> dict[str, str]:
    """Make `raw_dir` hold every file named in `checksums`, verified; a verified file already there is kept.

    Returns where each file came from (ALREADY_PRESENT for kept ones). Raises DownloadError, naming
    every source tried and why it failed, when no source serves a file intact.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    return {
        name: fetch_verified(name, Path(raw_dir) / name, sources, timeout_s, sha256, progress)
        for name, sha256 in checksums.items()
    }


def fetch_verified(
    name: str, target: Path, sources: Sequence[str], timeout_s: float, sha256: str, progress: bool
) -> str:
    """Put file `name` at `target` from the first source whose copy verifies; returns that copy's location."""
    # a damaged local copy is fetched again like a missing one
    if target.exists() and _problem(target, sha256) is None:
        return ALREADY_PRESENT
    failures = []
    for source in sources:
        location = _location(source, name)
        try:
            with atomic_path(target) as temporary:
                _copy(location, temporary, timeout_s, progress)
                if problem := _problem(temporary, sha256):
                    raise _SourceFailed(problem)
            return location
        except _SourceFailed as failure:
            failures.append(f"{location} ({failure})")
    tried = "; ".join(failures) or "no sources configured"
    raise DownloadError(
        f"no source served {name} intact, tried: {tried}. "
        "Set MNIST_MIRROR to a directory or URL holding the real MNIST files (e.g. ../shared/mnist)"
    )


def _location(source: str, name: str) -> str:
    if "://" in source:
        return f"{source.rstrip('/')}/{name}"
    return str(Path(source) / name)


def _copy(location: str, destination: Path, timeout_s: float, progress: bool) -> None:
    """Copy `location` to `destination`; any failure becomes _SourceFailed with a short reason."""
    try:
        stream, size = _open(location, timeout_s)
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=Path(location).name, disable=not progress)
        with stream, destination.open("wb") as sink, bar:
            while chunk := stream.read(CHUNK_BYTES):
                sink.write(chunk)
                bar.update(len(chunk))
    except HTTPError as error:
        raise _SourceFailed(f"HTTP {error.code} {error.reason}") from None
    except URLError as error:
        reason = error.reason
        raise _SourceFailed(_describe(reason, timeout_s) if isinstance(reason, OSError) else str(reason)) from None
    except OSError as error:
        raise _SourceFailed(_describe(error, timeout_s)) from None
    except http.client.HTTPException as error:
        raise _SourceFailed(f"connection broken ({type(error).__name__})") from None
    received = destination.stat().st_size
    if size is not None and received != size:
        raise _SourceFailed(f"incomplete: received {received} of {size} bytes")


def _open(location: str, timeout_s: float) -> tuple[BinaryIO, int | None]:
    """An open byte stream of `location` and its size in bytes (None when the server does not say)."""
    scheme = urlparse(location).scheme
    if scheme in ("http", "https"):
        request = urllib.request.Request(location, headers={"User-Agent": USER_AGENT})
        response = urllib.request.urlopen(request, timeout=timeout_s)
        length = response.headers.get("Content-Length")
        return response, int(length) if length is not None else None
    if scheme == "file":
        location = urllib.request.url2pathname(urlparse(location).path)
    elif "://" in location:
        raise _SourceFailed(f"unsupported URL scheme '{scheme}': use a directory, file:// or http(s)://")
    path = Path(location)
    return path.open("rb"), path.stat().st_size


def _describe(error: OSError, timeout_s: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout_s:g} s"
    if isinstance(error, FileNotFoundError):
        return "not found"
    return error.strerror or str(error)


def _problem(path: Path, sha256: str) -> str | None:
    """Why the file at `path` is not the one whose decompressed bytes have SHA-256 `sha256`; None if it is."""
    try:
        content = decompressed(path.read_bytes())
    except IdxError as error:
        return str(error)
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        return f"checksum mismatch: decompressed SHA-256 {actual[:12]}…, expected {sha256[:12]}…"
    return None
