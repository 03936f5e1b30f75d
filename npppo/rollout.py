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

from npppo.distributions import gaussian_log_prob
from npppo.errors import EnvironmentError

PolicyFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def episode_seed(run_seed: int, iteration: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of iteration ``iteration`` (a 31-bit integer)."""
    return int(np.random.SeedSequence([run_seed, iteration, episode]).generate_state(1)[0] >> 1)


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


class _Segment:
    """The steps one environment has taken since its segment began."""

    __slots__ = ("actions", "log_prob", "obs", "rewards")

    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.log_prob: list[float] = []
        self.rewards: list[float] = []


class Collector:
    """Steps ``envs`` together; see the module docstring for the two kinds of batch."""

    def __init__(self, envs: list, action_low: np.ndarray, action_high: np.ndarray, run_seed: int) -> None:
        self.envs = envs
        self.action_low, self.action_high = action_low, action_high
        self.run_seed = run_seed
        self.obs_dim = envs[0].observation_space.shape[0]
        self.action_dim = action_low.shape[0]
        self.total_steps = 0  # env steps taken so far in the run (for error messages)
        # the state that persists across fixed-step batches
        self.episodes_started = 0
        self._live_obs: np.ndarray | None = None
        self._live_return = np.zeros(len(envs))
        self._live_length = np.zeros(len(envs), np.int64)

    def _check_obs(self, obs: np.ndarray, env_index: int) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (self.obs_dim,):
            raise EnvironmentError(
                f"environment {env_index} returned an observation of shape {obs.shape}, expected "
                f"({self.obs_dim},): wrap it in gymnasium.wrappers.FlattenObservation"
            )
        if not np.all(np.isfinite(obs)):
            raise EnvironmentError(
                f"environment {env_index} returned a non-finite observation {obs.tolist()} at env step "
                f"{self.total_steps}: check the environment (npppo cannot learn from NaN or inf)"
            )
        return obs

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
        segments = [_Segment() for _ in range(n_envs)]
        finished: list[tuple[_Segment, np.ndarray, bool]] = []
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        log_prob = np.empty(n_envs)
        while active:
            obs = live_obs[active]
            mu, sigma = policy_fn(obs)
            actions = mu + sigma * rng.standard_normal(mu.shape)
            gaussian_log_prob(actions, mu.astype(np.float64), sigma.astype(np.float64), log_prob[: len(active)])
            env_actions = np.clip(actions, self.action_low, self.action_high)
            still_active = []
            for k, i in enumerate(active):
                next_obs, reward, terminated, truncated, _ = self.envs[i].step(env_actions[k])
                self.total_steps += 1
                reward = float(reward)
                if not math.isfinite(reward):
                    raise EnvironmentError(
                        f"environment {i} returned a non-finite reward {reward} at env step {self.total_steps}: "
                        "check the environment (npppo cannot learn from NaN or inf)"
                    )
                next_obs = self._check_obs(next_obs, i)
                segment = segments[i]
                segment.obs.append(obs[k])
                segment.actions.append(actions[k])
                segment.log_prob.append(log_prob[k])
                segment.rewards.append(reward)
                returns_so_far[i] += reward
                lengths_so_far[i] += 1
                episode_over = terminated or truncated
                cut = steps_left is not None and steps_left[i] == 1
                if episode_over or cut:
                    finished.append((segment, next_obs, bool(terminated)))
                    segments[i] = _Segment()
                if episode_over:
                    episode_returns.append(returns_so_far[i])
                    episode_lengths.append(int(lengths_so_far[i]))
                    returns_so_far[i] = 0.0
                    lengths_so_far[i] = 0
                    if steps_left is None:
                        if episodes_started >= n_episodes:
                            continue  # this environment's work for the batch is done
                        next_obs = self._reset(i, episode_seed(self.run_seed, iteration, episodes_started))
                        episodes_started += 1
                    else:
                        next_obs = self._reset(i, episode_seed(self.run_seed, -1, self.episodes_started))
                        self.episodes_started += 1
                live_obs[i] = next_obs
                if steps_left is not None:
                    steps_left[i] -= 1
                    if steps_left[i] == 0:
                        continue
                still_active.append(i)
            active = still_active
        return _assemble(finished, episode_returns, episode_lengths, self.obs_dim, self.action_dim)


def _assemble(finished, episode_returns, episode_lengths, obs_dim: int, action_dim: int) -> Batch:
    lengths = np.array([len(segment.rewards) for segment, _, _ in finished], np.int64)
    end_steps = np.cumsum(lengths) - 1
    episode_ends = np.zeros(int(lengths.sum()), bool)
    episode_ends[end_steps] = True
    return Batch(
        obs=np.concatenate([np.asarray(s.obs).reshape(-1, obs_dim) for s, _, _ in finished]),
        actions=np.concatenate([np.asarray(s.actions).reshape(-1, action_dim) for s, _, _ in finished]),
        log_prob=np.concatenate([np.asarray(s.log_prob) for s, _, _ in finished]),
        rewards=np.concatenate([np.asarray(s.rewards) for s, _, _ in finished]),
        episode_ends=episode_ends,
        end_steps=end_steps,
        end_obs=np.array([obs for _, obs, _ in finished]).reshape(-1, obs_dim),
        end_terminated=np.array([terminated for _, _, terminated in finished], bool),
        episode_returns=np.array(episode_returns, np.float64),
        episode_lengths=np.array(episode_lengths, np.int64),
    )
