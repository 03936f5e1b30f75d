"""Running mean and variance of observations, merged batch by batch (Chan et al. 1979).

Merging a batch with mean m_b, variance v_b and count n_b into (m, v, n)::

    δ = m_b - m,   N = n + n_b
    m' = m + δ n_b / N
    v' = (v n + v_b n_b + δ² n n_b / N) / N

Observations are normalised by :func:`npppo.inference.normalize_observations`.
"""

from __future__ import annotations

import numpy as np

from npppo.inference import OBS_EPS, normalize_observations


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

    def kernel_stats(self) -> np.ndarray:
        """(mean, sqrt(var + OBS_EPS)) as one (2, obs_dim) array: the compiled acting kernel's form."""
        return np.stack([self.mean, np.sqrt(self.var + OBS_EPS)])
