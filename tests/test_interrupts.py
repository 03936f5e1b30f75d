"""Signals as exceptions (npppo/interrupts.py)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from npppo.interrupts import Terminated, signal_of, sigterm_as_interrupt, sigterm_kept


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_sigterm_that_a_library_turns_into_a_bare_keyboard_interrupt_stays_a_sigterm(signum):
    def library_wait():  # what ray.get does with the exception its signal check raised
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)
        except KeyboardInterrupt:
            raise KeyboardInterrupt() from None

    with pytest.raises(KeyboardInterrupt) as caught, sigterm_as_interrupt(), sigterm_kept():
        library_wait()
    assert signal_of(caught.value) == signum
    assert isinstance(caught.value, Terminated) == (signum == signal.SIGTERM)
