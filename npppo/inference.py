"""Acting from a saved policy with NumPy alone: no Numba, no Gymnasium, no npppo training code.

    from npppo.inference import Policy
    policy = Policy.load("runs/pendulum/model.npz")
    action = policy.act(obs)                  # deterministic: the mean mu(s), clipped to the bounds
    value = policy.value(obs)                 # the critic's V(s)

This file imports only NumPy and the standard library, so it can also be copied on its own next
to an application and imported as ``inference`` (or loaded by file path); ``import npppo.inference``
does not load Numba or Gymnasium either (``npppo/__init__.py`` loads its names lazily).

It rebuilds the networks from the checkpoint's config and flat parameter vectors, in the layout of
:mod:`npppo.nn.layers`: each dense layer is its weight ``(fan_in, fan_out)`` row-major, then its bias
``(fan_out,)``; the policy vector holds the trunk, the mu head, then the sigma head (or ``log_std``).

    x     = clip((obs - mean) / sqrt(var + 1e-8), -obs_clip, obs_clip)     if normalize_obs
    h     = trunk(x)
    mu    = mu_head(h)
    sigma = sigma_head(h) + sigma_min      or  exp(log_std)  (state-independent)
    action = clip(mu, low, high)           or  clip(mu + sigma * N(0, 1), low, high)

Everything is computed in float64, whatever precision the policy was trained in.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

META_KEY = "__npppo__"
FORMAT_VERSION = 1


def _activation(name: str, alpha: float = 1.0):
    """f(z) as a NumPy function (the same formulas as npppo.nn.activations)."""
    if name == "identity":
        return lambda z: z
    if name == "relu":
        return lambda z: np.maximum(z, 0.0)
    if name == "elu":
        return lambda z: np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0)))
    if name == "softplus":
        return lambda z: np.logaddexp(0.0, z)
    if name == "tanh":
        return np.tanh
    raise ValueError(f"unknown activation {name!r} in the checkpoint's config")


class _MLP:
    """Dense layers ``y = f(x W + b)`` cut out of a flat parameter vector, starting at ``offset``."""

    def __init__(self, params: np.ndarray, offset: int, sizes: list[int], activations: list) -> None:
        self.layers = []
        for fan_in, fan_out, activation in zip(sizes[:-1], sizes[1:], activations, strict=True):
            weight = params[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out)
            offset += fan_in * fan_out
            bias = params[offset : offset + fan_out]
            offset += fan_out
            self.layers.append((weight, bias, activation))
        self.end = offset

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for weight, bias, activation in self.layers:
            x = activation(x @ weight + bias)
        return x


class Policy:
    """A trained npppo policy (and critic) for acting; see the module docstring for the math.

    Attributes: ``obs_dim``, ``action_dim``, ``action_low`` / ``action_high`` (action_dim,),
    ``config`` (the training config as a dict), ``meta`` (the checkpoint's metadata).
    """

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        cfg = meta["config"]
        self.meta, self.config = meta, cfg
        self.obs_dim, self.action_dim = int(meta["obs_dim"]), int(meta["action_dim"])
        self.action_low = np.asarray(arrays["action_low"], np.float64)
        self.action_high = np.asarray(arrays["action_high"], np.float64)
        hidden = _activation(cfg["actor_activation"], cfg["elu_alpha"])
        trunk_sizes, head_sizes = list(cfg["trunk_sizes"]), list(cfg["head_sizes"])
        head = [trunk_sizes[-1], *head_sizes, self.action_dim]
        params = np.asarray(arrays["policy.params"], np.float64)
        self.trunk = _MLP(params, 0, [self.obs_dim, *trunk_sizes], [hidden] * len(trunk_sizes))
        head_hidden = [hidden] * len(head_sizes)
        self.mu_head = _MLP(params, self.trunk.end, head, [*head_hidden, _activation(cfg["mu_activation"])])
        self.sigma_min = float(cfg["sigma_min"])
        if cfg["sigma_mode"] == "state_independent":
            self.sigma_head = None
            self.log_std = params[self.mu_head.end : self.mu_head.end + self.action_dim]
            end = self.mu_head.end + self.action_dim
        else:
            self.sigma_head = _MLP(params, self.mu_head.end, head,
                                   [*head_hidden, _activation(cfg["sigma_mode"])])
            end = self.sigma_head.end
        if end != params.size:
            raise ValueError(f"the policy parameter vector has {params.size} entries, its config needs {end}")
        critic_sizes = list(cfg["critic_sizes"])
        critic_params = np.asarray(arrays["critic.params"], np.float64)
        self.critic = _MLP(critic_params, 0, [self.obs_dim, *critic_sizes, 1],
                           [_activation(cfg["critic_activation"], cfg["elu_alpha"])] * len(critic_sizes)
                           + [_activation("identity")])
        if self.critic.end != critic_params.size:
            raise ValueError(
                f"the critic parameter vector has {critic_params.size} entries, its config needs {self.critic.end}"
            )
        self.obs_mean = self.obs_var = None
        if cfg["normalize_obs"]:
            self.obs_mean = np.asarray(arrays["obs_rms.mean"], np.float64)
            self.obs_var = np.asarray(arrays["obs_rms.var"], np.float64)
        self.obs_clip = float(cfg["obs_clip"])

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """The policy in an npppo checkpoint (``model.npz`` or ``checkpoint.npz``), read without pickle."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"cannot read npppo checkpoint {path}: {exc}") from exc
        if META_KEY not in arrays:
            raise ValueError(f"{path} is not an npppo checkpoint (no {META_KEY!r} entry)")
        meta = json.loads(str(arrays.pop(META_KEY)))
        if meta.get("format") != "npppo-checkpoint" or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: format {meta.get('format')!r} version {meta.get('format_version')!r} is not "
                f"an npppo checkpoint of version {FORMAT_VERSION}"
            )
        try:
            return cls(arrays, meta)
        except KeyError as exc:
            raise ValueError(f"checkpoint {path} is incomplete: it has no {exc.args[0]!r}") from exc
        except ValueError as exc:
            raise ValueError(f"checkpoint {path} does not fit its own config: {exc}") from exc

    def _features(self, obs: np.ndarray) -> tuple[np.ndarray, bool]:
        """Raw obs (obs_dim,) or (k, obs_dim) -> normalised (k, obs_dim) float64, and whether it was one row."""
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape[-1:] != (self.obs_dim,) or obs.ndim > 2:
            raise ValueError(f"expected observations of shape ({self.obs_dim},) or (k, {self.obs_dim}), "
                             f"got {obs.shape}")
        single = obs.ndim == 1
        x = obs.reshape(-1, self.obs_dim)
        if self.obs_mean is not None:
            x = np.clip((x - self.obs_mean) / np.sqrt(self.obs_var + 1e-8), -self.obs_clip, self.obs_clip)
        return x, single

    def distribution(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of π(·|obs), each (k, action_dim), for raw observations (k, obs_dim)."""
        return self._distribution(self._features(obs)[0])

    def _distribution(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self.trunk(x)
        mu = self.mu_head(h)
        if self.sigma_head is None:
            sigma = np.broadcast_to(np.exp(self.log_std), mu.shape).copy()
        else:
            sigma = self.sigma_head(h) + self.sigma_min
        return mu, sigma

    def act(self, obs: np.ndarray, deterministic: bool = True,
            rng: np.random.Generator | None = None) -> np.ndarray:
        """The action for ``obs`` (obs_dim,) -> (action_dim,), or a batch (k, obs_dim) -> (k, action_dim).

        Deterministic: mu(s); otherwise a sample of N(mu, sigma^2) from ``rng`` (a fresh one if None).
        Either way clipped to the action space's bounds.
        """
        x, single = self._features(obs)
        mu, sigma = self._distribution(x)
        if deterministic:
            actions = mu
        else:
            rng = rng if rng is not None else np.random.default_rng()
            actions = mu + sigma * rng.standard_normal(mu.shape)
        actions = np.clip(actions, self.action_low, self.action_high)
        return actions[0] if single else actions

    def value(self, obs: np.ndarray) -> np.ndarray | float:
        """The critic's V(obs): a float for one observation, (k,) for a batch."""
        x, single = self._features(obs)
        values = self.critic(x)[:, 0]
        return float(values[0]) if single else values
