"""Rollout workers on this machine: one process per slice of the run's environments.

Each worker starts once per run (``forkserver`` where the platform has it, else ``spawn``: never
``fork`` after BLAS or Numba threads exist), builds its environments and a compiled copy of the
policy, warms its kernels, and then per iteration receives the flat policy parameters and the
observation statistics through a pipe and sends back its part of the batch. Workers ignore Ctrl-C
and SIGTERM (the learner handles them and stops its workers), exit when the learner's end of the pipe closes, and are
daemons, so none outlives the run.

A worker that dies or whose environment raises is replaced, and its part of the batch is collected
again with the same seeds: with whole-episode batches the run's result does not change; with
fixed-step batches the replaced worker's environments start fresh, seeded episodes. After
``max_failures`` consecutive failures of one worker the run stops with :class:`WorkerError`.
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import multiprocessing.util  # registers its exit handler now, so that the one below runs before it
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npppo.backends import (
    MAX_WORKER_FAILURES,
    NEVER_RETRIED,
    WorkerFailure,
    collect,
    make_sampler,
    split_work,
    with_retries,
)
from npppo.config import PPOConfig
from npppo.envs.make import EPISODE_STEP_LIMIT
from npppo.errors import ConfigError, TrainingError
from npppo.passes import BlockTwins, CriticData, critic_passes, make_optimizer
from npppo.sampler import Batch

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
READY = "ready"  # a worker's first message, once it has built its environments and warmed its kernels


# what crosses the pipe besides READY and None (the learner's "stop"): each message a dataclass
@dataclass(frozen=True)
class CollectJob:
    """Learner to worker: collect ``work`` (episode ids, or step counts per environment) of ``iteration``
    under these policy parameters and observation statistics ((mean, var) or None). Answer: (the
    worker's part of the batch, its environments' episodes begun)."""

    iteration: int
    params: np.ndarray
    obs_stats: tuple | None
    work: list[int]


@dataclass(frozen=True)
class CriticJob:
    """Learner to worker 0: the critic's passes (:func:`npppo.passes.critic_passes`) from these parameters
    and optimizer state. Answer: a :class:`CriticResult`."""

    params: np.ndarray
    optimizer_state: dict
    data: CriticData
    lr_scale: float
    seed: int
    iteration: int


@dataclass(frozen=True)
class CriticResult:
    """The critic's parameters and optimizer state where the passes ended, the last epoch's losses and
    every step's gradient norm."""

    params: np.ndarray
    optimizer_state: dict
    losses: list[float]
    norms: list[list[float]]


@dataclass(frozen=True)
class Failed:
    """Worker to learner, its last message: what it raised (``own``: the name of one of npppo's errors
    that are never retried, else None), and in what (``source``: the environment, or the critic's passes)."""

    name: str
    text: str
    trace: str
    own: str | None
    source: str = "the environment"


def _worker(conn, env_spec, config_dict: dict, spaces, env_ids: list[int], run_seed: int, episodes_started,
            episode_step_limit: int, first_sampler=None, compile_critic: bool = False) -> None:
    """A worker process's whole life: build, report ready, then collect until told to stop.
    ``first_sampler``: with an empty kernel cache, ("built", the write end of a pipe) for the first
    worker, which closes it once its sampler is built (its kernels in the cache), or ("wait", the read
    end) for the others, which wait for that before building theirs; ``compile_critic``: compile the
    critic's update kernels before reporting ready (:mod:`npppo.warmup`)."""
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or SIGTERM to the whole job: the learner's to handle
        signal.signal(signum, signal.SIG_IGN)
    from npppo.threads import set_num_threads

    set_num_threads(1)
    source = "the environment"  # what a failure is reported in: the user's code, unless the critic's passes run
    try:
        role, pipe_end = first_sampler or (None, None)
        if role == "wait":
            from npppo.warmup import wait_for_first_sampler

            if not wait_for_first_sampler(pipe_end, conn):
                return  # told to stop while waiting
        config = PPOConfig.from_dict(config_dict)
        sampler = make_sampler(env_spec, config, spaces, env_ids, run_seed, episodes_started, episode_step_limit)
        if pipe_end is not None:
            pipe_end.close()  # worker 0's write end: the others see end-of-file; a waiter's read end: done with
        critic = None
        if compile_critic:
            source = "the critic's passes"
            critic = _critic_of(config, spaces.obs_dim)
            _compile_critic_kernels(*critic, config, spaces.obs_dim)
        conn.send(READY)
        while True:
            job = conn.recv()
            if job is None:
                return
            if isinstance(job, CriticJob):
                source = "the critic's passes"
                if critic is None:
                    critic = _critic_of(config, spaces.obs_dim)
                conn.send(_critic_passes(*critic, config, job))
                continue
            source = "the environment"
            sampler.policy.set_params(job.params)
            batch = collect(sampler, config, job.iteration, job.work, job.obs_stats)
            conn.send((batch, sampler.episodes_started.copy()))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the learner is gone
    except BaseException as exc:  # the environment is the user's code: report it whole
        own = type(exc).__name__ if isinstance(exc, NEVER_RETRIED) else None
        try:
            conn.send(Failed(type(exc).__name__, str(exc), traceback.format_exc(), own, source))
        except (BrokenPipeError, OSError):
            pass


def _critic_of(config: PPOConfig, obs_dim: int):
    """A critic and its optimizer for the learner's critic passes (parameters and state come with each job)."""
    from npppo.critic import Critic

    critic = Critic(obs_dim, config, np.random.default_rng(0))
    return BlockTwins(critic), make_optimizer(config, 0, critic.params.shape[0], config.critic_lr, critic.dtype)


def _compile_critic_kernels(twins: BlockTwins, optimizer, config: PPOConfig, obs_dim: int) -> None:
    """The critic's passes once on made-up data of the real one's dtypes, to compile (or load) their
    kernels; the critic's parameters and optimizer state are placeholders (each job brings its own)."""
    rng, dtype = np.random.default_rng(0), twins.models[0].dtype
    data = CriticData(*(rng.standard_normal(shape).astype(dtype) for shape in ((8, obs_dim), 8, 8)))
    try:
        _critic_passes(twins, optimizer, config, CriticJob(twins.models[0].params, optimizer.state(), data, 1.0, 0, 0))
    except TrainingError:
        pass  # a config that diverges at once does so on made-up numbers too: the real update will say so


def _critic_passes(twins: BlockTwins, optimizer, config: PPOConfig, job: CriticJob) -> CriticResult:
    """:func:`npppo.passes.critic_passes` from the learner's parameters and optimizer state."""
    critics = twins(job.data.obs.shape[0])  # a full batch longer than BLOCK_ROWS goes in row blocks
    critics[0].set_params(job.params)
    optimizer.load_state(job.optimizer_state)
    losses, norms = critic_passes(critics, optimizer, config, job.data, job.lr_scale, job.seed, job.iteration)
    return CriticResult(critics[0].params.copy(), optimizer.state(), losses, norms)


class WorkerCriticPasses:
    """The critic's passes in worker 0's process, beside the learner's actor passes (:mod:`npppo.passes`
    says what crosses, and when this is chosen)."""

    map_blocks = map

    def __init__(self, workers: LocalWorkers) -> None:
        self.workers, self.job = workers, None

    def start_critic(self, twins, optimizer, data, lr_scale: float, seed: int, iteration: int) -> None:
        self.job = CriticJob(twins.models[0].params, optimizer.state(), data, lr_scale, seed, iteration)
        self.critic, self.optimizer = twins.models[0], optimizer
        self.workers._send(0, self.job)

    def finish_critic(self):
        """The job's (losses, norms), the critic and its optimizer set to where they ended; a worker
        lost on the way is replaced and the job run again (the same inputs, the same result)."""
        result = self.workers._receive(0, self.job)
        self.job = None
        self.critic.set_params(result.params)
        self.optimizer.load_state(result.optimizer_state)
        return result.losses, result.norms

    def abandon(self) -> None:
        if self.job is not None:  # worker 0 may still run the job, or have ended with its error
            self.job = None
            self.workers.close()

    def close(self) -> None:
        pass


def check_main_module() -> None:
    """ConfigError when worker processes could not start: they begin by importing the main module from
    its file, and a script read from stdin (``python - < script.py``) has none."""
    import os
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is not None and not os.path.exists(main_file):
        raise ConfigError(f"rollout workers start by importing the main script from its file, and this one was read "
                          f"from {main_file!r}, which they cannot read again: save the script to a file and run "
                          "`python script.py`, or use workers=1")


def _cwd_shadows_npppo() -> bool:
    """Whether the current folder holds an ``npppo`` that is not this package (a clone's parent folder,
    say). Python 3.11's forkserver imports its preload modules with the current folder first on
    ``sys.path`` (it ignores the parent's), so it would import that folder as an empty namespace
    package and hand it to every worker; without the preload, each worker imports npppo itself,
    after taking the parent's ``sys.path``."""
    from npppo.jit import PACKAGE_DIR

    found = Path.cwd() / "npppo"
    return found.exists() and found.resolve() != PACKAGE_DIR


class LocalWorkers:
    """``len(slices)`` worker processes, worker w owning the environments ``slices[w]``."""

    def __init__(self, env_spec, config: PPOConfig, spaces, run_seed: int, slices: list[list[int]],
                 episodes_started: np.ndarray, max_failures: int = MAX_WORKER_FAILURES,
                 episode_step_limit: int = EPISODE_STEP_LIMIT, while_first_starts=None) -> None:
        check_main_module()
        self.env_spec, self.config, self.spaces, self.run_seed = env_spec, config, spaces, run_seed
        self.episode_step_limit = episode_step_limit
        self.slices, self.max_failures = slices, max_failures
        self.work = split_work(config, slices)
        self.context = multiprocessing.get_context(START_METHOD)
        if START_METHOD == "forkserver" and not _cwd_shadows_npppo():
            self.context.set_forkserver_preload(["npppo.backends.local"])
        self.episodes_started = episodes_started  # the run's counts (read only: a replaced worker starts from them)
        self.workers: list[tuple[Any, Any] | None] = [None] * len(slices)
        # a script that ends without close(): multiprocessing's exit handler would join the workers, which
        # ignore its SIGTERM and wait for a job, forever; this one is registered later, so runs first
        self._stop_at_exit = functools.partial(_stop_all, self.workers)
        atexit.register(self._stop_at_exit)
        self.critic_worker = WorkerCriticPasses(self)  # the update may run its critic passes in worker 0
        # with an empty kernel cache, worker 0 alone compiles the rollout's kernels, then the critic's
        # update kernels, while the learner runs ``while_first_starts(critic=False)``, compiling the
        # actor's (npppo.warmup); the others start at once too, so that their start is off the first
        # run's critical path, but wait until worker 0 has built its sampler (its kernels, whichever the
        # environment needs, are then in the cache) and load them, instead of all compiling them side by side
        from npppo.warmup import rollout_kernels_cached

        first_compile = while_first_starts is not None and not rollout_kernels_cached()
        worker_compiles_critic = first_compile and not config.recompute_advantages  # else the learner's alone
        # a pipe, not an Event: its end-of-file comes also when worker 0 dies, and it leaves no semaphore behind
        roles, ends = [None] * len(slices), ()
        if first_compile:
            ends = built_read, built_write = self.context.Pipe(duplex=False)
            roles = [("built", built_write)] + [("wait", built_read)] * (len(slices) - 1)
        try:
            try:
                for w, role in enumerate(roles):
                    self._start(w, first_sampler=role, compile_critic=worker_compiles_critic and w == 0)
            finally:
                for end in ends:
                    end.close()  # the workers hold theirs: worker 0 the only write end
            if while_first_starts is not None:
                while_first_starts(critic=not worker_compiles_critic)
            for w in range(len(slices)):
                self._receive(w, None)  # "ready"
        except BaseException:
            self.close()
            raise

    def _start(self, w: int, first_sampler=None, compile_critic: bool = False) -> None:
        learner_end, worker_end = self.context.Pipe()
        process = self.context.Process(
            target=_worker, name=f"npppo-worker-{w}", daemon=True,
            args=(worker_end, self.env_spec, self.config.to_dict(), self.spaces, self.slices[w], self.run_seed,
                  self.episodes_started[self.slices[w]], self.episode_step_limit, first_sampler, compile_critic),
        )
        process.start()
        worker_end.close()
        self.workers[w] = (process, learner_end)

    def collect(self, iteration: int, params: np.ndarray, obs_stats) -> tuple[Batch, np.ndarray]:
        """Each worker's part of the batch, joined in worker (so environment) order, and the episodes
        begun per environment after it."""
        messages = [CollectJob(iteration, params, obs_stats, work) for work in self.work]
        for w, message in enumerate(messages):
            self._send(w, message)
        parts = [self._receive(w, messages[w]) for w in range(len(self.workers))]
        return Batch.concatenate([batch for batch, _ in parts]), np.concatenate([started for _, started in parts])

    def _send(self, w: int, message) -> None:
        try:
            self.workers[w][1].send(message)
        except (BrokenPipeError, OSError):
            pass  # a dead worker: _receive notices and replaces it

    def _receive(self, w: int, message):
        """Worker w's answer to ``message`` (None: its "ready" at start); a lost or failing worker is
        replaced and asked again, until ``max_failures`` failures in a row (failing starts included)."""

        def replace() -> None:
            self._stop(w)
            self._start(w)
            if message is not None:
                self._answer(w, None)  # the replacement is ready: ask it again
                self._send(w, message)

        return with_retries(w, self.max_failures, lambda: self._answer(w, message), replace)

    def _answer(self, w: int, message):
        """Worker w's next answer, or WorkerFailure; npppo's own errors are raised as they are."""
        process, conn = self.workers[w]
        try:
            answer = conn.recv()
        except (EOFError, OSError):
            process.join(timeout=5)
            reason = f"worker {w} (pid {process.pid}) died with exit code {process.exitcode}"
            if message is None:
                reason += (" while starting (its error is above); if it ran your script's training again, put "
                           "that code under `if __name__ == \"__main__\":`, since workers start by importing "
                           "the main module")
            raise WorkerFailure(reason) from None
        if isinstance(answer, Failed):
            if answer.own:
                raise {error.__name__: error for error in NEVER_RETRIED}[answer.own](answer.text)
            raise WorkerFailure(f"{answer.source} in worker {w} raised {answer.name}: {answer.text}\n{answer.trace}")
        return answer

    def _stop(self, w: int) -> None:
        _stop_worker(*self.workers[w])

    @property
    def closed(self) -> bool:
        return all(worker is None for worker in self.workers)

    def close(self) -> None:
        """Stop every worker (asked first, killed if it does not end within seconds)."""
        _stop_all(self.workers)
        atexit.unregister(self._stop_at_exit)


def _stop_worker(process, conn) -> None:
    try:
        conn.send(None)
    except (BrokenPipeError, OSError):
        pass
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join(timeout=5)
    conn.close()


def _stop_all(workers: list) -> None:
    """Stop each running worker of ``workers`` (in place: their entries become None)."""
    for w, worker in enumerate(workers):
        if worker is not None:
            _stop_worker(*worker)
            workers[w] = None
