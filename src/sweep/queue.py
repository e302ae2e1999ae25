"""The sweep as a work queue: an Optuna study whose trials are the sweep's units of work, shared by every worker.

- Identity. The study's name carries a digest of the sweep's identity (src/training/provenance.py: its deciding
  params, the unit cut among them, the data digests, the training code, the resolved device), which the study
  stores. The same checkout finds the same study; a worker whose checkout differs from a study with units left
  refuses to join it, naming what differs.
- Queue. The stage enqueues every unit that is neither done nor queued as a WAITING trial (user attr `unit`), under
  the database's first-use lock, so that two stages never queue one unit twice. A worker takes a unit by moving its
  trial WAITING → RUNNING under a row lock (SELECT … FOR UPDATE), as Optuna's own queue does, so each trial is taken
  once. (`Study.ask` is not used: with the queue empty it would start a fresh trial of no unit.)
- Dead workers. A worker beats every `heartbeat_s` while it trains. A unit whose worker was silent for
  GRACE_HEARTBEATS beats, or whose worker on this host is gone, is failed and queued again by Optuna's
  RetryHeartbeatStaleTrialCallback (set on the storage by src/tune/study.py, at most MAX_RETRIES times).
- Results. A unit's result (src/sweep/unit_result.py) goes into its trial's system attr `result` before the trial is
  COMPLETE; who trained it, where and how long, into its user attrs and MLflow.
- MLflow. The stage makes its parent run and one child run per member once; their ids are the study's user attr
  `mlflow`, so a worker anywhere logs a unit's members into the runs made for them.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from src.errors import StudyError
from src.stores import databases
from src.stores.databases import reason, redact
from src.stores.optuna_storage import GRACE_HEARTBEATS, describe_study, quiet_heartbeat_warnings
from src.stores.workers import HOST, process_alive
from src.sweep.heartbeat import STORAGE_ERRORS, Heartbeat
from src.sweep.unit_result import UnitResult, agreed
from src.training import provenance

NAME_PREFIX = "bn-mnist-sweep"
UNIT_VALUE = "mean test accuracy of the unit's members"  # a trial's value, as optuna-dashboard names it
LIVE = (TrialState.WAITING, TrialState.RUNNING)


def study_name(identity: dict) -> str:
    """bn-mnist-sweep-<variant>-<digest of the identity>: the same checkout finds the same study."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{NAME_PREFIX}-{identity['variant']}-{digest}"


@dataclass(frozen=True)
class Taken:
    """A unit this process took: its trial, and the result an earlier attempt stored before it died, if any."""

    trial_id: int
    number: int
    unit: int
    earlier: dict | None
    retried: bool  # an earlier attempt may have logged to the unit's runs


@dataclass(frozen=True)
class Progress:
    """How many units are done, running and waiting; `live`: running or waiting."""

    done: int
    running: int
    waiting: int
    live: int


class SweepQueue:
    """The units of one variant's sweep in the study `study`; `units`: how many the cut makes."""

    def __init__(self, study: optuna.Study, storage: RDBStorage, url: str, units: int, heartbeat_s: int):
        self.study, self.storage, self.url, self.units, self.heartbeat_s = study, storage, url, units, heartbeat_s

    @classmethod
    def create(cls, storage: RDBStorage, url: str, identity: dict, units: int, heartbeat_s: int) -> SweepQueue:
        """The stage's study of `identity`, created on first use; one stored under other settings is a StudyError."""
        name = study_name(identity)
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
        if "identity" not in study.user_attrs:
            study.set_user_attr("identity", identity)
        if study.user_attrs["identity"] != identity:  # the digest in the name collided, or the name was reused
            changed = provenance.differences(study.user_attrs["identity"], identity)
            raise StudyError(f"study {name} in {redact(url)} holds a sweep of other settings ({changed})")
        describe_study(study, UNIT_VALUE, f"sweep@{identity['variant']}: a queue of units of work, not a search")
        return cls(study, storage, url, units, heartbeat_s)

    @classmethod
    def find(cls, storage: RDBStorage, url: str, identity: dict, units: int, heartbeat_s: int) -> SweepQueue | None:
        """A worker's view of the stage's study of `identity`, once the stage has made it and its runs; else None."""
        name = study_name(identity)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            return None
        if study.user_attrs.get("identity") != identity or "mlflow" not in study.user_attrs:
            return None
        return cls(study, storage, url, units, heartbeat_s)

    # --- the stage: the MLflow runs and the queue ---------------------------------------------------------------

    def locked(self) -> AbstractContextManager:
        """The database's first-use lock, held while the stage makes the runs and queues the units."""
        return databases.first_use(self.url)

    @property
    def runs(self) -> dict | None:
        """{"parent": the stage's MLflow run, "members": each member's run in the grid's order}, once made."""
        return self.study.user_attrs.get("mlflow")

    def record_runs(self, parent: str, members: list[str]) -> None:
        self.study.set_user_attr("mlflow", {"parent": parent, "members": members})

    def enqueue_missing(self) -> int:
        """Queue every unit with no trial waiting, running or done (call it under `locked`); how many were queued."""
        held = {
            trial.user_attrs.get("unit")
            for trial in self.study.get_trials(deepcopy=False, states=(*LIVE, TrialState.COMPLETE))
        }
        missing = [unit for unit in range(self.units) if unit not in held]
        for unit in missing:
            self.study.enqueue_trial({}, user_attrs={"unit": unit})
        return len(missing)

    # --- a worker: take, beat, finish ---------------------------------------------------------------------------

    def take(self) -> Taken | None:
        """The first waiting unit, now RUNNING for this process alone; None when none waits."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:  # WAITING → RUNNING under a row lock; False when another worker took it first
                if not self.storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                    continue
            except UpdateFinishedTrialError:
                continue
            self.storage.record_heartbeat(trial._trial_id)
            # the trial number tells this attempt's mark from one a retried trial inherited
            worker = {"host": HOST, "pid": os.getpid(), "trial": trial.number}
            self.storage.set_trial_user_attr(trial._trial_id, "worker", worker)
            attrs = trial.system_attrs
            return Taken(
                trial._trial_id,
                trial.number,
                trial.user_attrs["unit"],
                attrs.get("result"),
                retried="failed_trial" in attrs,
            )
        return None

    def beating(self, taken: Taken) -> Heartbeat:
        return Heartbeat(self.storage, taken.trial_id, self.heartbeat_s, self.url)

    def complete(self, taken: Taken, result: UnitResult, details: dict) -> None:
        """Store `result` in the unit's trial, with `details` (who, where, how long), and mark it COMPLETE.

        An earlier attempt's stored result must be the same. A trial failed as dead while this process trained it
        (its heartbeats did not get through) keeps this result in a trial of its own, which the gather compares."""
        encoded = result.encode()
        if taken.earlier is not None:
            agreed(taken.unit, [UnitResult.decode(taken.earlier), result], f"unit {taken.unit}")
        value = float(result.final_accuracy.mean())
        try:
            self.storage.set_trial_system_attr(taken.trial_id, "result", encoded)
            for key, detail in details.items():
                self.storage.set_trial_user_attr(taken.trial_id, key, detail)
            self.storage.set_trial_state_values(taken.trial_id, TrialState.COMPLETE, values=[value])
        except UpdateFinishedTrialError:
            attrs = {"unit": taken.unit, **details, "presumed_dead": taken.number}
            self.study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.COMPLETE, value=value, user_attrs=attrs, system_attrs={"result": encoded}
                )
            )

    def release(self, taken: Taken, error: BaseException | None = None) -> None:
        """End this attempt: FAILED with the first line of `error` (the unit's fault, which a retry would repeat), or
        with no error (interrupted) FAILED and queued again for another worker."""
        try:
            if error is not None:
                self.storage.set_trial_user_attr(taken.trial_id, "error", reason(error))
            self._fail(taken.trial_id, retry=error is None)
        except (UpdateFinishedTrialError, *STORAGE_ERRORS):
            pass  # failed as dead already, or the storage is what failed: its heartbeat stops, which says the same

    def fail_dead(self) -> None:
        """Fail and queue again the units whose worker died: silent for GRACE_HEARTBEATS beats (Optuna's check), gone
        from this host, or never marked `grace` after it was taken (it died between the two)."""
        with quiet_heartbeat_warnings():
            fail_stale_trials(self.study)
        cutoff = datetime.now() - timedelta(seconds=GRACE_HEARTBEATS * self.heartbeat_s)
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get("worker", {})
            marked = worker.get("trial") == trial.number
            gone = marked and worker["host"] == HOST and not process_alive(worker["pid"])
            if gone or (not marked and trial.datetime_start < cutoff):
                with suppress(UpdateFinishedTrialError):  # another process failed it first
                    self._fail(trial._trial_id, retry=True)

    def _fail(self, trial_id: int, retry: bool) -> None:
        if self.storage.set_trial_state_values(trial_id, TrialState.FAIL) and retry:
            self.storage.get_heartbeat_stale_trial_callback()(self.study, self.storage.get_trial(trial_id))

    def progress(self) -> Progress:
        trials = self.study.get_trials(deepcopy=False)
        done = {trial.user_attrs["unit"] for trial in trials if trial.state == TrialState.COMPLETE}
        running, waiting = (sum(trial.state == state for trial in trials) for state in LIVE[::-1])
        return Progress(len(done), running, waiting, running + waiting)

    def results(self, unit_names: list[str]) -> list[UnitResult]:
        """Every unit's one result, in unit order (each trained twice or more agrees); a unit with none is a StudyError
        naming it and why its last attempt ended."""
        trials = self.study.get_trials(deepcopy=False)
        found = []
        for unit, name in enumerate(unit_names):
            mine = [trial for trial in trials if trial.user_attrs.get("unit") == unit]
            done = [UnitResult.decode(t.system_attrs["result"]) for t in mine if t.state == TrialState.COMPLETE]
            if not done:
                raise StudyError(f"{name} did not finish ({_last_attempt(mine)}): run `dvc repro` again to retry it")
            found.append(agreed(unit, done, name))
        return found


def refuse_other_live(storage: RDBStorage, url: str, identity: dict) -> None:
    """A StudyError naming what differs, when a sweep study of this variant under other settings has units to train:
    the one a worker of this checkout was started to help, and cannot."""
    prefix, name = f"{NAME_PREFIX}-{identity['variant']}-", study_name(identity)
    others = [study for study in storage.get_all_studies() if study.study_name.startswith(prefix)]
    for other in sorted(others, key=lambda study: study._study_id, reverse=True):  # the newest first
        if other.study_name != name and storage.get_all_trials(other._study_id, deepcopy=False, states=LIVE):
            changed = provenance.differences(other.user_attrs.get("identity"), identity)
            raise StudyError(
                f"sweep@{identity['variant']}: this checkout differs from the one the study {other.study_name} in "
                f"{redact(url)} trains ({changed}): check out the stage's commit, params.yaml and data to join it"
            )


def _last_attempt(trials: list[FrozenTrial]) -> str:
    last = trials[-1] if trials else None
    worker = last.user_attrs.get("worker", {}) if last else {}
    where = f" on {worker['host']} (pid {worker['pid']})" if last and worker.get("trial") == last.number else ""
    why = last and (last.user_attrs.get("error") or f"{last.state.name.lower()}, its worker gone")
    return f"trial {last.number}{where}: {why}" if last else "never queued"
