"""Running mean and variance of observations (and of discounted returns), merged batch by batch (Chan et al. 1979).

Merging a batch with mean m_b, variance v_b and count n_b into (m, v, n)::

    δ = m_b - m,   N = n + n_b
    m' = m + δ n_b / N
    v' = (v n + v_b n_b + δ² n n_b / N) / N

Observations are normalised by :func:`npppo.inference.normalize_observations`.

Rewards (``normalize_rewards``, as SB3's VecNormalize does) are divided by the running standard
deviation of the discounted return ``R_t = gamma R_{t-1} + r_t`` (R restarting at 0 at each segment's
first row), clipped to ±reward_clip. Unlike VecNormalize, which updates after every environment step
in whatever order the environments run, the statistics are updated once per batch, in the learner,
from the batch's rows in their stored (episode or environment) order, so the result is the same for
any worker count. Each batch is scaled by the statistics *including* it (update, then scale): the
workers never see these statistics, so nothing forces a lag, and the first batch is then scaled by
its own spread rather than by 1. A segment is an episode, or the part of one inside this batch
(fixed-step batches cut episodes at the batch's end; the return restarts at the next batch's first row).
"""

from __future__ import annotations

import numpy as np

from npppo.inference import OBS_EPS, normalize_observations
from npppo.jit import njit


class RunningMeanStd:
    """Mean and variance of everything seen so far; ``shape`` is one observation's shape."""

    def __init__(self, shape: tuple[int, ...], clip: float) -> None:
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 0.0
        self.clip = clip

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch (n, *shape) into the statistics."""
        n_b = batch.shape[0]
        if n_b == 0:
            return
        mean_b, var_b = batch.mean(axis=0), batch.var(axis=0)
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / total
        self.var = (self.var * self.count + var_b * n_b + delta**2 * self.count * n_b / total) / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return normalize_observations(x, self.mean, self.var, self.clip)

    def state(self) -> dict[str, np.ndarray]:
        """The statistics as independent arrays (a checkpoint's ``mean``, ``var``, ``count``)."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": np.array(self.count)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        mean, var = np.array(state["mean"], np.float64), np.array(state["var"], np.float64)
        if mean.shape != self.mean.shape or var.shape != self.var.shape:
            raise ValueError(f"running statistics: expected shape {self.mean.shape}, got {mean.shape} and {var.shape}")
        self.mean, self.var, self.count = mean, var, float(state["count"])

    def shift_scale(self) -> np.ndarray:
        """:func:`obs_shift_scale` of the statistics: the compiled acting kernels' form."""
        return obs_shift_scale(self.mean, self.var)


def obs_shift_scale(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """(mean, sqrt(var + OBS_EPS)) as one (2, obs_dim) float64 array: what the compiled kernels subtract and
    divide by (:func:`npppo.inference.normalize_observations` is the formula)."""
    return np.stack([np.asarray(mean, np.float64), np.sqrt(np.asarray(var, np.float64) + OBS_EPS)])


@njit
def discounted_returns(rewards, episode_ends, gamma):
    """R_t = gamma R_{t-1} + r_t over rows in order, R_{-1} = 0 and R restarting after each segment's
    last row (``episode_ends``); rewards (T,) float64, episode_ends (T,) bool -> R (T,)."""
    returns = np.empty_like(rewards)
    running = 0.0
    for t in range(rewards.shape[0]):
        running = gamma * running + rewards[t]
        returns[t] = running
        if episode_ends[t]:
            running = 0.0
    return returns


class RewardNormalizer:
    """Rewards divided by the running std of the discounted return, clipped to ±clip (see the module doc).

    The statistics live in ``return_rms`` (a :class:`RunningMeanStd` of R_t; its mean is kept but unused:
    rewards are scaled, not centred, which would change the task).
    """

    def __init__(self, gamma: float, clip: float) -> None:
        self.gamma, self.clip = gamma, clip
        self.return_rms = RunningMeanStd((), clip)

    def __call__(self, rewards: np.ndarray, episode_ends: np.ndarray) -> np.ndarray:
        """Update the statistics with this batch, then scale it: rewards (T,), episode_ends (T,) -> (T,)."""
        rewards = np.asarray(rewards, np.float64)
        self.return_rms.update(discounted_returns(rewards, np.asarray(episode_ends, np.bool_), self.gamma))
        return self.scale(rewards)

    def state(self) -> dict[str, np.ndarray]:
        """The running statistics of the discounted return (:meth:`RunningMeanStd.state`)."""
        return self.return_rms.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.return_rms.load_state(state)

    def scale(self, rewards: np.ndarray) -> np.ndarray:
        """clip(r / sqrt(var_R + OBS_EPS), -clip, clip) with the current statistics (no update)."""
        return np.clip(rewards / np.sqrt(self.return_rms.var + OBS_EPS), -self.clip, self.clip)
