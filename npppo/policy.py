"""The actor: a shared trunk with a mean head and a standard-deviation head (SPEC §1).

    h     = trunk(obs)                             obs (batch, obs_dim) -> h (batch, trunk_out)
    mu    = mu_head(h)                             (batch, action_dim); ReLU (seed) or identity output
    sigma = sigma_head(h) + sigma_min              ReLU (seed) or softplus output, floored
      or  = exp(log_std)                           state-independent: one parameter per action dim

Backward, from dL/dmu and dL/dsigma (batch, action_dim):

    dL/dh = mu_head^T(dL/dmu) + sigma_head^T(dL/dsigma)     (the trunk feeds both heads)
    dL/dlog_std_d = sum over rows of dL/dsigma_d * sigma_d   (state-independent sigma)

Actions: ``u = mu`` (deterministic) or ``mu + sigma * noise``, sent to the environment clipped to the
bounds or, with ``action_squash="tanh"``, as ``low + (tanh(u) + 1)(high - low)/2``
(:func:`npppo.distributions.act_coordinate`, which every compiled acting path calls).

The floor ``sigma_min`` is an additive constant, so it passes dL/dsigma through unchanged.
Parameters are one flat vector, in forward order: trunk, mu head, then sigma head (or log_std).
"""

from __future__ import annotations

import numpy as np

from npppo.config import PPOConfig
from npppo.distributions import act_coordinate
from npppo.jit import njit
from npppo.nn.layers import MLP, ROWS_FORWARD_MAX, FlatModel, forward_rows


class GaussianPolicy(FlatModel):
    """π(a|s;θ) = N(mu(s), diag(sigma(s)^2)), shaped by ``config`` (trusted: PPOConfig validates it)."""

    def __init__(self, obs_dim: int, action_dim: int, config: PPOConfig, rng: np.random.Generator) -> None:
        cfg = config
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.sigma_min = float(cfg.sigma_min)
        self.action_squash = cfg.action_squash
        hidden = [cfg.actor_activation] * len(cfg.head_sizes)
        head = [cfg.trunk_sizes[-1], *cfg.head_sizes, action_dim]
        self.trunk = MLP([obs_dim, *cfg.trunk_sizes], [cfg.actor_activation] * len(cfg.trunk_sizes), "trunk",
                         cfg.elu_alpha)
        self.mu_head = MLP(head, [*hidden, cfg.mu_activation], "mu_head", cfg.elu_alpha)
        self.sigma_head = None
        if cfg.sigma_mode != "state_independent":
            self.sigma_head = MLP(head, [*hidden, cfg.sigma_mode], "sigma_head", cfg.elu_alpha)
        parts = [self.trunk, self.mu_head] + ([self.sigma_head] if self.sigma_head else [])
        super().__init__(parts, [] if self.sigma_head else [("log_std", action_dim)], np.dtype(cfg.dtype))
        self.trunk.init(rng, cfg.init)
        self.mu_head.init(rng, cfg.init, cfg.mu_output_gain)
        if self.sigma_head is not None:
            self.sigma_head.init(rng, cfg.init)
        else:
            self.extra["log_std"][0][...] = cfg.log_std_init
        self.log_std_offset = self.part_ranges["log_std"][0] if self.sigma_head is None else None
        # the compiled forward's description: the layer table's rows, and where each part ends
        n_trunk, n_mu = len(self.trunk.layers), len(self.mu_head.layers)
        self._rows_args = (*self.kernel_layout, np.array([n_trunk, n_mu, -1 if self.sigma_head else
                                                          self.log_std_offset], np.int64), self.sigma_min)

    @property
    def mu_range(self) -> tuple[int, int]:
        """The flat-vector slice of the trunk and the mu head (the seed's mu-optimizer group)."""
        return 0, self.part_ranges["mu_head"][1]

    @property
    def sigma_range(self) -> tuple[int, int]:
        """The flat-vector slice of the sigma head or log_std (the seed's sigma-optimizer group)."""
        return self.part_ranges["mu_head"][1], self.params.shape[0]

    @property
    def squashed(self) -> bool:
        """Whether actions are tanh-squashed into the bounds (else clipped to them): the kernels' flag."""
        return self.action_squash == "tanh"

    def facts(self) -> dict:
        """What inference needs beyond the layer table (see :mod:`npppo.inference`)."""
        return {"sigma_min": self.sigma_min, "log_std_offset": self.log_std_offset,
                "action_squash": self.action_squash}

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma), each (batch, action_dim), through BLAS, cached for :meth:`backward`.

        mu is a layer buffer: valid until the next forward with the same batch size.
        """
        h = self.trunk.forward(obs)
        mu = self.mu_head.forward(h)
        if self.sigma_head is None:
            sigma = np.broadcast_to(np.exp(self.extra["log_std"][0]), mu.shape).copy()
        else:
            sigma = self.sigma_head.forward(h) + self.dtype.type(self.sigma_min)
        self._sigma = sigma
        return mu, sigma

    def backward(self, grad_mu: np.ndarray, grad_sigma: np.ndarray) -> None:
        """Writes dL/dθ into ``self.grad`` from dL/dmu and dL/dsigma of the last :meth:`forward`."""
        grad_h = self.mu_head.backward(grad_mu)
        if self.sigma_head is None:
            self.extra["log_std"][1][...] = np.sum(grad_sigma * self._sigma, axis=0)
        else:
            grad_h += self.sigma_head.backward(grad_sigma)  # in place: grad_h is the mu head's own buffer
        self.trunk.backward(grad_h, need_input_grad=False)

    def distribution(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of π(·|obs), each (batch, action_dim), as fresh arrays; obs (batch, obs_dim)."""
        obs = np.ascontiguousarray(np.atleast_2d(obs), dtype=self.dtype)
        if obs.shape[0] > ROWS_FORWARD_MAX:
            mu, sigma = self.forward(obs)
            return mu.copy(), sigma
        return self.distribution_rows(obs)

    def distribution_rows(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) through one compiled call, row by row: each row's result is the same bits
        whatever the batch size (which BLAS does not promise), and small batches skip BLAS's overhead."""
        obs = np.ascontiguousarray(np.atleast_2d(obs), dtype=self.dtype)
        mu = np.empty((obs.shape[0], self.action_dim), self.dtype)
        sigma = np.empty_like(mu)
        _policy_rows(self.params, *self._rows_args, obs, mu, sigma, True)
        return mu, sigma

    def act_rows(self, obs: np.ndarray, obs_shift_scale: np.ndarray, obs_clip: float, noise: np.ndarray,
                 bounds: np.ndarray) -> np.ndarray:
        """Actions for raw observations in one compiled call (batch-1 acting), float64 (batch, action_dim).

        obs (batch, obs_dim) float64; obs_shift_scale (2, obs_dim) the normalisation's mean and
        sqrt(var + OBS_EPS) (:func:`npppo.normalization.obs_shift_scale`), or (0, obs_dim)
        for none, then clipped to ±obs_clip; noise (batch, action_dim) float64 for sampled actions
        ``mu + sigma * noise``, or (0, action_dim) for the mean (the sigma head is then skipped);
        bounds (2, action_dim): the actions are clipped to [bounds[0], bounds[1]] or tanh-squashed into
        them (:attr:`squashed`). The same arithmetic as :meth:`distribution_rows` and ``np.clip`` (or
        :func:`npppo.inference.tanh_squash`), without their per-call overhead.
        """
        actions = np.empty((obs.shape[0], self.action_dim))
        _act_rows(self.params, *self._rows_args, obs, obs_shift_scale, obs_clip, noise, bounds, self.squashed, actions)
        return actions


@njit
def _policy_rows(params, layout, alphas, parts, sigma_min, obs, mu, sigma, with_sigma):
    """(mu, sigma) of obs (batch, obs_dim) row by row; parts = (trunk layers, mu layers, log_std offset
    or -1); sigma is left untouched when ``with_sigma`` is False (the mean alone needs no sigma head)."""
    n_trunk, n_mu, log_std_offset = parts[0], parts[1], parts[2]
    h = np.empty((obs.shape[0], layout[n_trunk - 1, 2]), params.dtype)
    forward_rows(params, layout[:n_trunk], alphas[:n_trunk], obs, h)
    forward_rows(params, layout[n_trunk : n_trunk + n_mu], alphas[n_trunk : n_trunk + n_mu], h, mu)
    if not with_sigma:
        return
    if log_std_offset >= 0:
        for i in range(obs.shape[0]):
            for d in range(mu.shape[1]):
                sigma[i, d] = np.exp(params[log_std_offset + d])
    else:
        forward_rows(params, layout[n_trunk + n_mu :], alphas[n_trunk + n_mu :], h, sigma)
        for i in range(obs.shape[0]):
            for d in range(mu.shape[1]):
                sigma[i, d] += sigma_min


@njit(inline="always")
def normalize_observation(obs, i, shift_scale, clip, x):
    """Row i of obs into x's only row (1, obs_dim), in x's dtype: clip((obs - shift_scale[0]) /
    shift_scale[1], ±clip), or the observation itself for an empty shift_scale (0, obs_dim); as
    :func:`npppo.inference.normalize_observations` computes it."""
    for j in range(obs.shape[1]):
        value = obs[i, j]
        if shift_scale.shape[0] > 0:
            value = min(max((value - shift_scale[0, j]) / shift_scale[1, j], -clip), clip)
        x[0, j] = value


@njit
def _act_rows(params, layout, alphas, parts, sigma_min, obs, obs_shift_scale, obs_clip, noise, bounds, squash,
              actions):
    """See :meth:`GaussianPolicy.act_rows`: normalise each row, :func:`_policy_rows`, then
    :func:`npppo.distributions.act_coordinate`."""
    dims = actions.shape[1]
    sampled = noise.shape[0] > 0
    x = np.empty((1, obs.shape[1]), params.dtype)
    mu = np.empty((1, dims), params.dtype)
    sigma = np.empty((1, dims), params.dtype)
    for i in range(obs.shape[0]):
        normalize_observation(obs, i, obs_shift_scale, obs_clip, x)
        _policy_rows(params, layout, alphas, parts, sigma_min, x, mu, sigma, sampled)
        for d in range(dims):
            _, action = act_coordinate(mu[0, d], sigma[0, d], noise[i, d] if sampled else 0.0, sampled,
                                       bounds[0, d], bounds[1, d], squash)
            actions[i, d] = action
