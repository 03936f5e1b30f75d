"""The critic V(s;φ): an MLP from observations to one value per row (SPEC §1).

    V = mlp(obs)[:, 0]            obs (batch, obs_dim) -> values (batch,)
    dL/dφ = mlp^T(dL/dV[:, None])  (the MLP's own backward)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from npppo.nn.activations import Activation
from npppo.nn.layers import MLP, FlatModel


class Critic(FlatModel):
    """A state-value network: hidden layers with one activation, a linear output of width 1."""

    def __init__(
        self,
        obs_dim: int,
        hidden_sizes: Sequence[int] = (100, 100, 100, 80, 40),
        activation: str = "relu",
        elu_alpha: float = 1.0,
        init: str = "glorot_normal",
        dtype=np.float64,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.obs_dim = obs_dim
        hidden = Activation(activation, elu_alpha)
        sizes = [obs_dim, *hidden_sizes, 1]
        self.mlp = MLP(sizes, [hidden] * len(hidden_sizes) + [Activation("identity")], "critic")
        super().__init__([self.mlp], dtype=dtype)
        self.mlp.init(rng if rng is not None else np.random.default_rng(0), init)

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """values (batch,), a view of a layer buffer, cached for :meth:`backward`."""
        return self.mlp.forward(obs)[:, 0]

    def backward(self, grad_values: np.ndarray) -> None:
        """Writes dL/dφ into ``self.grad`` from dL/dV (batch,)."""
        self.mlp.backward(np.ascontiguousarray(grad_values[:, None]), need_input_grad=False)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) as a fresh (batch,) array."""
        obs = np.atleast_2d(np.asarray(obs, dtype=self.dtype))
        return self.forward(obs).copy()
