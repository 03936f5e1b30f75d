"""What a training run shows and records while it runs: the live progress line and ``progress.csv``.

The progress line reads ``iter 12  steps 24,000/100,000  return -812.3  2,150 steps/s  left 0:00:35``
(``no episode finished`` in place of the return when the iteration's batch holds none).
On a terminal it is one line rewritten in place (carriage return); otherwise (a log file, a pipe)
each iteration prints a plain line.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO


class PipeSafeStream:
    """A text stream (stdout) that outlives its reader: once the other end of a pipe is closed
    (``npppo train | head -1``), what is written goes to the null device instead of raising
    BrokenPipeError, so that the run goes on writing its CSV and checkpoints."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed_reader = False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._mute()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._mute()

    def _mute(self) -> None:
        """Point the stream's file descriptor at the null device (what is buffered then drains there)."""
        import os

        self.closed_reader = True
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self.stream.fileno())
        finally:
            os.close(null)
        try:
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def __getattr__(self, name: str):
        return getattr(self.stream, name)  # isatty, fileno, encoding, ...


class ProgressLine:
    """Prints one status line per iteration.

    Steps/s and the time left are measured from the end of this session's first iteration: the first
    iteration also compiles the kernels on a fresh install (seconds of one-off work), so counting it
    would inflate the estimate many times over. On the first iteration the time left is ``?`` and
    steps/s is that iteration's own. ``clock`` (default ``time.perf_counter``) is for tests.
    """

    def __init__(self, total_steps: int, start_steps: int = 0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.total_steps, self.start_steps = total_steps, start_steps
        self.stream = stream if stream is not None else sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.started = clock()
        self._first: tuple[float, int] | None = None  # (time, steps) at the end of the first iteration
        self._width = 0

    def update(self, metrics: dict[str, Any]) -> None:
        steps = int(metrics["steps"])
        now = self.clock()
        if self._first is None:
            self._first = (now, steps)
            elapsed = now - self.started
            rate = (steps - self.start_steps) / elapsed if elapsed > 0 else math.nan
            left = math.nan  # one iteration (with the compiling) says nothing about the next ones
        else:
            elapsed = now - self._first[0]
            rate = (steps - self._first[1]) / elapsed if elapsed > 0 else math.nan
            left = (self.total_steps - steps) / rate if rate > 0 else math.nan
        # a fixed-step batch may hold no finished episode (long episodes, or ones that never end)
        episode_return = (f"return {metrics['return_mean']:9.1f}" if metrics.get("episodes", 1)
                          else "no episode finished")
        line = (
            f"iter {metrics['iteration']:>4}  steps {steps:,}/{self.total_steps:,}  "
            f"{episode_return}  {rate:,.0f} steps/s  left {format_duration(left)}"
        )
        if self.live:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own below the progress line (an evaluation's result); the live line goes on below it."""
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line (so that what is printed next starts on a line of its own)."""
        if self.live and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def format_duration(seconds: float) -> str:
    """``h:mm:ss``, or ``?`` when not known yet."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressCSV:
    """``progress.csv``: one row per iteration, one column per metric of :meth:`npppo.PPO.learn`.

    Appending to an existing file (a resumed run) keeps its header and first drops the rows of
    iterations after ``keep_until`` (work done after the checkpoint being resumed from).
    """

    def __init__(self, path: str | Path, keep_until: int | None = None) -> None:
        self.path = Path(path)
        self.fields: list[str] | None = None
        if keep_until is not None and self.path.is_file():
            rows, self.fields = read_progress(self.path)
            with open(self.path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, self.fields)
                writer.writeheader()
                writer.writerows(row for row in rows if int(float(row["iteration"])) <= keep_until)

    def append(self, metrics: dict[str, Any]) -> None:
        new_file = self.fields is None
        if new_file:
            self.fields = list(metrics)
        with open(self.path, "a" if not new_file else "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.fields, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(metrics)


class TensorBoardLog:
    """Event files for TensorBoard with the scalars of ``progress.csv`` (``npppo train --tensorboard DIR``).

    Each numeric column of a row is a scalar of the same name, at x = the row's env steps (NaN, e.g.
    ``eval_mean`` between evaluations, is left out). Written by tensorboardX, an optional extra
    (``pip install 'npppo[tensorboard]'``): a small pure-Python writer (NumPy + protobuf) that needs
    neither TensorFlow nor PyTorch. ``purge_step`` (a resumed run's step count) tells TensorBoard to
    drop what earlier event files hold from that step on, as ``progress.csv`` drops those rows.
    """

    def __init__(self, logdir: str | Path, purge_step: int | None = None) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            from npppo.errors import NpppoError

            raise NpppoError("--tensorboard needs tensorboardX, an optional extra: "
                             "pip install 'npppo[tensorboard]'") from None
        self.logdir = Path(logdir)
        self.writer = SummaryWriter(str(self.logdir), purge_step=purge_step, flush_secs=10)

    def append(self, metrics: dict[str, Any]) -> None:
        step = int(metrics["steps"])
        for name, value in metrics.items():
            if name in ("steps", "iteration") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(name, float(value), step)

    def close(self) -> None:
        self.writer.close()


def read_progress(path: str | Path) -> tuple[list[dict[str, str]], list[str]]:
    """(rows, column names) of a ``progress.csv``."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader), list(reader.fieldnames or [])
