"""Collecting experience (step 1 of an iteration): a slice of environments stepped under π_θold.

A :class:`Sampler` owns some environments and runs a policy over them: the learner's own policy in
process, or a copy in a worker process (:mod:`npppo.backends`). The sampled (unclipped, unsquashed)
action and its log-probability are stored; the environment receives the action clipped to its
bounds, or tanh-squashed into them (``action_squash="tanh"``; the log-probability is then that of
the squashed action, :mod:`npppo.distributions`).

A batch depends only on the run seed, the iteration and the parameters, never on how the work is
split between workers, so any worker count gives the same bits:

* every random stream belongs to one episode (whole-episode batches) or to one environment
  (fixed-step batches), keyed in :mod:`npppo.streams`: episode ``k`` of iteration ``i`` is reset
  from ``(EPISODE_RESET, seed, i, k)`` and draws its action noise from ``(EPISODE_NOISE, seed, i,
  k)``; environment ``j`` of a fixed-step run resets its ``n``-th episode from ``(FIXED_RESET, seed,
  j, n)`` and draws iteration ``i``'s noise from ``(FIXED_NOISE, seed, j, i)``;
* the policy runs row by row (:meth:`npppo.policy.GaussianPolicy.distribution_rows`), so a row's
  action does not depend on how many rows are evaluated together;
* rows are stored in episode order (whole episodes) or environment order (fixed steps), not in the
  order the steps happened.

Two drivers share one step function: :meth:`Sampler.collect_episodes` runs given whole episodes to
their end; :meth:`Sampler.collect_steps` runs each environment for a given number of steps, the
piece of an episode still running at the cut being bootstrapped like a truncation. Each finished
piece of experience is a *segment*; segments are stored back to back (see :mod:`npppo.returns`).
When the environments are all compiled (:mod:`npppo.envs.compiled`), both hand the batch to
:mod:`npppo.fused`, which collects it in one compiled call, with the same bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from npppo.distributions import act_coordinate, add_log_prob
from npppo.envs.make import EPISODE_STEP_LIMIT, env_name, episode_too_long
from npppo.errors import EnvError
from npppo.inference import normalize_observations
from npppo.jit import njit
from npppo.streams import EPISODE_NOISE, EPISODE_RESET, FIXED_NOISE, FIXED_RESET, generator, reset_seed


class NoiseStream:
    """The standard-normal action noise of one episode (or environment), drawn 64 steps at a time:
    the same numbers, in the same order, as one draw per step, for a fraction of the calls."""

    def __init__(self, rng: np.random.Generator, action_dim: int) -> None:
        self.rng, self.action_dim = rng, action_dim
        self.block, self.used = np.empty((0, action_dim)), 0

    def next(self) -> np.ndarray:
        if self.used == self.block.shape[0]:
            self.block, self.used = self.rng.standard_normal((64, self.action_dim)), 0
        self.used += 1
        return self.block[self.used - 1]


@dataclass
class Batch:
    """Experience of one iteration; T steps in S segments stored back to back, E finished episodes."""

    obs: np.ndarray  # (T, obs_dim) raw observations s_t
    actions: np.ndarray  # (T, action_dim) sampled, before clipping or squashing
    log_prob: np.ndarray  # (T,) log π_θold(a_t|s_t)
    rewards: np.ndarray  # (T,)
    episode_ends: np.ndarray  # (T,) bool: a segment's last step
    end_steps: np.ndarray  # (S,) the index of each segment's last step
    end_obs: np.ndarray  # (S, obs_dim) the observation after it
    end_terminated: np.ndarray  # (S,) bool: the episode terminated there (no bootstrap)
    episode_returns: np.ndarray  # (E,) undiscounted returns of the episodes that finished
    episode_lengths: np.ndarray  # (E,)

    @property
    def steps(self) -> int:
        return self.rewards.shape[0]

    @classmethod
    def concatenate(cls, parts: list[Batch]) -> Batch:
        """The parts one after the other (each part's segment ends shifted by the steps before it)."""
        offsets = np.cumsum([0] + [part.steps for part in parts[:-1]])
        joined = {f.name: np.concatenate([getattr(part, f.name) for part in parts]) for f in fields(cls)}
        joined["end_steps"] = np.concatenate([part.end_steps + offset for part, offset in zip(parts, offsets,
                                                                                             strict=True)])
        return cls(**joined)


@njit
def sample_actions(mu, sigma, noise, bounds, squash, actions, env_actions, log_prob):
    """A rollout step's acting for k rows: the sampled ``actions`` u, what the environments receive
    (``env_actions``: u clipped to ``bounds``, or tanh-squashed into them with ``squash``; both
    :func:`npppo.distributions.act_coordinate`) and log π of each (:func:`npppo.distributions.add_log_prob`);
    mu, sigma (k, D) in the policy's dtype, noise, actions, env_actions (k, D) float64, bounds (2, D),
    log_prob (k,).

    One compiled call instead of five NumPy ones per rollout step.
    """
    for i in range(mu.shape[0]):
        total = 0.0
        for d in range(mu.shape[1]):
            low, high = bounds[0, d], bounds[1, d]
            u, env_action = act_coordinate(mu[i, d], sigma[i, d], noise[i, d], True, low, high, squash)
            actions[i, d] = u
            env_actions[i, d] = env_action
            total = add_log_prob(total, u, mu[i, d], sigma[i, d], low, high, squash)
        log_prob[i] = total


@dataclass(slots=True)
class _Running:
    """One environment's episode while a batch is collected: where its rows go and how far it is."""

    segment: int  # the id of the segment its rows go to (:meth:`_Rows.open`)
    noise: NoiseStream
    obs: np.ndarray  # the observation the next action answers
    episode_return: float = 0.0  # undiscounted, so far
    length: int = 0  # steps so far
    steps_left: int = 0  # fixed-step batches: the steps this environment still takes in this batch
    piece: int = 0  # fixed-step batches: the segment's place among this environment's in the batch


class _Rows:
    """The steps of one batch as they happen (environments interleaved), in flat arrays that grow by
    doubling; each row carries its segment's id, and :meth:`batch` puts the segments in key order."""

    def __init__(self, obs_dim: int, action_dim: int, capacity: int = 1024) -> None:
        self.size = 0
        self.obs = np.empty((capacity, obs_dim))
        self.actions = np.empty((capacity, action_dim))
        self.log_prob = np.empty(capacity)
        self.rewards = np.empty(capacity)
        self.segment = np.empty(capacity, np.int64)
        self.keys: list[tuple[int, int]] = []  # per segment id: its order key
        self.ends: dict[int, tuple[np.ndarray, bool]] = {}  # per closed segment: (obs after it, terminated)
        self.episodes: list[tuple[tuple[int, int], float, int]] = []  # (order key, return, length)

    def open(self, key: tuple[int, int]) -> int:
        """A new segment, placed in the batch by ``key``; returns its id."""
        self.keys.append(key)
        return len(self.keys) - 1

    def reserve(self, k: int) -> slice:
        """Room for k more rows; returns their slice."""
        if self.size + k > self.rewards.shape[0]:
            capacity = max(2 * self.rewards.shape[0], self.size + k)
            for name in ("obs", "actions", "log_prob", "rewards", "segment"):
                old = getattr(self, name)
                new = np.empty((capacity, *old.shape[1:]), old.dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
        self.size += k
        return slice(self.size - k, self.size)

    def batch(self) -> Batch:
        """The segments back to back, ordered by their keys (each segment's rows in time order)."""
        n = len(self.keys)
        order = sorted(range(n), key=self.keys.__getitem__)
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        row_rank = rank[self.segment[: self.size]]
        rows = np.argsort(row_rank, kind="stable")
        end_steps = np.cumsum(np.bincount(row_rank, minlength=n)) - 1
        episode_ends = np.zeros(self.size, bool)
        episode_ends[end_steps] = True
        episodes = sorted(self.episodes, key=lambda episode: episode[0])
        return Batch(
            obs=self.obs[rows], actions=self.actions[rows], log_prob=self.log_prob[rows],
            rewards=self.rewards[rows], episode_ends=episode_ends, end_steps=end_steps,
            end_obs=np.array([self.ends[s][0] for s in order]).reshape(-1, self.obs.shape[1]),
            end_terminated=np.array([self.ends[s][1] for s in order], bool),
            episode_returns=np.array([r for _, r, _ in episodes], np.float64),
            episode_lengths=np.array([length for _, _, length in episodes], np.int64),
        )


class Sampler:
    """Runs ``policy`` (a :class:`npppo.policy.GaussianPolicy`) over ``envs``.

    ``env_ids`` are the environments' indices in the whole run (fixed-step batches key their
    streams by them); ``obs_clip`` is the observation clip when observations are normalised; an
    episode of a whole-episode batch that runs ``episode_step_limit`` steps without ending raises
    EnvError.
    """

    def __init__(self, envs: list, env_ids: list[int], policy, action_low: np.ndarray, action_high: np.ndarray,
                 run_seed: int, obs_clip: float | None, episode_step_limit: int = EPISODE_STEP_LIMIT) -> None:
        self.envs, self.env_ids, self.policy = envs, list(env_ids), policy
        self.action_bounds = np.stack([np.asarray(action_low, np.float64), np.asarray(action_high, np.float64)])
        self.run_seed, self.obs_clip, self.episode_step_limit = run_seed, obs_clip, episode_step_limit
        self.obs_dim, self.action_dim = policy.obs_dim, policy.action_dim
        # fixed-step batches: what persists across iterations, per environment
        self.episodes_started = np.zeros(len(envs), np.int64)
        self._live: list | None = None  # per environment: (obs, return so far, length so far) of its episode
        from npppo.fused import FusedRollout  # here: it builds on this module

        self.fused = FusedRollout.of(self)  # None unless the environments are all compiled

    def load_kernels(self) -> None:
        """Load (or compile) the step's kernels now, for this policy, rather than at the first step."""
        mu, sigma = self.policy.distribution_rows(np.zeros((1, self.obs_dim)))
        sample_actions(mu, sigma, np.zeros((1, self.action_dim)), self.action_bounds, self.policy.squashed,
                       np.empty((1, self.action_dim)), np.empty((1, self.action_dim)), np.empty(1))

    # ------------------------------------------------------------------ the two drivers
    def collect_episodes(self, iteration: int, episode_ids: list[int], obs_stats=None) -> Batch:
        """Whole episodes ``episode_ids`` of ``iteration``, run to their end on this sampler's
        environments (each environment takes the next episode when its own ends); rows in the order
        of ``episode_ids``. ``obs_stats``: (mean, var) of the observation normalisation, or None."""
        if self.fused is not None:
            return self.fused.collect_episodes(iteration, episode_ids, obs_stats)
        rows = _Rows(self.obs_dim, self.action_dim)
        waiting = list(enumerate(episode_ids))[::-1]  # (position, episode id), the next one last
        running: dict[int, _Running] = {}  # by environment index

        def start(e: int) -> None:
            position, episode = waiting.pop()
            noise = NoiseStream(generator(EPISODE_NOISE, self.run_seed, iteration, episode), self.action_dim)
            obs = self._reset(e, reset_seed(EPISODE_RESET, self.run_seed, iteration, episode))
            running[e] = _Running(rows.open((position, 0)), noise, obs)

        for e in range(min(len(self.envs), len(waiting))):
            start(e)
        while running:
            active = list(running)
            next_obs, over, terminated = self._step(active, running, rows, obs_stats)
            for j, e in enumerate(active):
                state = running[e]
                state.obs = next_obs[j]
                if not over[j] and state.length >= self.episode_step_limit:
                    raise episode_too_long(env_name(self.envs[e]), self.episode_step_limit)
                if over[j]:
                    rows.ends[state.segment] = (next_obs[j], terminated[j])
                    rows.episodes.append((rows.keys[state.segment], state.episode_return, state.length))
                    del running[e]
                    if waiting:
                        start(e)
        return rows.batch()

    def collect_steps(self, iteration: int, steps_per_env: list[int], obs_stats=None) -> Batch:
        """``steps_per_env[e]`` steps of each environment, continuing the episodes of the previous
        batch; rows in environment order, the running piece of each episode cut at the batch's end."""
        if self.fused is not None:
            return self.fused.collect_steps(iteration, steps_per_env, obs_stats)
        rows = _Rows(self.obs_dim, self.action_dim)
        if self._live is None:
            self._live = [(self._reset_fixed(e), 0.0, 0) for e in range(len(self.envs))]
        running = {e: _Running(rows.open((e, 0)),
                               NoiseStream(generator(FIXED_NOISE, self.run_seed, self.env_ids[e], iteration),
                                           self.action_dim),
                               *self._live[e], steps_left=steps_per_env[e])
                   for e in range(len(self.envs)) if steps_per_env[e] > 0}
        while running:
            active = list(running)
            next_obs, over, terminated = self._step(active, running, rows, obs_stats)
            for j, e in enumerate(active):
                state = running[e]
                state.steps_left -= 1
                cut = state.steps_left == 0
                if over[j] or cut:
                    rows.ends[state.segment] = (next_obs[j], terminated[j])
                if over[j]:
                    rows.episodes.append((rows.keys[state.segment], state.episode_return, state.length))
                    state.obs, state.episode_return, state.length = self._reset_fixed(e), 0.0, 0
                else:
                    state.obs = next_obs[j]
                if cut:
                    self._live[e] = (state.obs, state.episode_return, state.length)
                    del running[e]
                elif over[j]:
                    state.piece += 1
                    state.segment = rows.open((e, state.piece))
        return rows.batch()

    # ------------------------------------------------------------------ the step function
    def _step(self, active: list[int], running: dict[int, _Running], rows: _Rows, obs_stats
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step of the environments ``active`` (their episodes in ``running``); records the rows
        and returns, per environment, (next obs, episode over, terminated), each an array over ``active``."""
        states = [running[e] for e in active]
        k = len(active)
        obs = np.array([state.obs for state in states])
        x = obs if obs_stats is None else normalize_observations(obs, *obs_stats, self.obs_clip)
        mu, sigma = self.policy.distribution_rows(x)
        noise = np.array([state.noise.next() for state in states])
        block = rows.reserve(k)
        env_actions = np.empty((k, self.action_dim))
        rows.obs[block] = obs
        sample_actions(mu, sigma, noise, self.action_bounds, self.policy.squashed, rows.actions[block], env_actions,
                       rows.log_prob[block])
        # the environments' own steps, then each result converted and checked once for all of them
        results = [self.envs[e].step(action) for e, action in zip(active, env_actions, strict=True)]
        rewards = rows.rewards[block]
        rewards[:] = [result[1] for result in results]
        terminated = np.array([result[2] for result in results], bool)
        over = terminated | np.array([result[3] for result in results], bool)
        next_obs = self._stack_observations([result[0] for result in results], active)
        rows.segment[block] = [state.segment for state in states]
        for state, reward in zip(states, rewards.tolist(), strict=True):
            state.episode_return += reward
            state.length += 1
        if not (np.isfinite(rewards).all() and np.isfinite(next_obs).all()):
            j = next(j for j in range(k) if not (math.isfinite(rewards[j]) and np.isfinite(next_obs[j]).all()))
            raise self._nonfinite(active[j], states[j].length, rewards[j], next_obs[j])
        return next_obs, over, terminated

    def _stack_observations(self, observations: list, active: list[int]) -> np.ndarray:
        """The observations as one (k, obs_dim) float64 array; a wrong shape names its environment."""
        try:
            stacked = np.array(observations, dtype=np.float64)
        except ValueError:  # shapes that do not stack
            stacked = None
        if stacked is None or stacked.shape != (len(active), self.obs_dim):
            for e, obs in zip(active, observations, strict=True):
                self._check_shape(obs, e)
        return stacked

    def _check_shape(self, obs, e: int) -> None:
        if np.shape(obs) != (self.obs_dim,):
            raise EnvError(
                f"environment {self.env_ids[e]} returned an observation of shape {np.shape(obs)}, expected "
                f"({self.obs_dim},): wrap it in gymnasium.wrappers.FlattenObservation"
            )

    def _nonfinite(self, e: int, step: int, reward: float, obs: np.ndarray) -> EnvError:
        what = f"reward {reward}" if not math.isfinite(reward) else f"observation {obs.tolist()}"
        return EnvError(f"environment {self.env_ids[e]} returned a non-finite {what} at step {step} of its episode: "
                        "check the environment (npppo cannot learn from NaN or inf)")

    def _reset(self, e: int, seed: int) -> np.ndarray:
        obs, _ = self.envs[e].reset(seed=seed)
        self._check_shape(obs, e)
        obs = np.array(obs, dtype=np.float64)
        if not np.isfinite(obs).all():
            raise self._nonfinite(e, 0, 0.0, obs)
        return obs

    def _reset_fixed(self, e: int) -> np.ndarray:
        seed = reset_seed(FIXED_RESET, self.run_seed, self.env_ids[e], int(self.episodes_started[e]))
        self.episodes_started[e] += 1
        return self._reset(e, seed)
