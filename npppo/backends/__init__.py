"""Where the rollout runs: in the learner's process, in local worker processes, or on Ray actors.

Every backend hosts the same :class:`npppo.sampler.Sampler` over a fixed slice of the run's
environments and returns the same bits: the learner sends the flat policy parameters (and the
observation statistics) once per iteration and gets flat batch arrays back, in environment order
(docs/scaling.md). :func:`split_work` decides, from the config alone, which environments each
worker owns and what each collects.
"""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np

from npppo.config import PPOConfig
from npppo.errors import EnvError, TrainingError, WorkerError
from npppo.sampler import Batch, Sampler
from npppo.streams import INIT, generator

BACKENDS = ("local", "ray")
MAX_WORKER_FAILURES = 3  # a worker's failures in a row before the run stops, by default
RAY_CONNECT_TIMEOUT_S = 30.0  # how long a Ray cluster at a given address is waited for, by default


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_picklable(env_spec) -> None:
    """Workers make their own environments from ``env_spec``: it has to travel to them."""
    import gymnasium as gym

    if isinstance(env_spec, gym.Env):
        raise EnvError("with workers > 1, pass the environment as an id or a module-level function that returns "
                       "one, not an instance (each worker makes its own copies)")
    try:
        pickle.dumps(env_spec)
    except Exception as exc:
        raise EnvError(f"with workers > 1 the environment factory {env_spec!r} must be picklable ({exc}): pass an "
                       "id, or a function defined at module level (not a lambda or a local function)") from exc


def env_slices(num_envs: int, workers: int) -> list[list[int]]:
    """The run's environment indices, cut into ``workers`` contiguous slices as even as can be."""
    return [list(map(int, part)) for part in np.array_split(np.arange(num_envs), workers)]


def steps_per_env(config: PPOConfig, num_envs: int) -> list[int]:
    """Fixed-step batches: each environment's share of ``steps_per_batch`` (the remainder to the first)."""
    share, extra = divmod(config.steps_per_batch, num_envs)
    return [share + (e < extra) for e in range(num_envs)]


def split_work(config: PPOConfig, slices: list[list[int]]) -> list[list[int]]:
    """Per worker: the episode ids it runs (whole-episode batches) or its environments' step counts."""
    if config.episodes_per_batch is not None:
        return [list(map(int, part)) for part in np.array_split(np.arange(config.episodes_per_batch), len(slices))]
    steps = steps_per_env(config, sum(len(s) for s in slices))
    return [[steps[e] for e in env_ids] for env_ids in slices]


# npppo's own findings in a worker (a NaN observation, a diverged critic): the same again on a retry
NEVER_RETRIED = (EnvError, TrainingError)


class WorkerFailure(Exception):
    """A worker was lost, or its environment raised something a retry may not raise again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def with_retries(w: int, max_failures: int, attempt, replace):
    """``attempt()``'s result; each :class:`WorkerFailure` (of the attempt, or of starting the
    replacement) replaces worker w (``replace()``) and tries again, until ``max_failures`` failures
    in a row raise WorkerError. Anything else, NEVER_RETRIED included, goes straight through."""
    failures, replacing = 0, False
    while True:
        try:
            if replacing:
                replace()
            return attempt()
        except WorkerFailure as failure:
            failures = count_failure(w, failures, max_failures, failure.reason)
            replacing = True


def count_failure(w: int, failures: int, max_failures: int, reason: str) -> int:
    """One more failure of worker w: WorkerError at ``max_failures`` in a row, else a line saying it is
    replaced and its part collected again. Returns the new count."""
    failures += 1
    if failures >= max_failures:
        raise WorkerError(f"rollout worker {w} failed {failures} times in a row (max_worker_failures="
                          f"{max_failures}); the last failure: {reason}")
    print(f"npppo: {reason.splitlines()[0]}; restarting it and collecting its part again ({failures}/{max_failures})",
          file=sys.stderr)
    return failures


def collect(sampler: Sampler, config: PPOConfig, iteration: int, work: list[int], obs_stats) -> Batch:
    """One worker's part of an iteration's batch (see :func:`split_work`)."""
    if config.episodes_per_batch is not None:
        return sampler.collect_episodes(iteration, work, obs_stats)
    return sampler.collect_steps(iteration, work, obs_stats)


class InProcess:
    """The rollout in the learner's own process, over the learner's own policy (``workers=1``)."""

    def __init__(self, sampler: Sampler, config: PPOConfig) -> None:
        self.sampler, self.config = sampler, config
        self.work = split_work(config, [sampler.env_ids])[0]

    def collect(self, iteration: int, params: np.ndarray, obs_stats) -> tuple[Batch, np.ndarray]:
        """(the batch, the episodes begun per environment after it)."""
        batch = collect(self.sampler, self.config, iteration, self.work, obs_stats)
        return batch, self.sampler.episodes_started.copy()

    def close(self) -> None:
        pass


def build_sampler(envs: list, env_ids: list[int], policy, spaces, config: PPOConfig, run_seed: int,
                  episodes_started, episode_step_limit: int) -> Sampler:
    """The one place a Sampler is made: over ``envs`` (the run's environments ``env_ids``), running
    ``policy``, their fixed-step resets continuing from ``episodes_started`` (one count per environment)."""
    obs_clip = config.obs_clip if config.normalize_obs else None
    sampler = Sampler(envs, env_ids, policy, spaces.action_low, spaces.action_high, run_seed, obs_clip,
                      episode_step_limit)
    sampler.episodes_started[:] = episodes_started
    return sampler


def make_sampler(env_spec, config: PPOConfig, spaces, env_ids: list[int], run_seed: int, episodes_started,
                 episode_step_limit: int):
    """A sampler with its own environments and policy copy, kernels warmed (what a worker holds);
    ``episodes_started``: the counts of its own environments."""
    from npppo.envs import make_env
    from npppo.policy import GaussianPolicy

    # the learner sends the parameters before each batch: the initial ones here are only a placeholder
    policy = GaussianPolicy(spaces.obs_dim, spaces.action_dim, config, generator(INIT, run_seed))
    try:
        envs = [make_env(env_spec) for _ in env_ids]
    except EnvError as exc:
        raise EnvError(f"a worker process cannot make the environment: {exc}. Workers make their own copies, so "
                       "register the id in an importable module and pass 'module:Id', or use workers=1") from exc
    sampler = build_sampler(envs, env_ids, policy, spaces, config, run_seed, episodes_started, episode_step_limit)
    sampler.load_kernels()
    return sampler
