"""MLflow runs: a parent run per stage invocation and one child run per member (seed, sweep cell or tuning trial),
created up front so that a resumed stage continues them, and their metrics logged in batches.

The engine and the tuner know nothing of MLflow; they hand finished histories to this package. Swapping the tracker
means rewriting this package only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.tracking.context import registry as run_context
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from src.stores.workers import HOST

# The DVC experiment a run belongs to, as `dvc exp show` names it: its name ("workspace" outside one) and baseline.
EXPERIMENT_NAME_TAG, EXPERIMENT_BASELINE_TAG = "dvc_exp_name", "dvc_exp_baseline"
MEMBERS_EXPERIMENT_TAG = "member_runs_experiment"  # on a stage run whose member runs are in another experiment
_BATCH_LIMIT = 1000  # MLflow's cap on metrics per log_batch call

# What decides a run's numbers; dvc.lock, results/ and reports/ are outputs DVC rewrites while the stages run
CODE_AND_PARAMS = ("src", "pipeline", "params.yaml", "dvc.yaml", "pyproject.toml")


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
    name: str,
    tags: Mapping[str, str],
    params: Mapping[str, object],
    run_id: str | None = None,
    system_metrics: bool = False,
) -> Iterator[str]:
    """The parent run of one stage invocation, or the run `run_id` continued (a resumed stage), logging MLflow's
    system metrics while it is open when `system_metrics` (GPU metrics only where nvidia-ml-py is installed).

    FINISHED on success, KILLED on Ctrl-C, FAILED otherwise.
    """
    if system_metrics:  # its start and stop lines would fill every stage's stderr; its failures still warn
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    if run_id is not None:
        with mlflow.start_run(run_id=run_id, log_system_metrics=system_metrics) as run:
            mlflow.set_tags(process_tags())  # this process now owns it: a later crash is recognised by its pid
            yield from _ending_on_interrupt(run)
        return
    with mlflow.start_run(run_name=name, tags={**process_tags(), **tags}, log_system_metrics=system_metrics) as run:
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
    """One child run per member under the active stage run, created up front so that a resumed stage continues them,
    in the experiment `experiment_id` (default: the stage run's). Each has the context tags `mlflow.start_run` would
    give it (source, git commit, user) besides the project's own.

    `log_history` may be called with a member's whole history so far, any number of times: only points of steps
    not yet in the run are logged, so every step is there exactly once, whatever an interruption cut short.
    """

    def __init__(
        self, members: Sequence[Member], run_ids: Sequence[str] | None = None, experiment_id: str | None = None
    ):
        self._client = MlflowClient()
        active = mlflow.active_run()
        if active is None:
            raise RuntimeError("MemberRuns: start the stage run first")
        if run_ids is None:
            parent = active.info.run_id
            experiment_id = experiment_id or active.info.experiment_id
            if experiment_id != active.info.experiment_id:  # their parent tag leads to it; this leads from it to them
                self._client.set_tag(parent, MEMBERS_EXPERIMENT_TAG, self._client.get_experiment(experiment_id).name)
            # once for all members: the git commit alone takes two git processes
            shared = {**run_context.resolve_tags(), MLFLOW_PARENT_RUN_ID: parent, **process_tags()}
            self.run_ids = [self._create(experiment_id, member, shared) for member in members]
            self._logged: dict[tuple[str, str], int] | None = {}
        else:
            self.run_ids = list(run_ids)
            self._continue()
            self._logged = None  # read from the store on first use: what the interrupted attempt got in

    def _continue(self) -> None:
        """Every run RUNNING again, owned by this process (its pid tags it)."""
        tags = [RunTag(key, value) for key, value in process_tags().items()]
        for run_id in self.run_ids:
            self._client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            self._client.log_batch(run_id, tags=tags)

    def _create(self, experiment_id: str, member: Member, shared_tags: Mapping[str, str]) -> str:
        tags = {**shared_tags, **member.tags}
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
    """An MLflow dataset record (name, digest, schema) for a processed split, whose source is the local file (named
    as such: MLflow registers two local sources, so a bare path makes it warn that it is ambiguous)."""
    local = get_dataset_source_from_json(json.dumps({"uri": str(source)}), source_type="local")
    return mlflow.data.from_numpy(images, targets=labels, name=name, source=local)


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
        self._continue()
        self._logged = None  # read from the store on first use: what an earlier attempt got in
