"""The critic V(s;φ): an MLP from observations to one value per row (SPEC §1).

    V = mlp(obs)[:, 0]            obs (batch, obs_dim) -> values (batch,)
    dL/dφ = mlp^T(dL/dV[:, None])  (the MLP's own backward)
"""

from __future__ import annotations

import numpy as np

from npppo.config import PPOConfig
from npppo.nn.layers import MLP, ROWS_FORWARD_MAX, FlatModel, forward_rows


class Critic(FlatModel):
    """A state-value network shaped by ``config``: hidden layers with one activation, a linear output."""

    def __init__(self, obs_dim: int, config: PPOConfig, rng: np.random.Generator) -> None:
        self.obs_dim = obs_dim
        sizes = config.critic_sizes
        self.mlp = MLP([obs_dim, *sizes, 1], [config.critic_activation] * len(sizes) + ["identity"], "critic",
                       config.elu_alpha)
        super().__init__([self.mlp], [], np.dtype(config.dtype))
        self.mlp.init(rng, config.init)

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """values (batch,) through BLAS, a view of a layer buffer, cached for :meth:`backward`."""
        return self.mlp.forward(obs)[:, 0]

    def backward(self, grad_values: np.ndarray) -> None:
        """Writes dL/dφ into ``self.grad`` from dL/dV (batch,)."""
        self.mlp.backward(np.ascontiguousarray(grad_values[:, None]), need_input_grad=False)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) as a fresh (batch,) array; obs (batch, obs_dim)."""
        obs = np.ascontiguousarray(np.atleast_2d(obs), dtype=self.dtype)
        return self.forward(obs).copy() if obs.shape[0] > ROWS_FORWARD_MAX else self.value_rows(obs)

    def value_rows(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) through one compiled call, row by row (see ``GaussianPolicy.distribution_rows``)."""
        obs = np.ascontiguousarray(np.atleast_2d(obs), dtype=self.dtype)
        values = np.empty((obs.shape[0], 1), self.dtype)
        forward_rows(self.params, *self.kernel_layout, obs, values)
        return values[:, 0]
