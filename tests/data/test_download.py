"""MNIST files come from the first source serving them intact, land only once verified, and are not re-fetched.

The mirrors here are made by the tests: directories and a local HTTP server on 127.0.0.1 serving tiny fake
files, whose checksums replace the real table.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from src.data.download import ALREADY_PRESENT, MNIST_SHA256, DownloadError, download_mnist, mirror_list
from src.errors import StudyError

CONTENTS = {"images.gz": b"fake images " * 50, "labels.gz": b"fake labels"}
CHECKSUMS = {name: hashlib.sha256(content).hexdigest() for name, content in CONTENTS.items()}
# long enough for a local server on a busy machine, short enough that waiting on a silent one is cheap
TIMEOUT_S = 0.5


def fetch(raw_dir: Path, sources: list[str], **options) -> dict[str, str]:
    return download_mnist(raw_dir, sources, TIMEOUT_S, checksums=CHECKSUMS, **options)


def make_mirror(directory: Path, contents: dict[str, bytes] = CONTENTS) -> Path:
    directory.mkdir()
    for name, content in contents.items():
        (directory / name).write_bytes(gzip.compress(content))
    return directory


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output clean
        pass


class LyingLengthHandler(QuietHandler):
    """Promises 1000 bytes and sends 10: a connection that breaks mid-file."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + b"\x00" * 8)


@pytest.fixture
def serve():
    """Start an HTTP server on 127.0.0.1 (files of a directory, or a given handler); returns its base URL."""
    servers = []

    def start(directory: Path, handler=QuietHandler) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
        # a short poll interval: shutdown() waits for one, and every test stops its servers
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def refusing_url():
    """A URL on a port nobody listens on: the connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url():
    """A URL whose server accepts the connection and never answers: the request times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def assert_fetched_intact(raw_dir: Path) -> None:
    assert sorted(path.name for path in raw_dir.iterdir()) == sorted(CONTENTS)
    for name, content in CONTENTS.items():
        assert gzip.decompress((raw_dir / name).read_bytes()) == content


def test_the_real_table_covers_the_four_mnist_files():
    assert sorted(MNIST_SHA256) == sorted(
        f"{part}-{kind}-ubyte.gz" for part in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")
    )


def test_mnist_mirror_is_tried_before_the_configured_mirrors():
    assert mirror_list(["https://a", "https://b"], "/local/mnist") == ["/local/mnist", "https://a", "https://b"]
    assert mirror_list(["https://a"], None) == ["https://a"]
    assert mirror_list(["https://a"], "") == ["https://a"]


@pytest.mark.parametrize("kind", ["directory", "file-url", "http"])
def test_every_kind_of_source_delivers_verified_files(tmp_path, serve, kind):
    mirror = make_mirror(tmp_path / "mirror")
    source = {"directory": lambda: str(mirror), "file-url": mirror.as_uri, "http": lambda: serve(mirror)}[kind]()

    origins = fetch(tmp_path / "raw", [source])

    assert_fetched_intact(tmp_path / "raw")
    assert origins == {name: f"{source.rstrip('/')}/{name}" for name in CONTENTS}


def test_any_gzip_of_the_right_bytes_passes_and_uncompressed_bytes_too(tmp_path):
    mirror = make_mirror(tmp_path / "mirror", {})
    (mirror / "images.gz").write_bytes(gzip.compress(CONTENTS["images.gz"], compresslevel=1, mtime=12345))
    (mirror / "labels.gz").write_bytes(CONTENTS["labels.gz"])

    fetch(tmp_path / "raw", [str(mirror)])

    assert (tmp_path / "raw" / "labels.gz").read_bytes() == CONTENTS["labels.gz"]


def test_a_mirror_serving_a_corrupted_file_is_passed_over_for_the_next(tmp_path, serve):
    corrupted = make_mirror(tmp_path / "corrupted", {**CONTENTS, "labels.gz": b"fake labelz"})
    good = make_mirror(tmp_path / "good")

    origins = fetch(tmp_path / "raw", [serve(corrupted), str(good)])

    assert_fetched_intact(tmp_path / "raw")
    assert origins["images.gz"].startswith("http://127.0.0.1")
    assert origins["labels.gz"] == str(good / "labels.gz")


def test_dead_mirrors_are_passed_over(tmp_path, serve, refusing_url, silent_url):
    empty = make_mirror(tmp_path / "empty", {})  # answers 404
    good = make_mirror(tmp_path / "good")

    fetch(tmp_path / "raw", [refusing_url, serve(empty), silent_url, str(tmp_path / "absent"), str(good)])

    assert_fetched_intact(tmp_path / "raw")


def test_when_every_source_fails_one_error_names_each_source_and_why(tmp_path, serve, refusing_url, silent_url):
    corrupted = make_mirror(tmp_path / "corrupted", {name: b"wrong" for name in CONTENTS})
    truncated = make_mirror(tmp_path / "truncated", {})
    (truncated / "images.gz").write_bytes(gzip.compress(CONTENTS["images.gz"])[:-12])
    sources = [
        refusing_url,
        serve(make_mirror(tmp_path / "empty", {})),
        serve(tmp_path, handler=LyingLengthHandler),
        silent_url,
        str(corrupted),
        str(truncated),
        str(tmp_path / "absent"),
        "ftp://example.org/mnist",
    ]

    with pytest.raises(DownloadError) as caught:
        fetch(tmp_path / "raw", sources)

    message = str(caught.value)
    assert message.startswith("no source served images.gz intact, tried: ")
    for source, reason in [
        (refusing_url, "Connection refused"),
        (sources[1], "HTTP 404 File not found"),
        (sources[2], "incomplete: received 10 of 1000 bytes"),
        (silent_url, f"timed out after {TIMEOUT_S:g} s"),
        (str(corrupted), "checksum mismatch: decompressed SHA-256"),
        (str(truncated), "truncated gzip"),
        (str(tmp_path / "absent"), "not found"),
        ("ftp://example.org/mnist", "unsupported URL scheme 'ftp'"),
    ]:
        assert f"{source}/images.gz ({reason}" in message
    assert "MNIST_MIRROR" in message and "\n" not in message
    assert issubclass(DownloadError, StudyError)


def test_a_failed_fetch_leaves_nothing_in_the_raw_directory(tmp_path):
    half = make_mirror(tmp_path / "half", {"images.gz": CONTENTS["images.gz"], "labels.gz": b"wrong"})
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match=r"labels\.gz .*checksum mismatch"):
        fetch(raw_dir, [str(half)])

    # the verified file stays; the bad one and every temporary file are gone
    assert [path.name for path in raw_dir.iterdir()] == ["images.gz"]


def test_a_rerun_with_verified_files_present_fetches_nothing(tmp_path, refusing_url):
    raw_dir = tmp_path / "raw"
    fetch(raw_dir, [str(make_mirror(tmp_path / "mirror"))])
    modified = {path.name: path.stat().st_mtime_ns for path in raw_dir.iterdir()}

    origins = fetch(raw_dir, [refusing_url, str(tmp_path / "absent")])

    assert origins == dict.fromkeys(CONTENTS, ALREADY_PRESENT)
    assert {path.name: path.stat().st_mtime_ns for path in raw_dir.iterdir()} == modified


def test_a_damaged_local_copy_is_fetched_again(tmp_path):
    raw_dir = make_mirror(tmp_path / "raw", {**CONTENTS, "labels.gz": b"damaged"})

    origins = fetch(raw_dir, [str(make_mirror(tmp_path / "mirror"))])

    assert origins["images.gz"] == ALREADY_PRESENT
    assert origins["labels.gz"] == str(tmp_path / "mirror" / "labels.gz")
    assert_fetched_intact(raw_dir)


def test_no_progress_bar_when_not_on_a_terminal(tmp_path, capsys):
    fetch(tmp_path / "raw", [str(make_mirror(tmp_path / "mirror"))])

    assert capsys.readouterr().err == ""


def test_the_progress_bar_shows_on_request(tmp_path, capsys):
    fetch(tmp_path / "raw", [str(make_mirror(tmp_path / "mirror"))], progress=True)

    assert "images.gz" in capsys.readouterr().err
