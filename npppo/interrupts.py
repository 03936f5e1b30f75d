"""SIGTERM handled like Ctrl-C.

A run stopped by ``kill``, a batch scheduler or a container's stop gets SIGTERM, whose default ends the
process on the spot (exit status 143, nothing saved). Inside :func:`sigterm_as_interrupt` SIGTERM
raises :class:`Terminated` instead, a ``KeyboardInterrupt``, so every place that ends a run cleanly
on Ctrl-C (the driver saving the last completed iteration, the workers stopped, Ray shut down) does
the same for it. Entry points (the command line, :func:`npppo.train.train`) install the handler for
their duration and put the previous one back; constructors never touch signals.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised in the main thread by :func:`sigterm_as_interrupt`'s handler)."""

    signum = signal.SIGTERM


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: SIGTERM for :class:`Terminated`, else SIGINT (Ctrl-C)."""
    return int(getattr(interrupt, "signum", signal.SIGINT))


def exit_status(signum: int) -> int:
    """The shell's status for a process ended by ``signum``: 128 + signum (130 Ctrl-C, 143 SIGTERM)."""
    return 128 + int(signum)


INTERRUPTED = exit_status(signal.SIGINT)  # 130: the shell's status for a process ended by SIGINT
TERMINATED = exit_status(signal.SIGTERM)  # 143


def interrupted_words(signum: int | None) -> str:
    """How a stopped run is named in its last line (the batch of seeds looks for "npppo: interrupted")."""
    return "interrupted by SIGTERM" if signum == signal.SIGTERM else "interrupted"


_terminated: list[bool] = []  # set by the handler: SIGTERM came (see :func:`sigterm_kept`)


def cancel_abort_timer() -> None:
    """Ray's core worker handles SIGTERM with abseil's failure-signal handler first, which arms a 3 s
    SIGALRM that aborts the process (exit -6 and a stack dump) unless it has ended by then; the clean
    end that SIGTERM starts here (workers stopped, Ray shut down) may take longer while Ray is
    starting. npppo sets no alarm of its own, so none is lost."""
    if hasattr(signal, "alarm"):
        signal.alarm(0)


def _raise_terminated(signum, frame) -> None:
    _terminated[:] = [True]
    cancel_abort_timer()
    raise Terminated()


@contextmanager
def sigterm_kept() -> Iterator[None]:
    """Around a library call that turns any exception its signal check raises into a bare
    ``KeyboardInterrupt`` (``ray.get`` does: a SIGTERM while it waits came out as Ctrl-C, exit 130):
    such an interrupt that follows our SIGTERM handler's is raised as :class:`Terminated` again."""
    _terminated.clear()
    try:
        yield
    except KeyboardInterrupt as interrupt:
        if _terminated and not isinstance(interrupt, Terminated):
            raise Terminated() from interrupt
        raise


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`; the previous handler is restored after.
    Off the main thread (where Python cannot set handlers) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """SIGINT and SIGTERM ignored within the block (a second one must not cut a checkpoint's write
    short), their handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
