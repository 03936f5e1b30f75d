"""The rollout of a run: its environments, where they are stepped, and the episode counter they share.

One :class:`Rollout` per agent owns what step 1 of an iteration needs besides the policy: the
environment spec and the environments made from it, the run options (worker count, backend, failure
budget, Ray address and timeout, episode step limit), the backend that steps the environments
(in process, local workers or Ray actors: :mod:`npppo.backends`), started at the first
:meth:`Rollout.collect` and stopped by :meth:`Rollout.close` or a failure, and where the update's
critic passes run beside the actor's (:func:`npppo.passes.passes_for`, chosen with the backend).

It holds the run's one count of episodes begun per environment (fixed-step batches seed each
environment's resets by it): a backend reads it when it starts a worker, and reports the new counts
with each batch; a collect that fails leaves it as it was.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from npppo.backends import (
    BACKENDS,
    MAX_WORKER_FAILURES,
    RAY_CONNECT_TIMEOUT_S,
    InProcess,
    build_sampler,
    check_picklable,
    env_slices,
    usable_cores,
)
from npppo.config import positive_int
from npppo.envs import EnvSpec, check_spaces, env_name, make_env
from npppo.envs.make import EPISODE_STEP_LIMIT, check_episode_step_limit
from npppo.errors import ConfigError, EnvError
from npppo.passes import passes_for
from npppo.sampler import Batch


class Rollout:
    """The environments and workers of one agent's run (see the module docstring).

    ``spaces``: a :class:`npppo.envs.Spaces`; ``policy`` is the learner's (the
    in-process sampler runs it; workers get its parameters with each batch); ``first_env`` an
    environment already made from ``env_spec``; ``warm_up`` runs in the learner while the first
    local worker compiles the rollout's kernels (:mod:`npppo.warmup`).
    """

    def __init__(self, env_spec: EnvSpec | None, spaces, config, seed: int, policy, first_env=None,
                 warm_up=None) -> None:
        self.env_spec, self.env_id = env_spec, env_name(env_spec) if env_spec is not None else None
        self.spaces, self.config, self.seed, self.policy, self.warm_up = spaces, config, seed, policy, warm_up
        self._envs = [first_env] if first_env is not None else None
        self.workers, self.backend, self.max_worker_failures = 1, "local", MAX_WORKER_FAILURES
        self.ray_address, self.ray_connect_timeout = None, RAY_CONNECT_TIMEOUT_S
        self._episode_step_limit = EPISODE_STEP_LIMIT
        self.episodes_started = np.zeros(self.num_envs, np.int64)
        self.running = None  # the backend, from the first collect() to close()
        self.passes = None  # where the update's critic passes run, chosen with the backend

    # ------------------------------------------------------------------ environments
    @property
    def envs(self) -> list:
        """The training environments, made on first use (a loaded agent needs none to act)."""
        if self._envs is None:
            self._envs = [self.make_env()]
        if isinstance(self.env_spec, str) or callable(self.env_spec):  # an instance cannot be copied
            while len(self._envs) < self.config.num_envs:
                self._envs.append(self.make_env())
        return self._envs

    def make_env(self, spec: EnvSpec | None = None):
        """An environment from ``spec`` (default: the run's own), checked to fit the run's sizes."""
        spec = spec if spec is not None else self.env_spec
        if spec is None:
            raise EnvError(f"this agent has no environment to train or evaluate on (it was trained on "
                           f"{self.env_id!r}, which a checkpoint cannot rebuild): load it with PPO.load(path, "
                           "env=...), passing an id, a gymnasium.Env or a function returning one")
        env = make_env(spec)
        mine, theirs = self.spaces, check_spaces(env)
        if (theirs.obs_dim, theirs.action_dim) != (mine.obs_dim, mine.action_dim):
            raise EnvError(
                f"this agent was made for observation shape ({mine.obs_dim},) and action shape ({mine.action_dim},), "
                f"but environment {env_name(spec)!r} has observation shape ({theirs.obs_dim},) and action shape "
                f"({theirs.action_dim},)"
            )
        return env

    @property
    def num_envs(self) -> int:
        """How many environments the run steps: ``config.num_envs``, or 1 for an instance (not copyable)."""
        return 1 if isinstance(self.env_spec, gym.Env) else self.config.num_envs

    # ------------------------------------------------------------------ run options
    def set_workers(self, workers: int | str = 1, backend: str = "local",
                    max_worker_failures: int = MAX_WORKER_FAILURES, ray_address: str | None = None,
                    ray_connect_timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
        """Choose where the rollout runs (:class:`npppo.PPO` explains the options); stops workers running."""
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}: choose one of {list(BACKENDS)}")
        if workers == "auto":
            workers = min(usable_cores(), self.num_envs)
        workers = positive_int(workers, "workers", also=" or 'auto'")
        max_worker_failures = positive_int(max_worker_failures, "max_worker_failures")
        if isinstance(ray_connect_timeout, bool) or not isinstance(ray_connect_timeout, (int, float)) \
                or not 0 < ray_connect_timeout < float("inf"):
            raise ConfigError(f"ray_connect_timeout must be a positive number of seconds, got {ray_connect_timeout!r}")
        if workers > 1 or backend != "local":
            check_picklable(self.env_spec)
        if backend == "ray":
            from npppo.backends.ray import import_ray

            import_ray()  # without the extra: one line saying how to install it, before any work
        self.close()
        self.workers, self.backend, self.max_worker_failures = min(int(workers), self.num_envs), backend, \
            max_worker_failures
        self.ray_address, self.ray_connect_timeout = ray_address, float(ray_connect_timeout)

    @property
    def episode_step_limit(self) -> int:
        return self._episode_step_limit

    @episode_step_limit.setter
    def episode_step_limit(self, limit: int) -> None:
        limit = check_episode_step_limit(limit)
        if limit != self._episode_step_limit:
            self.close()  # the workers hold the old bound; they start again at the next collect
        self._episode_step_limit = limit

    # ------------------------------------------------------------------ the counter
    def state(self) -> dict:
        """The rollout's part of a checkpoint: the episodes begun per environment."""
        return {"episodes_started": self.episodes_started.tolist()}

    def load_state(self, state: dict) -> None:
        self.close()  # workers hold the counts they were started with
        started = np.asarray(state["episodes_started"], np.int64)
        if started.size == 1:  # a run on one environment instance saved one count: each environment starts there
            started = np.full(self.num_envs, started[0], np.int64)
        if started.shape != (self.num_envs,):
            raise ValueError(f"episodes_started holds {started.size} counts, the run has {self.num_envs} environments")
        self.episodes_started = started

    # ------------------------------------------------------------------ running
    def collect(self, iteration: int, params: np.ndarray, obs_stats) -> Batch:
        """One batch under ``params`` (the policy's flat parameters), ``obs_stats`` (mean, var) of the
        observation normalisation or None; a failure stops the backend (it starts afresh at the
        next call) and leaves the episode counter as it was."""
        try:
            batch, started = self.start().collect(iteration, params, obs_stats)
        except BaseException:
            self.close()
            raise
        self.episodes_started[:] = started  # in place: the backend reads this array when it replaces a worker
        return batch

    def start(self):
        """The running backend, started now if it is not (and the update's passes chosen with it)."""
        if self.running is None:
            spaces, config, slices = self.spaces, self.config, env_slices(self.num_envs, self.workers)
            if self.workers == 1 and self.backend == "local":
                sampler = build_sampler(self.envs, slices[0], self.policy, spaces, config, self.seed,
                                        self.episodes_started[slices[0]], self.episode_step_limit)
                self.running = InProcess(sampler, config)
            elif self.backend == "local":
                from npppo.backends.local import LocalWorkers

                self.running = LocalWorkers(self.env_spec, config, spaces, self.seed, slices, self.episodes_started,
                                            self.max_worker_failures, self.episode_step_limit,
                                            while_first_starts=self.warm_up)
            else:
                from npppo.backends.ray import RayWorkers

                self.running = RayWorkers(self.env_spec, config, spaces, self.seed, slices, self.episodes_started,
                                          self.max_worker_failures, self.ray_address, self.ray_connect_timeout,
                                          self.episode_step_limit)
            if self.passes is not None:  # chosen by an update before any collect
                self.passes.close()
            self.passes = passes_for(config, self.workers, getattr(self.running, "critic_worker", None))
        return self.running

    def update_passes(self):
        """Where the update's passes run (chosen with the backend; an update before any collect, on a
        batch collected elsewhere, chooses without one)."""
        if self.passes is None:
            self.passes = passes_for(self.config, self.workers)
        return self.passes

    def abandon_update(self) -> None:
        """After an update failed between starting and finishing the critic's passes."""
        if self.passes is not None:
            self.passes.abandon()
        if getattr(self.running, "closed", False):
            self.close()  # the critic's passes failed in a worker, which stopped them all: start afresh

    def close(self) -> None:
        """Stop the backend's workers and the update's threads (they start again at the next collect)."""
        passes, self.passes = self.passes, None
        if passes is not None:
            passes.close()
        running, self.running = self.running, None
        if running is not None:
            running.close()
