"""A run's wall time by phase: each phase's seconds summed over every time it ran, carried over a resume."""

from __future__ import annotations

import time

import torch

from src.engine.clock import PhaseClock

CPU = torch.device("cpu")


def test_a_phase_is_charged_the_time_spent_inside_it_every_time_it_runs():
    clock = PhaseClock(CPU)
    for _ in range(2):
        with clock.phase("evaluation"):
            time.sleep(0.02)
    with clock.phase("steps"):
        pass
    assert clock.seconds["evaluation"] >= 0.04 and clock.seconds["steps"] < clock.seconds["evaluation"]
    assert clock.total() == clock.seconds["evaluation"] + clock.seconds["steps"]


def test_a_phase_that_raises_is_still_charged():
    clock = PhaseClock(CPU)
    try:
        with clock.phase("checkpoints"):
            time.sleep(0.01)
            raise OSError("disk full")
    except OSError:
        pass
    assert clock.seconds["checkpoints"] >= 0.01


def test_a_resumed_clock_goes_on_from_the_seconds_it_is_given_and_says_them_in_a_runs_order():
    clock = PhaseClock(CPU, {"export": 1.0, "steps": 10.0, "evaluation": 2.0})
    with clock.phase("steps"):
        pass
    assert clock.seconds["steps"] >= 10.0
    assert clock.total() == clock.seconds["steps"] + 2.0  # training phases only
    assert clock.describe().split(", ")[1:] == ["evaluation 2.0 s", "export 1.0 s"]
    assert clock.describe().startswith("steps 10.0 s")
