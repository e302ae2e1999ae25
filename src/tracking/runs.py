"""MLflow, in one place: the store, parent runs per stage invocation, batched child runs per member.

The engine and the tuner know nothing of MLflow; they hand finished histories to this module.
Swapping the tracker means rewriting this file only.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from src.errors import StudyError
from src.stores import databases

# MLflow's own default layout, at the project's root: `mlflow ui` run there with no arguments shows every run.
DEFAULT_STORE, DEFAULT_ARTIFACTS = "mlflow.db", "mlruns"
# The DVC experiment a run belongs to, as `dvc exp show` names it: its name ("workspace" outside one) and baseline.
EXPERIMENT_NAME_TAG, EXPERIMENT_BASELINE_TAG = "dvc_exp_name", "dvc_exp_baseline"
# MLflow's defaults retry an unreachable server for about 4 minutes (7 retries), each request waiting up to 120 s.
HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_BATCH_LIMIT = 1000  # MLflow's cap on metrics per log_batch call

# Logged on every run so that a later invocation can tell a crashed run from a live one.
HOST = socket.gethostname()
# MLflow 3's experiment tag for its UI: runs, metrics and models ("Model training"), not GenAI's traces
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# What decides a run's numbers; dvc.lock, results/ and reports/ are outputs DVC rewrites while the stages run
CODE_AND_PARAMS = ("src", "pipeline", "params.yaml", "dvc.yaml", "pyproject.toml")


def configure(experiment: str) -> str:
    """Point MLflow at $MLFLOW_TRACKING_URI (default: the project's mlflow.db) and the named experiment; its id.
    A tracking server that does not answer is a StudyError within seconds."""
    # MLflow checks this before each usage event: the study runs where there is no internet to send it to
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri and urllib.parse.urlsplit(uri).scheme in ("http", "https"):
        for name, value in HTTP_BOUNDS.items():
            os.environ.setdefault(name, value)
        check_server(uri)
    mlflow.set_tracking_uri(uri or f"sqlite:///{databases.project_root() / DEFAULT_STORE}")
    # Workers started together into a fresh store would each create its tables and tag its experiment: one at a time
    with databases.first_use(mlflow.get_tracking_uri()):
        if not uri:
            _create_at_root(experiment)
        experiment = mlflow.set_experiment(experiment)
        client = MlflowClient()
        for key, value in EXPERIMENT_KIND.items():
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
    close_abandoned_runs(experiment.experiment_id)
    return experiment.experiment_id


def _create_at_root(experiment: str) -> None:
    """Create `experiment` in the default store with its artifacts under the project's mlruns/<experiment id>/.

    MLflow resolves its default artifact root, ./mlruns, against the working directory: an experiment created from a
    temporary experiment workspace would keep every later run's artifacts where DVC deletes them.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # half a second to import, for this alone

    store = SqlAlchemyStore(mlflow.get_tracking_uri(), str(databases.project_root() / DEFAULT_ARTIFACTS))
    if store.get_experiment_by_name(experiment) is None:
        store.create_experiment(experiment)


def check_server(uri: str) -> None:
    """A StudyError unless an MLflow tracking server answers at `uri` within databases.CONNECT_TIMEOUT_S."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]  # credentials stay out of the probe: MLflow sends its own
    path = parts.path.rstrip("/") + "/health"
    health = urllib.parse.urlunsplit((parts.scheme, host, path, "", ""))
    try:
        urllib.request.urlopen(health, timeout=databases.CONNECT_TIMEOUT_S).close()
    except urllib.error.HTTPError as error:  # `mlflow server` answers /health with 200, or 401/403 behind a login
        if error.code in (502, 503, 504):  # a proxy that cannot reach it
            raise StudyError(f"tracking server {databases.redact(uri)}: cannot connect (HTTP {error.code})") from None
        if error.code not in (401, 403):
            raise StudyError(
                f"tracking server {databases.redact(uri)}: not an MLflow server (GET {path}: HTTP {error.code})"
            ) from None
    except (urllib.error.URLError, OSError) as error:
        why = getattr(error, "reason", None) or error
        raise StudyError(f"tracking server {databases.redact(uri)}: cannot connect ({why})") from None


def git_commit() -> str:
    """The commit the code runs from, with '-dirty' when its code or params differ from it; 'unknown' outside git."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--", *CODE_AND_PARAMS))  # new files count too
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def flatten(tree: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """{'train': {'steps': 5}} -> {'train.steps': 5}: MLflow's params and metrics are flat."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def process_tags() -> dict[str, str]:
    return {"host": HOST, "pid": str(os.getpid()), "git_commit": git_commit(), **experiment_tags()}


def experiment_tags() -> dict[str, str]:
    """The DVC experiment this process runs in, from what DVC sets for its stages: its name and baseline commit."""
    name = os.environ.get("DVC_EXP_NAME")
    if not name:
        return {EXPERIMENT_NAME_TAG: "workspace"}
    return {EXPERIMENT_NAME_TAG: name, EXPERIMENT_BASELINE_TAG: os.environ.get("DVC_EXP_BASELINE_REV", "")}


@contextmanager
def parent_run(
    name: str, tags: Mapping[str, str], params: Mapping[str, object], run_id: str | None = None
) -> Iterator[str]:
    """The parent run of one stage invocation, or the run `run_id` continued (a resumed stage).

    FINISHED on success, KILLED on Ctrl-C, FAILED otherwise.
    """
    if run_id is not None:
        with mlflow.start_run(run_id=run_id) as run:
            mlflow.set_tags(process_tags())  # this process now owns it: a later crash is recognised by its pid
            yield from _ending_on_interrupt(run)
        return
    with mlflow.start_run(run_name=name, tags={**process_tags(), **tags}) as run:
        mlflow.log_params(flatten(params))
        yield from _ending_on_interrupt(run)


def _ending_on_interrupt(run: mlflow.ActiveRun) -> Iterator[str]:
    try:
        yield run.info.run_id
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise


@dataclass(frozen=True)
class Member:
    """What names one member's child run: its run name, tags and params."""

    name: str
    tags: Mapping[str, str]
    params: Mapping[str, object]


class MemberRuns:
    """One child run per member under the active stage run, created up front so that a resumed stage continues them.

    `log_history` may be called with a member's whole history so far, any number of times: only points of steps
    not yet in the run are logged, so every step is there exactly once, whatever an interruption cut short.
    """

    def __init__(self, members: Sequence[Member], run_ids: Sequence[str] | None = None):
        self._client = MlflowClient()
        active = mlflow.active_run()
        if active is None:
            raise RuntimeError("MemberRuns: start the stage run first")
        if run_ids is None:
            experiment_id, parent = active.info.experiment_id, active.info.run_id
            self.run_ids = [self._create(experiment_id, parent, member) for member in members]
            self._logged: dict[tuple[str, str], int] | None = {}
        else:
            self.run_ids = list(run_ids)
            for run_id in self.run_ids:
                self._client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in process_tags().items()])
            self._logged = None  # read from the store on first use: what the interrupted attempt got in

    def _create(self, experiment_id: str, parent: str, member: Member) -> str:
        tags = {MLFLOW_PARENT_RUN_ID: parent, **process_tags(), **member.tags}
        run_id = self._client.create_run(experiment_id, tags=tags, run_name=member.name).info.run_id
        self._client.log_batch(run_id, params=[Param(key, str(value)) for key, value in flatten(member.params).items()])
        return run_id

    def log_history(self, histories: Sequence[Mapping[str, Sequence[tuple[int, float]]]]) -> None:
        """histories[k]: member k's metric name -> (step, value) pairs; logs the pairs not logged before."""
        logged = self._logged if self._logged is not None else self._read_logged(histories)
        for run_id, history in zip(self.run_ids, histories, strict=True):
            fresh = {
                key: [(s, v) for s, v in points if s > logged.get((run_id, key), -1)] for key, points in history.items()
            }
            _log_metric_history(run_id, fresh)
            for key, points in fresh.items():
                if points:
                    logged[(run_id, key)] = max(step for step, _ in points)
        self._logged = logged

    def _read_logged(self, histories: Sequence[Mapping[str, object]]) -> dict[tuple[str, str], int]:
        return {
            (run_id, key): max((metric.step for metric in self._client.get_metric_history(run_id, key)), default=-1)
            for run_id, history in zip(self.run_ids, histories, strict=True)
            for key in history
        }

    def finish(self, tags: Sequence[Mapping[str, str]], metrics: Sequence[Mapping[str, float]]) -> None:
        """Final tags and metrics of every member, then its run FINISHED."""
        for run_id, member_tags, member_metrics in zip(self.run_ids, tags, metrics, strict=True):
            self._client.log_batch(
                run_id,
                metrics=[
                    Metric(key, value, _now_ms(), 0) for key, value in member_metrics.items() if np.isfinite(value)
                ],
                tags=[RunTag(key, value) for key, value in member_tags.items()],
            )
            self._client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FINISHED))


def runs_exist(run_ids: Sequence[str]) -> bool:
    """Whether every run of `run_ids` is in the current store (a checkpoint may outlive the store it logged to)."""
    client = MlflowClient()
    try:
        for run_id in run_ids:
            client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True


def log_artifact(run_id: str, path: Path) -> None:
    """Attach the file `path` to the run `run_id` (active or not)."""
    MlflowClient().log_artifact(run_id, str(path))


def log_dataset(dataset: mlflow.data.dataset.Dataset, context: str = "training") -> None:
    """Record `dataset` as an input of the active run."""
    mlflow.log_input(dataset, context=context)


def log_results(metrics: Mapping[str, object], artifacts: Iterable[Path]) -> None:
    """Log the numbers of `metrics` (nested; None, flags and text are left out) and the files `artifacts` on the
    active stage run, each file under its own directory."""
    numbers = {
        name: float(value)
        for name, value in flatten(metrics).items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }
    mlflow.log_metrics(numbers)
    for path in artifacts:
        mlflow.log_artifact(str(path), artifact_path=str(path.parent))


def set_run_tags(experiment_id: str, where: Mapping[str, str], tags: Mapping[str, str]) -> None:
    """Set `tags` on every run of the experiment whose tags include all of `where`."""
    client = MlflowClient()
    matching = " and ".join(f"tags.{key} = '{value}'" for key, value in where.items())
    for run in client.search_runs([experiment_id], matching):
        for key, value in tags.items():
            client.set_tag(run.info.run_id, key, value)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_metric_history(run_id: str, metrics: Mapping[str, Sequence[tuple[int, float]]]) -> None:
    timestamp = _now_ms()
    entries = [
        Metric(key, float(value), timestamp, int(step))
        for key, points in metrics.items()
        for step, value in points
        if np.isfinite(value)  # MLflow stores NaN, but the UI's charts break on it; a diverged run is tagged
    ]
    client = MlflowClient()
    for start in range(0, len(entries), _BATCH_LIMIT):
        client.log_batch(run_id, metrics=entries[start : start + _BATCH_LIMIT], synchronous=True)


def numpy_dataset(images: np.ndarray, labels: np.ndarray, *, name: str, source: Path) -> mlflow.data.dataset.Dataset:
    """An MLflow dataset record (name, digest, schema) for a processed split."""
    return mlflow.data.from_numpy(images, targets=labels, name=name, source=str(source))


def close_abandoned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs that a process on this host left behind when it died (kill -9, power loss).

    A run whose process is alive is left alone, so concurrent workers are never disturbed.
    """
    client = MlflowClient()
    abandoned = [
        run.info.run_id
        for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
        if run.data.tags.get("host") == HOST and not process_alive(int(run.data.tags.get("pid", "0")))
    ]
    for run_id in abandoned:
        client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.KILLED))
    return abandoned


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (one of another user's counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ContinuedMemberRuns(MemberRuns):
    """Member runs another process made under the parent run it holds (a sweep's stage), continued in this one (a
    worker training one unit of them), which holds no run: the parent run's status and end stay its owner's.
    `untouched`: this process made them moments ago and nothing was logged since, so nothing is restated or read."""

    def __init__(self, run_ids: Sequence[str], untouched: bool = False):
        self._client = MlflowClient()
        self.run_ids = list(run_ids)
        if untouched:
            self._logged = {}
            return
        for run_id in self.run_ids:
            self._client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in process_tags().items()])
        self._logged = None  # read from the store on first use: what an earlier attempt got in
