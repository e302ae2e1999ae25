"""Progress as its users watch it: with no terminal, a plain line at least every 30 s and every 5 % of the work, with
the stage, the work done of its total, the pace and the time left; on a terminal, tqdm's bar and no plain lines."""

from __future__ import annotations

import io

import pytest

from src.engine.progress import Output, Progress, quiet_seconds
from src.errors import StudyError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _progress(stream, clock) -> Progress:
    return Progress("train@bn", 1000, members=10, output=Output(stream, clock))


def test_without_a_terminal_a_line_comes_at_every_5_percent_of_the_work():
    stream, clock = io.StringIO(), Clock()
    with _progress(stream, clock) as progress:
        for done in range(10, 1001, 10):
            clock.now += 1.0  # 10 steps a second: the 5 % rule speaks, not the clock
            progress.update_to(done)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20
    assert lines[0] == "train@bn: 50 of 1,000 steps (5%), 100 member-steps/s, 1 min 35 s left"
    assert lines[-1].startswith("train@bn: 1,000 of 1,000 steps (100%), ")


def test_without_a_terminal_slow_work_still_says_something_every_30_seconds():
    stream, clock = io.StringIO(), Clock()
    with _progress(stream, clock) as progress:
        for done in range(1, 31):
            clock.now += 10.0  # a step in 10 s: 5 % takes 500 s
            progress.update_to(done, note="best accuracy 0.9000")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10  # one per 30 s of 300 s
    assert lines[0] == "train@bn: 3 of 1,000 steps (0%), 1 member-steps/s, 2 h 46 min left; best accuracy 0.9000"


def test_the_pace_counts_the_work_of_this_process_only_after_a_resume():
    stream, clock = io.StringIO(), Clock()
    with Progress("sweep@bn", 100, done=60, output=Output(stream, clock)) as progress:
        clock.now = 40.0
        progress.update_to(80)
    assert stream.getvalue() == "sweep@bn: 80 of 100 steps (80%), 0.5 steps/s, 40 s left\n"


def test_on_a_terminal_the_bar_is_drawn_and_no_plain_line_is_written():
    stream, clock = io.StringIO(), Clock()
    with Progress("tune@bn", 10, unit="trial", output=Output(stream, clock, show=True)) as progress:
        progress.update_to(5, note="best validation accuracy 0.97")
    drawn = stream.getvalue()
    assert "\r" in drawn and "tune@bn" in drawn and "5/10" in drawn and "\n" not in drawn.rstrip("\n")
    assert "of 10 trials" not in drawn


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [io.StringIO(), Terminal()], ids=["log", "terminal"])
def test_progress_told_to_be_quiet_says_nothing(stream):
    with Progress("train@bn", 10, output=Output(stream, show=False)) as progress:
        progress.update_to(10)
    assert stream.getvalue() == ""


def test_by_default_a_terminal_gets_the_bar():
    stream = Terminal()
    with Progress("train@bn", 10, output=Output(stream)) as progress:
        progress.update_to(10)
    assert "\r" in stream.getvalue() and "10 of 10 steps" not in stream.getvalue()


def test_work_over_in_a_few_seconds_writes_no_line():
    stream, clock = io.StringIO(), Clock()
    label = "evaluate: scoring train@bn's networks"
    with Progress(label, 10, unit="network", output=Output(stream, clock)) as progress:
        for done in range(1, 11):
            clock.now += 0.4
            progress.update_to(done)
    assert stream.getvalue() == ""


def test_the_quiet_seconds_come_from_the_environment_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv("PROGRESS_QUIET_S", raising=False)
    assert quiet_seconds() == 5.0
    monkeypatch.setenv("PROGRESS_QUIET_S", "0")
    assert Output().quiet_s == 0.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("PROGRESS_QUIET_S", bad)
        with pytest.raises(StudyError, match=rf"PROGRESS_QUIET_S must be a number of seconds >= 0, got '{bad}'"):
            quiet_seconds()


def test_lines_fall_on_the_5_percent_marks_so_none_is_more_than_5_percent_after_the_last():
    stream, clock = io.StringIO(), Clock()
    with Progress("train@bn", 50_000, output=Output(stream, clock)) as progress:
        for done in (35, 350, *range(500, 50_001, 500)):  # the trainer's updates: early evaluations, then every 500
            clock.now += 1.0
            progress.update_to(done)
    lines = stream.getvalue().splitlines()
    done = [int(line.split(" of ")[0].split(": ")[1].replace(",", "")) for line in lines]
    assert done == list(range(2_500, 50_001, 2_500)), done  # every mark and no other line
