"""The first run: compiling the kernels once, and saying so while it happens.

With an empty kernel cache (a fresh install, an upgrade, an edit of npppo's source) every kernel a
run needs is compiled at its first call, several seconds in all. Two things make that bearable:

* the learner compiles the actor's update kernels (:func:`compile_update_kernels`) while the first
  rollout worker compiles the rollout's, then the critic's update kernels; the other workers start at
  the same time but wait until it has built its sampler (:func:`wait_for_first_sampler`), and load
  its kernels instead of compiling the same ones beside it (:class:`npppo.backends.local.LocalWorkers`);
* :func:`announce_compiling` prints one line as soon as anything is to be compiled, decided by what
  the Numba cache holds and by Numba's own compile events, not by whether a folder exists.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from typing import TextIO

import numpy as np
from numba.core import event

from npppo.errors import TrainingError
from npppo.sampler import Batch

COMPILING_LINE = "npppo: compiling kernels (first run only: about 10-15 s before the first iteration)"


def rollout_kernels() -> list:
    """The compiled functions a rollout worker calls for every step (the largest to compile)."""
    from npppo.policy import _policy_rows
    from npppo.sampler import sample_actions

    return [_policy_rows, sample_actions]


def is_cached(kernel) -> bool:
    """Whether the cache holds a compiled version of ``kernel`` for npppo's current source: Numba's
    index of the kernel (which it discards when the source stamp differs: :mod:`npppo.jit`) and the
    data files it names (Numba writes the index first, so another process may be between the two)."""
    if kernel.overloads:
        return True  # compiled (or loaded) in this process already
    try:
        cache_file = kernel._cache._cache_file
        names = cache_file._load_index().values()
        return bool(names) and all(os.path.exists(cache_file._data_path(name)) for name in names)
    except (AttributeError, OSError, EOFError, ValueError):  # another Numba's internals, or an unreadable index
        return False


def rollout_kernels_cached() -> bool:
    return all(is_cached(kernel) for kernel in rollout_kernels())


KERNEL_WAIT_S = 300.0  # longer than any compile; a worker that waited this long compiles the kernels itself


def wait_for_first_sampler(built, conn, timeout: float = KERNEL_WAIT_S, poll_s: float = 0.1) -> bool:
    """In a rollout worker: wait until the first worker has built its sampler, whose kernels (the
    Gymnasium step's, or a compiled environment's fused rollout) are then in the cache for this one
    to load. ``built`` is the read end of a pipe whose only write end the first worker closes then
    (or by dying). False if the learner's pipe ``conn`` said stop meanwhile (the only message it
    sends before a worker's "ready"). After ``timeout`` it returns True anyway, and the worker
    compiles them itself."""
    deadline = time.monotonic() + timeout
    while not built.poll(poll_s) and time.monotonic() < deadline:  # poll is True at end-of-file
        if conn.poll():
            conn.recv()
            return False
    return True


class _FirstCompile(event.Listener):
    """Prints ``line`` to ``stream`` at the first compile that Numba starts (cache misses only)."""

    def __init__(self, line: str, stream: TextIO) -> None:
        self.line, self.stream, self.done = line, stream, False

    def on_start(self, ev) -> None:
        if not self.done:
            self.done = True
            print(self.line, file=self.stream, flush=True)

    def on_end(self, ev) -> None:
        pass


@contextlib.contextmanager
def announce_compiling(stream: TextIO | None = None, line: str = COMPILING_LINE) -> Iterator[None]:
    """While inside: ``line`` is printed once, right away if the rollout kernels are not in the cache
    (the workers would compile them out of sight), else at the first kernel this process compiles."""
    listener = _FirstCompile(line, stream if stream is not None else sys.stdout)
    if not rollout_kernels_cached():
        listener.on_start(None)
    event.register("numba:compile", listener)
    try:
        yield
    finally:
        event.unregister("numba:compile", listener)


def compile_update_kernels(agent, critic: bool = True) -> None:
    """Compile (or load) every kernel of ``agent``'s update with the same types as a real one, by one
    update of a throwaway agent of the same spaces and config on a made-up batch of two short
    episodes; without the critic's passes when ``critic`` is False (worker 0 compiles those:
    :class:`npppo.backends.local.LocalWorkers`). ``agent`` itself is untouched: no parameter,
    statistic or random stream moves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the config's own warnings were given for the real agent
        twin = type(agent).from_spaces(agent.spaces, agent.config, agent.seed)
    if not critic:
        twin.rollout.passes = _WithoutCritic()
    try:
        twin.update(made_up_batch(agent.obs_dim, agent.action_dim, episode_steps=4), 0.0, 1.0)
    except TrainingError:
        pass  # a config that diverges at once does so on made-up numbers too: the real update will say so


class _WithoutCritic:
    """The update's passes (:class:`npppo.passes.Passes`) with the critic's skipped: the actor's alone."""

    map_blocks = map

    def start_critic(self, *job) -> None:
        pass

    def finish_critic(self) -> tuple[list[float], list[list[float]]]:
        return [], []

    def abandon(self) -> None:
        pass

    def close(self) -> None:
        pass


def made_up_batch(obs_dim: int, action_dim: int, episode_steps: int) -> Batch:
    """Two episodes of ``episode_steps`` steps of small random numbers, the first ending in a time limit
    (bootstrapped) and the second terminated: a Batch of the dtypes and layouts the sampler makes."""
    rng = np.random.default_rng(0)
    steps = 2 * episode_steps
    ends = np.zeros(steps, bool)
    ends[[episode_steps - 1, steps - 1]] = True
    return Batch(obs=rng.standard_normal((steps, obs_dim)), actions=rng.standard_normal((steps, action_dim)),
                 log_prob=rng.standard_normal(steps), rewards=rng.standard_normal(steps), episode_ends=ends,
                 end_steps=np.flatnonzero(ends), end_obs=rng.standard_normal((2, obs_dim)),
                 end_terminated=np.array([False, True]), episode_returns=rng.standard_normal(2),
                 episode_lengths=np.full(2, episode_steps))
