"""One tuning worker: batches of trials from a shared study, trained together, told back, within one budget.

A worker asks a batch of trials, trains them as one K-member model (`train_batch`) and tells each result. The rules:

- Objective: validation accuracy after `tune.steps` steps. A trial whose loss turns NaN or infinite scores 0.0,
  below any trial that trained, so it is never the best and TPE steers away; it is COMPLETE with user attrs
  diverged=True and accuracy_at_divergence.
- Pruning: after `tune.pruning_warmup_evals` evaluations, a trial below the median of the completed trials at the
  same step is PRUNED and stops updating (the engine freezes it); its value is its last reported accuracy.
- Budget: the study is done when `tune.trials` trials are finished (COMPLETE or PRUNED). A worker asks only for the
  slots neither finished nor running; when workers ask at once, a trial ranked past the budget (the non-failed
  trials numbered up to it) is failed before it trains, so together they finish exactly the budget.
- Dead workers: a trial whose heartbeat stopped, or that never had one, is failed and re-queued at its learning rate
  (Optuna's RetryHeartbeatStaleTrialCallback, set on the storage); a waiting worker picks it up.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

import numpy as np
import optuna
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, Trial, TrialState

from src.config import TuneConfig
from src.engine.progress import Progress
from src.engine.trainer import Evaluation, OnEval, TrainingHistory
from src.stores.optuna_storage import GRACE_HEARTBEATS, HEARTBEAT_S, quiet_heartbeat_warnings
from src.tune.study import FINISHED, count

DIVERGED_VALUE = 0.0
POLL_S = 1  # how often a waiting worker looks whether the trials it waits for have ended

TrainBatch = Callable[[Sequence[float], OnEval], TrainingHistory]
Told = list[tuple[FrozenTrial, list[dict]]]  # each told trial with its evaluation history


def sampler_for_batch(seed: int, first_trial: int, trials_per_batch: int) -> optuna.samplers.TPESampler:
    """TPE seeded by (tune.seed, the batch's first trial number): one worker is reproducible, and workers
    that start together still draw different learning rates. The first batch is random."""
    batch_seed = int(np.random.SeedSequence([seed, first_trial]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=batch_seed, n_startup_trials=trials_per_batch)


class TrialWorker:
    """Runs batches of trials on `study` until it has `tune.trials` finished ones (or `tune.timeout_s` passed)."""

    id = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial (its user attr `worker`)

    def __init__(self, study: optuna.Study, storage: RDBStorage, tune: TuneConfig, heartbeat_s: int = HEARTBEAT_S):
        self.study, self.storage, self.tune, self.heartbeat_s = study, storage, tune, heartbeat_s

    def run(self, train_batch: TrainBatch, on_batch: Callable[[Told], None] | None = None) -> None:
        tune, study = self.tune, self.study
        deadline = None if tune.timeout_s is None else time.monotonic() + tune.timeout_s
        waiting = False
        with Progress(study.study_name, tune.trials, unit="trial") as bar:
            while deadline is None or time.monotonic() < deadline:
                self.fail_dead_trials(GRACE_HEARTBEATS * self.heartbeat_s)
                trials = study.get_trials(deepcopy=False)
                finished, running = count(trials, FINISHED), count(trials, (TrialState.RUNNING,))
                _show_progress(bar, study, finished, trials)
                if finished >= tune.trials:
                    return
                free = tune.trials - finished - running
                if free <= 0:
                    self._wait(running, announce=not waiting)
                    waiting = True
                    continue
                waiting = False
                kept = self.ask_within_budget(min(tune.trials_per_batch, free))
                if kept:
                    study.sampler = sampler_for_batch(tune.seed, kept[0].number, tune.trials_per_batch)
                    told = self.run_batch(kept, train_batch)
                    if on_batch is not None:
                        on_batch(told)

    def _wait(self, running: int, announce: bool) -> None:
        """Every free slot is held by a running trial: wait for them, since a dead worker's are picked up here."""
        if announce:
            retried = GRACE_HEARTBEATS * self.heartbeat_s
            print(
                f"{self.study.study_name}: waiting for {running} trial(s) running elsewhere "
                f"(a dead worker's are retried after {retried} s)",
                file=sys.stderr,
            )
        time.sleep(min(self.heartbeat_s, POLL_S))

    def ask_within_budget(self, wanted: int) -> list[Trial]:
        """Ask `wanted` trials and keep those within the budget; the surplus of a race with other workers fails.

        Trial numbers are assigned under a lock on the study row, so once ours exist every lower-numbered trial is
        visible: a trial is kept when at most `tune.trials` non-failed trials are numbered up to it. A kept trial
        gets a heartbeat, then the user attr `kept` (its own number, which a re-queued copy does not share).
        """
        with quiet_heartbeat_warnings():
            asked = [self.study.ask() for _ in range(wanted)]
        for trial in asked:
            self.storage.record_heartbeat(trial._trial_id)  # the id Optuna's own heartbeat thread uses
        live = [trial.number for trial in self.study.get_trials(deepcopy=False) if trial.state != TrialState.FAIL]
        kept = []
        for trial in asked:
            try:
                if sum(number <= trial.number for number in live) <= self.tune.trials:
                    trial.set_user_attr("worker", self.id)
                    trial.set_user_attr("kept", trial.number)
                    kept.append(trial)
                else:
                    trial.set_user_attr("surplus", True)
                    self.study.tell(trial, state=TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue  # failed as an orphan by a worker whose clock runs far ahead of ours
        return kept

    def fail_dead_trials(self, grace_s: float) -> None:
        """Fail and re-queue the trials whose worker died: those whose heartbeat stopped (Optuna's check) and those
        never kept `grace_s` after they were asked (their worker died before the first heartbeat, which Optuna's
        check cannot see)."""
        with quiet_heartbeat_warnings():
            fail_stale_trials(self.study)
        cutoff = datetime.now() - timedelta(seconds=grace_s)  # datetime_start: the asking host's clock
        retry = self.storage.get_heartbeat_stale_trial_callback()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("kept") != trial.number and trial.datetime_start < cutoff:
                try:
                    self.study.tell(trial.number, state=TrialState.FAIL)
                except UpdateFinishedTrialError:
                    continue  # another worker failed it first
                retry(self.study, trial)

    def run_batch(self, trials: Sequence[Trial], train_batch: TrainBatch) -> Told:
        """Train `trials` together, report each evaluation for pruning, and tell every result."""
        tune = self.tune
        with self.heartbeats(trials):
            try:
                learning_rates = [trial.suggest_float("lr", tune.lr_min, tune.lr_max, log=True) for trial in trials]
                monitor = PruningMonitor(trials, last_step=tune.steps)
                result = train_batch(learning_rates, monitor.on_eval)
            except BaseException:
                for trial in trials:  # failed trials do not count: the budget is filled by others
                    self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
        told = []
        for member, trial in enumerate(trials):
            if monitor.lost[member]:
                continue  # failed as stale by another worker while training; its retry stands in for it
            history = member_history(result, member, until=monitor.ended[member])
            try:
                frozen = tell_result(self.study, trial, history, result.final.accuracy[member], monitor.pruned[member])
            except UpdateFinishedTrialError:
                continue
            told.append((frozen, history))
        return told

    @contextmanager
    def heartbeats(self, trials: Sequence[Trial]) -> Iterator[None]:
        """Record the trials' heartbeats every heartbeat_s until the block ends (`ask_within_budget` records the first).

        A thread rather than the engine's on_eval: evaluations can be further apart than the grace period.
        """

        def keep_beating() -> None:
            while not stop.wait(self.heartbeat_s):
                for trial in trials:
                    try:
                        self.storage.record_heartbeat(trial._trial_id)
                    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
                        print(f"warning: heartbeat of trial {trial.number} not recorded: {error}", file=sys.stderr)

        stop = threading.Event()
        thread = threading.Thread(target=keep_beating, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


class PruningMonitor:
    """The engine's on_eval: reports each live trial's validation accuracy and stops the pruned ones."""

    def __init__(self, trials: Sequence[Trial], last_step: int):
        self.trials, self.last_step = trials, last_step
        self.pruned = [False] * len(trials)
        self.lost = [False] * len(trials)
        self.ended = [last_step] * len(trials)  # the step each trial's history ends at

    def on_eval(self, evaluation: Evaluation) -> list[bool]:
        for member, trial in enumerate(self.trials):
            if self.ended[member] < evaluation.step or evaluation.diverged[member]:
                self.ended[member] = min(self.ended[member], evaluation.step)
                continue
            try:
                trial.report(evaluation.accuracy[member], evaluation.step)
                # a trial that reached the last step has finished its training: it completes, never pruned
                if evaluation.step < self.last_step and trial.should_prune():
                    self.pruned[member], self.ended[member] = True, evaluation.step
            except UpdateFinishedTrialError:
                self.lost[member], self.ended[member] = True, evaluation.step
        return [pruned or lost for pruned, lost in zip(self.pruned, self.lost, strict=True)]


def member_history(result: TrainingHistory, member: int, until: int) -> list[dict]:
    """One trial's evaluations up to step `until`: {step, accuracy, loss, diverged}."""
    return [
        {
            "step": step,
            "accuracy": float(result.accuracy[i, member]),
            "loss": float(result.loss[i, member]),
            "diverged": bool(result.diverged[i, member]),
        }
        for i, step in enumerate(result.eval_steps)
        if step <= until
    ]


def tell_result(study: optuna.Study, trial: Trial, history: list[dict], final_accuracy: float, pruned: bool):
    """Tell one trial's outcome: PRUNED, or COMPLETE with its final validation accuracy (0.0 when diverged).

    The final accuracy is the trained network's under BN's population statistics (Algorithm 2); the pruning
    decisions saw the moving averages BN has while it trains."""
    diverged = any(row["diverged"] for row in history)
    trial.set_user_attr("diverged", diverged)
    if diverged:
        trial.set_user_attr("accuracy_at_divergence", next(row["accuracy"] for row in history if row["diverged"]))
        return study.tell(trial, DIVERGED_VALUE)
    if pruned:
        return study.tell(trial, state=TrialState.PRUNED)
    return study.tell(trial, final_accuracy)


def _show_progress(bar: Progress, study: optuna.Study, finished: int, trials: Sequence[FrozenTrial]) -> None:
    best = ""
    if count(trials, (TrialState.COMPLETE,)):
        best = f"best validation accuracy {study.best_value:.4f} at lr {study.best_params['lr']:.3g}"
    bar.update_to(min(finished, bar.total), note=best)
