"""Progress of long work as its users watch it: tqdm's bar on a terminal; with no terminal (a log file, `dvc queue`,
CI, a SLURM job, nohup) a plain line on stderr at a steady pace, at least every 30 s and every 5 % of the work, once
the work has run a few seconds (work over sooner needs no progress, and would bury an error under it; the environment
variable PROGRESS_QUIET_S sets how many):

    train@bn: 12,500 of 50,000 steps (25%), 2,470 member-steps/s, 3 min 2 s left; best accuracy 0.9712
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from src.errors import StudyError

EVERY_S = 30.0  # the longest a log goes without a line
EVERY_SHARE = 0.05  # and the most work it goes without one
QUIET_S = 5.0  # how long work runs before its first line, unless PROGRESS_QUIET_S says otherwise


def quiet_seconds() -> float:
    """PROGRESS_QUIET_S as seconds, QUIET_S if it is unset."""
    text = os.environ.get("PROGRESS_QUIET_S", str(QUIET_S))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise StudyError(f"PROGRESS_QUIET_S must be a number of seconds >= 0, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Output:
    """Where progress goes, the clock its pace is read on (a test hands in its own), and how it shows: `show` None
    draws a bar on a terminal and writes lines elsewhere, True always draws the bar, False says nothing (tests,
    benchmarks)."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    show: bool | None = None
    quiet_s: float = field(default_factory=quiet_seconds)


class Progress:
    """`total` units of work (steps, trials, networks), `done` of them at the start, each worth `members` member-units
    (a step of K members is K member-steps), shown as `output` says."""

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "step",
        *,
        done: int = 0,
        members: int = 1,
        output: Output | None = None,
    ):
        output = Output() if output is None else output
        self.label, self.total, self.unit, self.members = label, total, unit, members
        show = output.show
        self.stream, self.clock, self.enabled = output.stream, output.clock, show is not False
        self.quiet_s = output.quiet_s
        self.done, self.note = done, ""
        self._started, self._started_at = done, self.clock()
        self._last_line, self._last_at = done, self._started_at
        drawn = show or (show is None and self.stream.isatty())
        self._bar = tqdm(total=total, initial=done, desc=label, unit=unit, file=self.stream) if drawn else None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update_to(self, done: int, note: str = "") -> None:
        """`done` units of the work are done; `note` (best accuracy, units waiting) goes at the end of the line."""
        self.done, self.note = done, note or self.note
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.n = done
            self._bar.set_postfix_str(self.note, refresh=False)
            self._bar.refresh()
            return
        now = self.clock()
        if now - self._started_at < self.quiet_s:
            return
        # a line as the work crosses each 5 % mark, so no two lines are further apart than 5 % and an update
        due = now - self._last_at >= EVERY_S or self._mark(done) > self._mark(self._last_line)
        if due or (done >= self.total > self._last_line):
            self._last_line, self._last_at = done, now
            print(self.line(), file=self.stream, flush=True)

    def _mark(self, done: int) -> int:
        """How many 5 % marks `done` units have passed."""
        return int(done // (EVERY_SHARE * self.total)) if self.total else 0

    def line(self) -> str:
        """What a log reads now: the work done of its total, the pace since this process began, the time left."""
        share = self.done / self.total if self.total else 1.0
        elapsed = self.clock() - self._started_at
        pace = (self.done - self._started) / elapsed if elapsed > 0 else 0.0
        left = _duration((self.total - self.done) / pace) + " left" if pace > 0 else "time left unknown yet"
        rate = (
            f"{pace * self.members:,.0f} member-{self.unit}s/s" if self.members > 1 else f"{pace:,.1f} {self.unit}s/s"
        )
        text = f"{self.label}: {self.done:,} of {self.total:,} {self.unit}s ({share:.0%}), {rate}, {left}"
        return f"{text}; {self.note}" if self.note else text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    """'1 h 3 min', '3 min 2 s', '12 s'."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
