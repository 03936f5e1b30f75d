"""The progress line's speed and time-left estimate (issue 14, point 7), with a fake clock."""

from __future__ import annotations

import io

from npppo.progress import ProgressLine, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_left_ignores_the_first_iteration_and_is_unknown_on_it():
    clock, stream = FakeClock(), io.StringIO()
    line = ProgressLine(10_000, stream=stream, clock=clock)
    clock.now += 20.0  # the first iteration: 1,000 steps, slow (compiling the kernels)
    line.update({"iteration": 1, "steps": 1_000, "return_mean": -1.0})
    clock.now += 1.0  # then 1,000 steps per second
    line.update({"iteration": 2, "steps": 2_000, "return_mean": -1.0})
    clock.now += 1.0
    line.update({"iteration": 3, "steps": 3_000, "return_mean": -1.0})
    first, second, third = stream.getvalue().splitlines()
    assert first.endswith("50 steps/s  left ?")  # its own rate; no estimate from one iteration
    assert second.endswith("1,000 steps/s  left 0:00:08")  # 8,000 steps left at 1,000/s, not at 95/s
    assert third.endswith("1,000 steps/s  left 0:00:07")


def test_time_left_counts_from_the_resume_point():
    clock, stream = FakeClock(), io.StringIO()
    line = ProgressLine(10_000, start_steps=6_000, stream=stream, clock=clock)
    for iteration, steps in ((7, 7_000), (8, 8_000)):
        clock.now += 2.0
        line.update({"iteration": iteration, "steps": steps, "return_mean": 0.0})
    first, second = stream.getvalue().splitlines()
    assert first.endswith("500 steps/s  left ?") and second.endswith("500 steps/s  left 0:00:04")


def test_format_duration():
    assert format_duration(float("nan")) == "?" and format_duration(3725.4) == "1:02:05"


def test_an_iteration_without_a_finished_episode_says_so_instead_of_nan():
    clock, stream = FakeClock(), io.StringIO()
    line = ProgressLine(10_000, stream=stream, clock=clock)
    clock.now += 1.0
    line.update({"iteration": 1, "steps": 1_000, "episodes": 0, "return_mean": float("nan")})
    clock.now += 1.0
    line.update({"iteration": 2, "steps": 2_000, "episodes": 3, "return_mean": -5.0})
    first, second = stream.getvalue().splitlines()
    assert "nan" not in first and "steps 1,000/10,000  no episode finished  1,000 steps/s" in first
    assert "return      -5.0" in second
