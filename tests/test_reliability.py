"""Faults and bad input, tried on the stages the way a user meets them: every one ends in a clear outcome.

A user mistake (a bad params.yaml, a damaged file) is one line on stderr naming what is wrong, exit status 2,
no traceback, and nothing written. A crash (kill -9) leaves the previous outputs whole and no run RUNNING
forever. The stages run as `python -m ...` in a scratch project with its own params.yaml, where the shell's
view matters (stderr, exit status, a process that dies); in-process where only the outcome does.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import numpy as np
import psutil  # a dependency of dvc's
import pytest
import torch

from pipeline import evaluate as evaluate_stage
from pipeline import train as train_stage
from pipeline import tune as tune_stage
from src.cli import report_user_errors
from src.config import load_params
from src.data.download import MNIST_SHA256
from src.data.splits import read_split_arrays
from src.engine.network import load_member
from src.stores.optuna_storage import open_storage
from src.tune import study, tuner
from tests import synthetic, synthetic_results
from tests.entry_points import PARAMS_READERS
from tests.processes import run, stage_env, start, write_params

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MNIST_FILES = list(MNIST_SHA256)


# --- what a user sees ----------------------------------------------------------------------------------------


def assert_one_line_error(returncode: int, stderr: str) -> str:
    """A user mistake as the contract says: exit status 2 and one line `error: ...`; returns that line."""
    lines = stderr.strip().splitlines()
    assert returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def contents(root: Path, *tops: str) -> dict[str, str]:
    """Every path under `root` (or under its `tops`), hidden ones too: a file's SHA-256, or "dir".

    Directories are listed so that a staging directory left behind shows as a difference.
    """
    paths = [path for top in tops or (".",) for path in sorted((root / top).rglob("*"))]
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in paths
    }


class _RunsCodeWhenUnpickled:
    """What a poisoned file holds: unpickling it calls Path.touch(marker), proof that its code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --- params.yaml: every entry point refuses a bad one before doing anything ---------------------------------


def _rename(key: str, new_name: str) -> Callable[[dict], None]:
    """An edit of params.yaml: the dotted `key` renamed to `new_name` in its section."""

    def edit(raw: dict) -> None:
        *sections, name = key.split(".")
        section = _walk(raw, sections)
        section[new_name] = section.pop(name)

    return edit


def _set(key: str, value: object) -> Callable[[dict], None]:
    """An edit of params.yaml: the dotted `key` set to `value`."""

    def edit(raw: dict) -> None:
        *sections, name = key.split(".")
        _walk(raw, sections)[name] = value

    return edit


def _walk(raw: dict, sections: list[str]) -> dict:
    for section in sections:
        raw = raw[section]
    return raw


# fault -> (how params.yaml is broken, the line the user sees, after "error: params.yaml: ")
BAD_PARAMS = {
    "typo'd key": (_rename("train.steps", "step"), "unknown key 'train.step' (did you mean 'steps'?)"),
    "wrong type": (_set("train.batch_size", "60"), "train.batch_size: Input should be a valid integer, got '60'"),
    "YAML 1.1 float": (_set("model.bn_eps", "1e-5"), "model.bn_eps: Input should be a valid number, got '1e-5' (YAML"),
    "negative lr": (_set("sweep.lr_min", -0.5), "sweep.lr_min: Input should be greater than 0, got -0.5"),
    "negative lr range": (_set("tune.lr_min", -1.0), "tune.lr_min: Input should be greater than 0, got -1.0"),
    "batch of 1 with BN": (_set("train.batch_size", 1), "train.batch_size: must be >= 2: BN's mini-batch variance"),
    "zero steps": (_set("train.steps", 0), "train.steps: Input should be greater than 0, got 0"),
    "zero tuning steps": (_set("tune.steps", 0), "tune.steps: Input should be greater than 0, got 0"),
}


@pytest.fixture(scope="module")
def complete_project(tmp_path_factory, repo_root) -> Path:
    """A project holding every stage's inputs, so a stage that missed a bad key would go on and write."""
    project = tmp_path_factory.mktemp("complete-project")
    synthetic_results.write_results_tree(project, repo_root)
    write_raw_mnist(project / "data" / "raw")
    return project


@pytest.mark.parametrize("fault", BAD_PARAMS)
@pytest.mark.parametrize("entry_point", PARAMS_READERS)
def test_a_bad_params_file_stops_every_entry_point_with_one_line(
    complete_project, mlflow_store, monkeypatch, capsys, fault, entry_point
):
    edit, expected = BAD_PARAMS[fault]
    write_params(complete_project, edit)
    before = contents(complete_project)
    monkeypatch.chdir(complete_project)
    main, argv = PARAMS_READERS[entry_point]

    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: main(argv))

    line = assert_one_line_error(exit_info.value.code, capsys.readouterr().err)
    assert line.startswith(f"error: params.yaml: {expected}"), line
    assert contents(complete_project) == before
    assert not mlflow.MlflowClient(mlflow_store).search_experiments(filter_string="name = 'bn-mnist'")


@pytest.mark.parametrize("entry_point", PARAMS_READERS)
def test_a_bad_argument_is_one_line_too(complete_project, monkeypatch, capsys, entry_point):
    main, argv = PARAMS_READERS[entry_point]
    bad = ["--variant", "resnet"] if argv else ["--verbose"]
    write_params(complete_project)
    before = contents(complete_project)
    monkeypatch.chdir(complete_project)

    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: main(bad))

    line = assert_one_line_error(exit_info.value.code, capsys.readouterr().err)
    assert line.startswith("error: argument --variant: invalid choice: 'resnet'" if argv else "error: unrecognized")
    assert contents(complete_project) == before


def test_from_the_shell_each_entry_point_prints_only_that_line(tmp_path, mlflow_store):
    """The same, as separate processes: nothing else reaches stderr (no warning, no usage text, no traceback)."""
    faults = list(BAD_PARAMS.values())
    workers = []
    for index, (module, (_, argv)) in enumerate(PARAMS_READERS.items()):
        edit, expected = faults[index % len(faults)]  # each entry point gets another fault
        project = tmp_path / module
        write_params(project, edit)
        workers.append((start(module, *argv, cwd=project, MLFLOW_TRACKING_URI=mlflow_store), project, expected))

    for process, project, expected in workers:
        out, err = process.communicate(timeout=120)
        line = assert_one_line_error(process.returncode, err)
        assert line.startswith(f"error: params.yaml: {expected}"), (process.args, line)
        assert out == "" and [path.name for path in project.iterdir()] == ["params.yaml"]


# --- raw MNIST files: a damaged one is named, and the processed data stay as they were ----------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """`array` (uint8) in the IDX format: zero bytes, dtype 0x08, the number of dims, each dim, the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_raw_mnist(raw_dir: Path, train: int = 100, test: int = 50) -> Path:
    """A data/raw directory of four small, well-formed gzipped IDX files in MNIST's names (synthetic digits)."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for part, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = synthetic.images_and_labels(count, seed)
        (raw_dir / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images.reshape(-1, 28, 28))))
        (raw_dir / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return raw_dir


def _corrupt(content: bytes) -> bytes:
    damaged = bytearray(content)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte in the middle of the deflate stream
    return bytes(damaged)


def _truncate(content: bytes) -> bytes:
    return content[: len(content) // 2]  # a download cut off half-way


def _wrong_magic(content: bytes) -> bytes:
    idx = bytearray(gzip.decompress(content))
    idx[:2] = b"PK"  # a well-formed gzip of something that is not an IDX file
    return gzip.compress(bytes(idx))


def _unreadable(path: Path) -> None:
    # as root, permissions cannot make a file unreadable; a directory in its place can
    path.unlink()
    path.mkdir()


# fault -> (which file, how it is damaged, what the line says about it)
BAD_RAW_FILES = {
    "corrupt gzip": ("train-images-idx3-ubyte.gz", _corrupt, "corrupt gzip"),
    "truncated gzip": ("t10k-images-idx3-ubyte.gz", _truncate, "truncated gzip"),
    "wrong magic": ("t10k-labels-idx1-ubyte.gz", _wrong_magic, "not an IDX file: the magic number starts with 0x504b"),
    "unreadable": ("train-labels-idx1-ubyte.gz", None, "cannot read"),
}


@pytest.mark.parametrize("fault", BAD_RAW_FILES)
def test_a_damaged_raw_file_is_named_and_the_processed_data_are_untouched(tmp_path, fault):
    name, damage, defect = BAD_RAW_FILES[fault]
    raw = write_raw_mnist(tmp_path / "data" / "raw")
    if damage is None:
        _unreadable(raw / name)
    else:
        (raw / name).write_bytes(damage((raw / name).read_bytes()))
    write_params(tmp_path, _set("data.val_size", 20))
    synthetic.write_processed(tmp_path / "data" / "processed")  # the previous run's output
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "data_summary.json").write_text('{"previous": "run"}\n')
    before = contents(tmp_path, "data", "results")

    result = run("pipeline.preprocess", cwd=tmp_path)

    line = assert_one_line_error(result.returncode, result.stderr)
    assert line.startswith(f"error: data/raw/{name}: {defect}"), line
    assert contents(tmp_path, "data", "results") == before


# --- mirrors: a liar or a dead one is passed over; when all fail, one line names each -----------------------


class _CaptivePortal(BaseHTTPRequestHandler):
    """Answers every request 200 OK with a web page: the wrong bytes, served as if they were right."""

    def do_GET(self):
        page = b"<html><body>Please log in to use this network.</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format, *args):
        pass


@contextmanager
def captive_portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CaptivePortal)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    """A URL on a port nobody listens on: the connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _mirrors(*sources: str) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        raw["data"].update(mirrors=list(sources), timeout_s=2)

    return edit


def assert_real_mnist_in(raw_dir: Path) -> None:
    assert sorted(path.name for path in raw_dir.iterdir()) == sorted(MNIST_FILES)
    for name, sha256 in MNIST_SHA256.items():
        assert hashlib.sha256(gzip.decompress((raw_dir / name).read_bytes())).hexdigest() == sha256


@pytest.mark.e2e
def test_a_mirror_serving_wrong_bytes_is_passed_over_for_the_next(tmp_path, real_mnist):
    write_params(tmp_path, _mirrors(str(real_mnist)))
    with captive_portal() as portal:
        result = run("pipeline.download", cwd=tmp_path, MNIST_MIRROR=portal)

    assert result.returncode == 0, result.stderr
    assert_real_mnist_in(tmp_path / "data" / "raw")
    assert result.stdout.splitlines() == [f"data/raw/{name}: {real_mnist / name}" for name in MNIST_FILES]


@pytest.mark.e2e
def test_a_dead_mirror_is_passed_over_for_the_next(tmp_path, real_mnist):
    write_params(tmp_path, _mirrors(dead_url(), str(real_mnist)))

    result = run("pipeline.download", cwd=tmp_path, MNIST_MIRROR=dead_url())

    assert result.returncode == 0, result.stderr
    assert_real_mnist_in(tmp_path / "data" / "raw")


def test_when_every_mirror_fails_one_line_names_each_and_nothing_lands(tmp_path):
    refused, missing = dead_url(), tmp_path / "no-such-mirror"
    with captive_portal() as portal:
        write_params(tmp_path, _mirrors(portal, str(missing)))
        result = run("pipeline.download", cwd=tmp_path, MNIST_MIRROR=refused)

    line = assert_one_line_error(result.returncode, result.stderr)
    first = MNIST_FILES[0]
    assert line.startswith(f"error: no source served {first} intact, tried: {refused}/{first} (")
    assert f"{portal}/{first} (checksum mismatch: decompressed SHA-256" in line, line
    assert f"{missing / first} (not found)" in line
    assert line.endswith("Set MNIST_MIRROR to a directory or URL holding the real MNIST files (e.g. ../shared/mnist)")
    assert not (tmp_path / "data" / "raw").exists() or not any((tmp_path / "data" / "raw").iterdir())


# --- the train stage: a crash loses nothing, a bad hand-off is named, a diverging rate is survived -----------


def _small_training(steps: int = 100, **train: object) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        raw["model"].update(population_batches=5)
        raw["train"].update(steps=steps, eval_every=50, seeds=2, tracked_units=2, percentile_examples=50, device="cpu")
        raw["train"].update(train)

    return edit


@pytest.fixture
def train_project(tmp_path, mlflow_store, monkeypatch) -> Path:
    """A project ready for `train`: synthetic processed data and a short schedule; the working directory."""
    project = tmp_path / "project"
    synthetic.write_processed(project / "data" / "processed")
    synthetic.write_tuned(project)
    write_params(project, _small_training())
    monkeypatch.chdir(project)
    return project


def kill_while_training(project: Path, mlflow_store: str) -> mlflow.entities.Run:
    """Start `pipeline.train` on a schedule far too long to finish, kill -9 it once it trains; return its run."""
    write_params(project, _small_training(steps=1_000_000))
    process = start("pipeline.train", "--variant", "bn", cwd=project, MLFLOW_TRACKING_URI=mlflow_store)
    client = mlflow.MlflowClient(mlflow_store)
    deadline = time.monotonic() + 120
    while True:  # the stage's run opens just before the step loop starts
        experiment = client.get_experiment_by_name("bn-mnist")
        runs = experiment and client.search_runs([experiment.experiment_id], f"tags.pid = '{process.pid}'")
        if runs:
            break
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the train stage did not start training within 120 s"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    (run,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]  # the stage's run
    assert client.get_run(run.info.run_id).info.status == "RUNNING"  # nobody was left to close it
    return run


def test_a_killed_train_stage_leaves_no_partial_output_and_a_rerun_completes(train_project, mlflow_store):
    client = mlflow.MlflowClient(mlflow_store)

    first = kill_while_training(train_project, mlflow_store)
    assert contents(train_project, "models", "results/train") == {}, "a first run killed mid-training leaves nothing"

    write_params(train_project, _small_training())
    train_stage.main(["--variant", "bn"])
    complete = contents(train_project, "models", "results/train")
    assert client.get_run(first.info.run_id).info.status == "KILLED"  # closed by the re-run: its process is gone

    second = kill_while_training(train_project, mlflow_store)
    assert contents(train_project, "models", "results/train") == complete, (
        "a killed re-run leaves the previous outputs whole"
    )

    write_params(train_project, _small_training())
    train_stage.main(["--variant", "bn"])
    assert client.get_run(second.info.run_id).info.status == "KILLED"
    params = load_params()
    for seed in (0, 1):
        load_member(train_project / "models" / "bn" / f"seed_{seed}.pt", params.model, "bn", "cpu")
    summary = json.loads((train_project / "results" / "train" / "bn" / "summary.json").read_text())
    assert summary["steps"] == 100 and summary["seeds"] == [0, 1]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON ("),
        (lambda text: text.replace('"best_lr"', '"lr"'), "missing key 'best_lr'; unknown key 'lr'"),
        (lambda text: re.sub(r'"best_lr": [^,]+', '"best_lr": -0.5', text), "best_lr: Input should be greater than 0"),
        (lambda text: re.sub(r'"best_lr": [^,]+', '"best_lr": NaN', text), "best_lr: Input should be greater than 0"),
        (lambda text: re.sub(r'"best_lr": [^,]+', '"best_lr": "0.5"', text), "best_lr: Input should be a valid number"),
    ],
    ids=["truncated", "renamed key", "negative", "nan", "text"],
)
def test_a_damaged_tuning_result_stops_the_train_stage_with_one_line(train_project, capsys, damage, problem):
    best = train_project / "results" / "tune" / "bn" / "best.json"
    best.write_text(damage(best.read_text()))

    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: train_stage.main(["--variant", "bn"]))

    line = assert_one_line_error(exit_info.value.code, capsys.readouterr().err)
    assert line.startswith(f"error: results/tune/bn/best.json: {problem}"), line
    assert line.endswith("re-run `dvc repro tune@bn` to rewrite it")
    assert not (train_project / "models").exists() and not (train_project / "results" / "train").exists()


def _poisoned_npz(path: Path) -> None:
    """A .npy of a pickled object under the split's name: np.load would run its code if it allowed pickles."""
    with path.open("wb") as handle:
        np.save(handle, np.array([_RunsCodeWhenUnpickled(path.parent / "code-ran")], dtype=object), allow_pickle=True)


DAMAGED_SPLITS = {
    "empty": lambda path: path.write_bytes(b""),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:1000]),
    "pickled object": _poisoned_npz,
}


@pytest.mark.parametrize("damage", DAMAGED_SPLITS)
def test_a_damaged_processed_split_stops_the_train_stage_with_one_line(train_project, capsys, damage):
    DAMAGED_SPLITS[damage](train_project / "data" / "processed" / "train.npz")

    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: train_stage.main(["--variant", "bn"]))

    line = assert_one_line_error(exit_info.value.code, capsys.readouterr().err)
    assert line.startswith("error: data/processed/train.npz: not a split archive with arrays 'images' and 'labels'")
    assert not (train_project / "data" / "processed" / "code-ran").exists()
    assert not (train_project / "models").exists() and not (train_project / "results" / "train").exists()


@pytest.fixture
def results_tree(tmp_path, repo_root, mlflow_store, monkeypatch) -> Path:
    """What tune and train leave for evaluate (tests/synthetic_results.py, a tiny net); the working directory."""
    synthetic_results.write_results_tree(tmp_path, repo_root)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_diverging_learning_rate_is_survived_marked_and_reported(results_tree):
    # the engine calls a member diverged when its loss is no longer finite; for this sigmoid net that takes a
    # rate near float32's limit (a merely huge one, 1e9, saturates the sigmoids and the loss stays finite)
    best = results_tree / "results" / "tune" / "bn" / "best.json"
    best.write_text(json.dumps({**json.loads(best.read_text()), "best_lr": 1.0e38}))

    train_stage.main(["--variant", "bn"])

    out = results_tree / "results" / "train" / "bn"
    summary = json.loads((out / "summary.json").read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN
    seeds = synthetic_results.SEEDS
    assert summary["lr"] == 1.0e38 and summary["n_diverged"] == len(seeds)
    flags = [row.rsplit(",", 1)[1] for row in (out / "history.csv").read_text().splitlines()[1:]]
    assert flags[: len(seeds)] == ["False"] * len(seeds) and flags[-len(seeds) :] == ["True"] * len(seeds)
    params = load_params()
    for seed in seeds:  # frozen at its last finite weights, the model still loads
        model = load_member(results_tree / "models" / "bn" / f"seed_{seed}.pt", params.model, "bn", "cpu")
        assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
    runs = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert [run.data.tags.get("diverged") for run in runs if "seed" in run.data.tags] == ["true"] * len(seeds)

    evaluate_stage.main([])  # the next stage takes the diverged variant in its stride

    metrics = json.loads((results_tree / "results" / "metrics.json").read_text(), parse_constant=pytest.fail)
    assert metrics["bn"]["n_diverged"] == len(seeds) and metrics["vanilla"]["n_diverged"] == 0
    assert metrics["vanilla"]["test_accuracy"]["mean"] is not None
    report = (results_tree / "reports" / "report.md").read_text()
    assert f"| diverged seeds | 0/{len(seeds)} | {len(seeds)}/{len(seeds)} |" in report
    # a diverged variant's sigmoid inputs have no finite drift: the tuned design has no pair to decide the claim
    stability = metrics["claims"]["stable_sigmoid_inputs_tuned"]
    assert (stability["verdict"], stability["n"]) == ("not estimable", 0)
    assert stability["note"] == f"{len(seeds)} seed(s) left out: no finite drift"


def _small_study(raw: dict) -> None:
    _small_training()(raw)
    raw["model"]["hidden_units"] = 32
    raw["train"]["batch_size"] = 20
    raw["tune"].update(trials=2, trials_per_batch=2, steps=200, eval_every=50, lr_min=0.01, lr_max=1.0e38)


def test_a_diverging_trial_scores_zero_and_leaves_its_batch_mates_unharmed(train_project):
    write_params(train_project, _small_study)
    params = load_params()
    settings = study.study_settings(params.tune_run, "bn", "cpu")
    storage = open_storage(params.tune.storage)
    tuning = study.open_study(storage, study.default_study_name(settings), settings, params.tune)
    tuning.enqueue_trial({"lr": 1.0e38})  # one batch, trained as one model: a rate near float32's limit ...
    tuning.enqueue_trial({"lr": 1.0})  # ... beside a good one

    tune_stage.main(["--variant", "bn"])

    with (train_project / "results" / "tune" / "bn" / "trials.csv").open() as handle:
        rows = {float(row["lr"]): row for row in csv.DictReader(handle)}
    diverged, healthy = rows[1.0e38], rows[1.0]
    assert (diverged["state"], diverged["diverged"], float(diverged["value"])) == ("COMPLETE", "True", 0.0)
    assert (healthy["state"], healthy["diverged"]) == ("COMPLETE", "False") and float(healthy["value"]) > 0.9
    alone = tuner.engine_objective(params.tune_run, params.tune.seed, "bn", torch.device("cpu"))(
        [1.0], lambda evaluation: None
    )
    assert float(healthy["value"]) == pytest.approx(alone.final.accuracy[0], abs=0.01)  # 2 of 200 examples
    best = json.loads((train_project / "results" / "tune" / "bn" / "best.json").read_text())
    assert best["best_lr"] == 1.0 and best["n_complete"] == 2 and best["n_failed"] == 0


def test_a_crash_while_evaluating_leaves_the_previous_outputs_whole(results_tree, monkeypatch):
    for output in ("results/metrics.json", "results/plots/accuracy.csv", "reports/report.md", "reports/figures/a.png"):
        (results_tree / output).parent.mkdir(parents=True, exist_ok=True)
        (results_tree / output).write_text("the previous run's\n")
    previous = contents(results_tree, "results", "reports")

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash half-way through the figures")

    monkeypatch.setattr(evaluate_stage.figures, "lr_search_figure", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate_stage.main([])

    assert contents(results_tree, "results", "reports") == previous


# --- model files: anything but a state dict is refused without running it ------------------------------------


@pytest.mark.parametrize("kind", ["malicious pickle", "whole pickled module"])
def test_a_model_file_that_is_not_a_state_dict_stops_evaluate_without_running_its_code(
    tmp_path, repo_root, mlflow_store, monkeypatch, capsys, kind
):
    synthetic_results.write_results_tree(tmp_path, repo_root)
    marker = tmp_path / "code-ran"
    poisoned = tmp_path / "models" / "bn" / "seed_1.pt"
    if kind == "malicious pickle":
        torch.save(_RunsCodeWhenUnpickled(marker), poisoned)
    else:
        torch.save(torch.nn.Linear(784, 10), poisoned)
    monkeypatch.chdir(tmp_path)

    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: evaluate_stage.main([]))

    line = assert_one_line_error(exit_info.value.code, capsys.readouterr().err)
    assert line.startswith("error: models/bn/seed_1.pt: not a loadable model state dict (Weights only load failed")
    assert not marker.exists()
    assert not (tmp_path / "results" / "metrics.json").exists() and not (tmp_path / "reports").exists()
    assert not mlflow.MlflowClient(mlflow_store).search_experiments(filter_string="name = 'bn-mnist'")
    if kind == "malicious pickle":  # the file was armed: loaded the unsafe way, it does run its code
        torch.load(poisoned, weights_only=False)
        assert marker.exists()


# --- DVC: two `dvc repro` at once ----------------------------------------------------------------------------


@pytest.fixture
def dvc_clone(tmp_path, repo_root, real_mnist) -> tuple[Path, dict[str, str]]:
    """The committed repository cloned (what a new user gets), and the environment to run dvc in it."""
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(repo_root), str(clone)], check=True)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # dvc's `python` is this one
    return clone, stage_env(PATH=path, MNIST_MIRROR=str(real_mnist))


def dvc(*args: str, clone: Path, env: dict[str, str], **options) -> subprocess.Popen:
    command = [sys.executable, "-m", "dvc", *args]
    return subprocess.Popen(
        command, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options
    )


def assert_preprocess_up_to_date(clone: Path, env: dict[str, str]) -> None:
    status = dvc("status", "preprocess", clone=clone, env=env)
    out = status.communicate(timeout=120)[0]
    assert status.returncode == 0 and "Data and pipelines are up to date." in out, out
    sizes = {name: len(read_split_arrays(clone / "data" / "processed", name)[1]) for name in ("train", "val", "test")}
    assert sizes == {"train": 50_000, "val": 10_000, "test": 10_000}


@pytest.mark.e2e
def test_two_dvc_repro_at_once_one_runs_the_other_stops_at_the_lock(dvc_clone):
    clone, env = dvc_clone
    started = time.monotonic()
    both = [dvc("repro", "preprocess", clone=clone, env=env) for _ in range(2)]
    ended, outputs = {}, {}
    while len(ended) < 2:
        for index, process in enumerate(both):
            if index not in ended and process.poll() is not None:
                ended[index], outputs[index] = time.monotonic() - started, process.communicate()[0]
        time.sleep(0.05)
    winner, loser = sorted(range(2), key=lambda index: both[index].returncode)

    assert both[winner].returncode == 0, outputs[winner]
    assert both[loser].returncode != 0
    # the repository's lock, or, if the first has released it to run a stage's command, that stage's outputs' lock
    assert re.search(r"Unable to acquire lock|'.*' is busy, it is being blocked by", outputs[loser]), outputs[loser]
    assert ended[loser] < ended[winner], "the second one gives up while the first still runs, it does not wait"
    assert_preprocess_up_to_date(clone, env)


@pytest.mark.e2e
def test_a_dvc_repro_killed_mid_stage_is_completed_by_the_next_one(dvc_clone):
    clone, env = dvc_clone
    # its own process group, so that kill -9 takes the stage's process with it, as closing a terminal would
    first = dvc("repro", "preprocess", clone=clone, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _runs(first.pid, "pipeline.preprocess"):
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "dvc did not start the preprocess stage within 120 s"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    assert not (clone / "data" / "processed").exists(), "dvc removed the stage's outputs before running it"

    again = dvc("repro", "preprocess", clone=clone, env=env)
    out = again.communicate(timeout=300)[0]

    assert again.returncode == 0, out
    assert "Stage 'download' didn't change, skipping" in out and "Running stage 'preprocess'" in out, out
    assert_preprocess_up_to_date(clone, env)


def _runs(pid: int, module: str) -> bool:
    """Whether a descendant of process `pid` runs `module` (`python -m module`, maybe through a shell)."""
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for process in descendants:
        try:
            if module in " ".join(process.cmdline()):
                return True
        except psutil.Error:  # it ended since it was listed
            continue
    return False
