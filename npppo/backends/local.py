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

import multiprocessing
import signal
import traceback
from typing import Any

import numpy as np

from npppo.backends import collect, count_failure, make_sampler, split_work
from npppo.config import PPOConfig
from npppo.errors import EnvError, TrainingError
from npppo.sampler import Batch

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _worker(conn, env_spec, config_dict: dict, spaces, env_ids: list[int], run_seed: int, episodes_started) -> None:
    """A worker process's whole life: build, report ready, then collect until told to stop."""
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or SIGTERM to the whole job: the learner's to handle
        signal.signal(signum, signal.SIG_IGN)
    from npppo.threads import set_num_threads

    set_num_threads(1)
    try:
        config = PPOConfig.from_dict(config_dict)
        sampler = make_sampler(env_spec, config, spaces, env_ids, run_seed, episodes_started)
        critic = None
        conn.send(("ready", None))
        while True:
            message = conn.recv()
            if message is None:
                return
            if message[0] == "critic":
                if critic is None:
                    critic = _critic_of(config, spaces[0])
                conn.send(("critic", _critic_passes(*critic, config, *message[1:])))
                continue
            _, iteration, params, obs_stats, work = message
            sampler.policy.set_params(params)
            batch = collect(sampler, config, iteration, work, obs_stats)
            conn.send(("batch", (batch, sampler.episodes_started.copy())))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the learner is gone
    except BaseException as exc:  # the environment is the user's code: report it whole
        own = type(exc).__name__ if isinstance(exc, (EnvError, TrainingError)) else None
        try:
            conn.send(("error", (type(exc).__name__, str(exc), traceback.format_exc(), own)))
        except (BrokenPipeError, OSError):
            pass


def _critic_of(config: PPOConfig, obs_dim: int):
    """A critic and its optimizer for the learner's critic passes (parameters and state come with each job)."""
    from npppo.critic import Critic
    from npppo.ppo import make_optimizer

    critic = Critic(obs_dim, config, np.random.default_rng(0))
    return critic, make_optimizer(config, 0, critic.params.shape[0], config.critic_lr, critic.dtype)


def _critic_passes(critic, optimizer, config: PPOConfig, params, state, *args):
    """:func:`npppo.ppo.critic_passes` from the learner's parameters and optimizer state; returns both
    as they end, with the losses and gradient norms."""
    from npppo.ppo import critic_passes

    critic.set_params(params)
    optimizer.load_state(state)
    losses, norms = critic_passes([critic], optimizer, config, *args)
    return critic.params.copy(), optimizer.state(), losses, norms


class LocalWorkers:
    """``len(slices)`` worker processes, worker w owning the environments ``slices[w]``."""

    def __init__(self, env_spec, config: PPOConfig, spaces, run_seed: int, slices: list[list[int]],
                 episodes_started: list[int], max_failures: int = 3) -> None:
        self.env_spec, self.config, self.spaces, self.run_seed = env_spec, config, spaces, run_seed
        self.slices, self.max_failures = slices, max_failures
        self.work = split_work(config, slices)
        self.context = multiprocessing.get_context(START_METHOD)
        if START_METHOD == "forkserver":
            self.context.set_forkserver_preload(["npppo.backends.local"])
        self.started = [np.asarray(episodes_started)[ids] for ids in slices]
        self.workers: list[tuple[Any, Any] | None] = [None] * len(slices)
        try:
            for w in range(len(slices)):
                self._start(w)
            for w in range(len(slices)):
                self._receive(w, None)  # "ready"
        except BaseException:
            self.close()
            raise

    def _start(self, w: int) -> None:
        learner_end, worker_end = self.context.Pipe()
        process = self.context.Process(
            target=_worker, name=f"npppo-worker-{w}", daemon=True,
            args=(worker_end, self.env_spec, self.config.to_dict(), self.spaces, self.slices[w], self.run_seed,
                  self.started[w]),
        )
        process.start()
        worker_end.close()
        self.workers[w] = (process, learner_end)

    def collect(self, iteration: int, params: np.ndarray, obs_stats) -> Batch:
        """Each worker's part of the batch, joined in worker (so environment) order."""
        messages = [("collect", iteration, params, obs_stats, work) for work in self.work]
        for w, message in enumerate(messages):
            self._send(w, message)
        parts = []
        for w in range(len(self.workers)):
            batch, self.started[w] = self._receive(w, messages[w])
            parts.append(batch)
        return Batch.concatenate(parts)

    def start_critic(self, job: tuple) -> None:
        """Send the learner's critic passes (:func:`npppo.ppo.critic_passes`'s inputs after the critic,
        led by its parameters and optimizer state) to worker 0, to run beside the actor's passes."""
        self._critic_job = ("critic", *job)
        self._send(0, self._critic_job)

    def finish_critic(self) -> tuple:
        """(critic parameters, optimizer state, last epoch's losses, gradient norms) of the job sent; a
        worker lost on the way is replaced and the job run again (the same inputs, the same result)."""
        return self._receive(0, self._critic_job)

    def episodes_started(self) -> list[int]:
        """Fixed-step batches: how many episodes each of the run's environments has begun."""
        return np.concatenate(self.started).tolist()

    def _send(self, w: int, message) -> None:
        try:
            self.workers[w][1].send(message)
        except (BrokenPipeError, OSError):
            pass  # a dead worker: _receive notices and replaces it

    def _receive(self, w: int, message):
        """Worker w's answer to ``message`` (None: its "ready" at start); a lost or failing worker is
        replaced and asked again, until ``max_failures`` failures in a row (failing starts included)."""
        failures, replaced = 0, False
        while True:
            process, conn = self.workers[w]
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                process.join(timeout=5)
                kind, payload = "lost", f"worker {w} (pid {process.pid}) died with exit code {process.exitcode}"
                if replaced or message is None:
                    payload += (" while starting (its error is above); if it ran your script's training again, put "
                                "that code under `if __name__ == \"__main__\":`, since workers start by importing "
                                "the main module")
            if kind == "ready" and replaced and message is not None:
                replaced = False
                self._send(w, message)  # the replacement is ready: ask it again
                continue
            if kind in ("ready", "batch", "critic"):
                return payload
            if kind == "error":
                name, text, trace, own = payload
                if own:  # npppo's own finding (a NaN observation, a diverged critic): the same again on a retry
                    raise {"EnvError": EnvError, "TrainingError": TrainingError}[own](text)
                payload = f"the environment in worker {w} raised {name}: {text}\n{trace}"
            failures = count_failure(w, failures, self.max_failures, payload)
            self._stop(w)
            self._start(w)
            replaced = True

    def _stop(self, w: int) -> None:
        process, conn = self.workers[w]
        try:
            conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
        conn.close()

    def close(self) -> None:
        """Stop every worker (asked first, killed if it does not end within seconds)."""
        for w, worker in enumerate(self.workers):
            if worker is not None:
                self._stop(w)
                self.workers[w] = None
