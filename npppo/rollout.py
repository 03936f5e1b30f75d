"""Collecting experience: several Gymnasium environments stepped together under π_θold.

One forward pass serves all running environments at each step. The sampled (unclipped) action and
its log-probability are stored; the environment receives the action clipped to its bounds.

Two kinds of batch:

* whole episodes (the seed): every environment is reset at the start of the iteration and the batch
  ends when ``n_episodes`` episodes have finished. Episode ``k`` of iteration ``i`` is reset with a
  seed derived from ``(run seed, i, k)``, so iterations are reproducible on their own and a run can
  be resumed exactly at any iteration boundary.
* a fixed number of steps: environments keep running across iterations; the piece of an episode
  still running at the end of the batch is bootstrapped like a truncation.

Each finished piece of experience is a *segment*: a run of steps of one environment that ends at an
episode's end or at the batch's cut. Segments are stored back to back (see :mod:`npppo.returns`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from npppo.jit import njit

from npppo.distributions import normal_log_density
from npppo.inference import gaussian_log_prob
from npppo.errors import EnvError

PolicyFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def episode_seed(run_seed: int, iteration: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of iteration ``iteration`` (a 31-bit integer).

    ``iteration = -1`` stands for fixed-step batches, whose episodes run across iterations; it maps
    to its own stream 2**32 - 1 because SeedSequence accepts non-negative entropy only.
    """
    stream = iteration if iteration >= 0 else 2**32 - 1
    return int(np.random.SeedSequence([run_seed, stream, episode]).generate_state(1)[0] >> 1)


@dataclass
class Batch:
    """Experience of one iteration; T steps in segments stored back to back."""

    obs: np.ndarray  # (T, obs_dim) raw observations s_t
    actions: np.ndarray  # (T, action_dim) sampled, before clipping
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


@njit
def sample_actions(mu, sigma, noise, low, high, actions, env_actions, log_prob):
    """Fused rollout step: ``actions = mu + sigma * noise`` (float64), their log π, and the clipped
    ``env_actions = clip(actions, low, high)``; mu, sigma (k, D) in the policy's dtype, noise,
    actions, env_actions (k, D) float64, low, high (D,), log_prob (k,).

    One compiled call instead of five NumPy ones per rollout step (the arithmetic is the same as
    :func:`reference_sample_actions`, in float64 whatever the policy's dtype).
    """
    for i in range(mu.shape[0]):
        total = 0.0
        for d in range(mu.shape[1]):
            a = np.float64(mu[i, d]) + np.float64(sigma[i, d]) * noise[i, d]
            actions[i, d] = a
            env_actions[i, d] = min(max(a, low[d]), high[d])
            total += normal_log_density(a, np.float64(mu[i, d]), np.float64(sigma[i, d]))
        log_prob[i] = total


def reference_sample_actions(mu, sigma, noise, low, high):
    """(actions, env_actions, log_prob) of :func:`sample_actions` in plain NumPy (for the tests)."""
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    actions = mu + sigma * noise
    return actions, np.clip(actions, low, high), gaussian_log_prob(actions, mu, sigma)


class _Steps:
    """The steps of one batch in the order they were taken (all environments interleaved), in flat
    arrays that grow by doubling: a rollout step writes its k rows with a few slice assignments
    instead of appending k small arrays to k Python lists."""

    def __init__(self, obs_dim: int, action_dim: int, capacity: int = 1024) -> None:
        self.size = 0
        self.obs = np.empty((capacity, obs_dim))
        self.actions = np.empty((capacity, action_dim))
        self.log_prob = np.empty(capacity)
        self.rewards = np.empty(capacity)
        self.segment = np.empty(capacity, np.int64)  # which segment each step belongs to

    def reserve(self, k: int) -> int:
        """Make room for k more steps; returns the first row."""
        if self.size + k > self.rewards.shape[0]:
            capacity = max(2 * self.rewards.shape[0], self.size + k)
            for name in ("obs", "actions", "log_prob", "rewards", "segment"):
                old = getattr(self, name)
                new = np.empty((capacity, *old.shape[1:]), old.dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
        start = self.size
        self.size += k
        return start


class Collector:
    """Steps ``envs`` together; see the module docstring for the two kinds of batch."""

    def __init__(self, envs: list, action_low: np.ndarray, action_high: np.ndarray, run_seed: int) -> None:
        self.envs = envs
        self.action_low = np.asarray(action_low, np.float64)
        self.action_high = np.asarray(action_high, np.float64)
        self.run_seed = run_seed
        self.obs_dim = envs[0].observation_space.shape[0]
        self.action_dim = self.action_low.shape[0]
        self.total_steps = 0  # env steps taken so far in the run (for error messages)
        # the state that persists across fixed-step batches
        self.episodes_started = 0
        self._live_obs: np.ndarray | None = None
        self._live_return = np.zeros(len(envs))
        self._live_length = np.zeros(len(envs), np.int64)

    def _check_obs(self, obs: np.ndarray, env_index: int) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        self._check_shape(obs, env_index)
        if not np.all(np.isfinite(obs)):
            self._non_finite(obs, env_index, self.total_steps)
        return obs

    def _check_shape(self, obs, env_index: int) -> None:
        if np.shape(obs) != (self.obs_dim,):
            raise EnvError(
                f"environment {env_index} returned an observation of shape {np.shape(obs)}, expected "
                f"({self.obs_dim},): wrap it in gymnasium.wrappers.FlattenObservation"
            )

    def _non_finite(self, obs: np.ndarray, env_index: int, step: int) -> None:
        raise EnvError(
            f"environment {env_index} returned a non-finite observation {np.asarray(obs).tolist()} at env "
            f"step {step}: check the environment (npppo cannot learn from NaN or inf)"
        )

    def _reset(self, env_index: int, seed: int) -> np.ndarray:
        obs, _ = self.envs[env_index].reset(seed=seed)
        return self._check_obs(obs, env_index)

    def collect(self, policy_fn: PolicyFn, iteration: int, rng: np.random.Generator,
                n_episodes: int | None = None, n_steps: int | None = None) -> Batch:
        """Run π_θold (``policy_fn``: raw obs (k, obs_dim) -> mu, sigma (k, D)) for one batch."""
        n_envs = len(self.envs)
        if n_episodes is not None:
            n_active = min(n_envs, n_episodes)
            live_obs = np.zeros((n_envs, self.obs_dim))
            for i in range(n_active):
                live_obs[i] = self._reset(i, episode_seed(self.run_seed, iteration, i))
            returns_so_far = np.zeros(n_envs)
            lengths_so_far = np.zeros(n_envs, np.int64)
            episodes_started = n_active
            steps_left = None
        else:
            n_active = n_envs
            if self._live_obs is None:
                self._live_obs = np.zeros((n_envs, self.obs_dim))
                for i in range(n_envs):
                    self._live_obs[i] = self._reset(i, episode_seed(self.run_seed, -1, self.episodes_started))
                    self.episodes_started += 1
                self._live_return[:] = 0.0
                self._live_length[:] = 0
            live_obs, returns_so_far, lengths_so_far = self._live_obs, self._live_return, self._live_length
            # split n_steps as evenly as possible, the remainder to the first environments
            steps_left = np.full(n_envs, n_steps // n_envs, np.int64)
            steps_left[: n_steps % n_envs] += 1
        active = [i for i in range(n_active) if steps_left is None or steps_left[i] > 0]
        steps = _Steps(self.obs_dim, self.action_dim)
        segment_of = list(range(n_envs))  # the id of each environment's current segment
        next_segment = n_envs
        finished: list[tuple[int, np.ndarray, bool]] = []  # (segment id, observation after it, terminated)
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        env_actions = np.empty((n_envs, self.action_dim))
        next_obs_block = np.empty((n_envs, self.obs_dim))
        while active:
            k = len(active)
            obs = live_obs if k == n_envs else live_obs[active]  # all running: no gather needed
            mu, sigma = policy_fn(obs)
            noise = rng.standard_normal(mu.shape)
            row = steps.reserve(k)
            rows = slice(row, row + k)
            steps.obs[rows] = obs
            sample_actions(mu, sigma, noise, self.action_low, self.action_high, steps.actions[rows],
                           env_actions[:k], steps.log_prob[rows])
            first_step = self.total_steps
            resets = []
            still_active = []
            for j, i in enumerate(active):
                next_obs, reward, terminated, truncated, _ = self.envs[i].step(env_actions[j])
                self.total_steps += 1
                reward = float(reward)
                if not math.isfinite(reward):
                    raise EnvError(
                        f"environment {i} returned a non-finite reward {reward} at env step {self.total_steps}: "
                        "check the environment (npppo cannot learn from NaN or inf)"
                    )
                self._check_shape(next_obs, i)
                next_obs_block[j] = next_obs
                steps.rewards[row + j] = reward
                steps.segment[row + j] = segment_of[i]
                returns_so_far[i] += reward
                lengths_so_far[i] += 1
                episode_over = terminated or truncated
                cut = steps_left is not None and steps_left[i] == 1
                if episode_over or cut:
                    finished.append((segment_of[i], next_obs_block[j].copy(), bool(terminated)))
                    segment_of[i] = next_segment
                    next_segment += 1
                if episode_over:
                    episode_returns.append(float(returns_so_far[i]))
                    episode_lengths.append(int(lengths_so_far[i]))
                    returns_so_far[i] = 0.0
                    lengths_so_far[i] = 0
                    if steps_left is None:
                        if episodes_started >= n_episodes:
                            continue  # this environment's work for the batch is done
                        seed = episode_seed(self.run_seed, iteration, episodes_started)
                        episodes_started += 1
                    else:
                        seed = episode_seed(self.run_seed, -1, self.episodes_started)
                        self.episodes_started += 1
                    resets.append((i, seed))
                if steps_left is not None:
                    steps_left[i] -= 1
                    if steps_left[i] == 0:
                        continue
                still_active.append(i)
            # one finiteness check for the whole rollout step (then find the culprit, if any)
            finite = np.isfinite(next_obs_block[:k]).all(axis=1)
            if not finite.all():
                j = int(np.argmin(finite))
                self._non_finite(next_obs_block[j], active[j], first_step + j + 1)
            if k == n_envs:
                live_obs[...] = next_obs_block
            else:
                live_obs[active] = next_obs_block[:k]
            for i, seed in resets:
                live_obs[i] = self._reset(i, seed)
            active = still_active
        return _assemble(steps, finished, episode_returns, episode_lengths)


def _assemble(steps: _Steps, finished, episode_returns, episode_lengths) -> Batch:
    """Reorder the interleaved steps into the finished segments stored back to back, in the order
    they finished (what appending each segment's steps to its own list used to give)."""
    n = steps.size
    segment = steps.segment[:n]
    ids = np.array([segment_id for segment_id, _, _ in finished], np.int64)
    rank = np.full(int(max(segment.max(initial=0), ids.max(initial=0))) + 1, -1, np.int64)
    rank[ids] = np.arange(ids.shape[0])
    step_rank = rank[segment]
    kept = np.flatnonzero(step_rank >= 0)  # every step, unless a segment was left unfinished
    order = kept[np.argsort(step_rank[kept], kind="stable")]
    end_steps = np.cumsum(np.bincount(step_rank[kept], minlength=ids.shape[0])) - 1
    episode_ends = np.zeros(order.shape[0], bool)
    episode_ends[end_steps] = True
    return Batch(
        obs=steps.obs[order],
        actions=steps.actions[order],
        log_prob=steps.log_prob[order],
        rewards=steps.rewards[order],
        episode_ends=episode_ends,
        end_steps=end_steps,
        end_obs=np.array([obs for _, obs, _ in finished]).reshape(-1, steps.obs.shape[1]),
        end_terminated=np.array([terminated for _, _, terminated in finished], bool),
        episode_returns=np.array(episode_returns, np.float64),
        episode_lengths=np.array(episode_lengths, np.int64),
    )
