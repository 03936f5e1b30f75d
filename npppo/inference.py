"""Acting from a saved policy with NumPy alone, and the NumPy reference of every formula npppo uses.

    from npppo.inference import Policy
    policy = Policy.load("runs/pendulum/model.npz")
    action = policy.act(obs)                  # deterministic: the mean mu(s), clipped to the bounds
    value = policy.value(obs)                 # the critic's V(s)

This file imports only NumPy and the standard library, so it can be copied on its own next to an
application and imported as ``inference``. The formulas below are the plain-NumPy references that
npppo's compiled kernels are tested against: one activation table, one Gaussian log-density, one
observation normalisation.

A checkpoint describes each network by its *layer table* (see ``npppo.nn.layers.LAYER_DTYPE``):
one row per dense layer ``y = f(x W + b)`` with its part (``trunk``, ``mu_head``, ``sigma_head``, ``critic``),
the offset of ``W (fan_in, fan_out)`` (row-major, then ``b (fan_out,)``) in the network's flat
parameter vector, and the activation ``f`` with its ``alpha``. What is not a layer sits in the
checkpoint's metadata under ``"policy"``:

    x      = clip((obs - mean) / sqrt(var + OBS_EPS), -obs_clip, obs_clip)   if obs_clip is not None
    h      = trunk(x);   mu = mu_head(h)
    sigma  = sigma_head(h) + sigma_min   or  exp(params[log_std_offset : + action_dim])
    u      = mu                          or  mu + sigma * N(0, 1)          (deterministic or sampled)
    action = clip(u, low, high)          or  low + (tanh(u) + 1) (high - low) / 2   (action_squash)

Everything is computed in float64, whatever precision the policy was trained in.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

META_KEY = "__npppo__"
FORMAT_VERSION = 2
OBS_EPS = 1e-8  # keeps the normalisation finite for an observation that never varies
HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)
LOG_2 = np.log(2.0)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


# name -> (f(z), f'(z)); alpha is ELU's negative saturation. The order gives the compiled kernels' codes.
ACTIVATIONS = {
    "identity": (lambda z, alpha: z, lambda z, alpha: np.ones_like(z)),
    "relu": (lambda z, alpha: np.maximum(z, 0.0), lambda z, alpha: (z > 0).astype(z.dtype)),
    "elu": (lambda z, alpha: np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0))),
            lambda z, alpha: np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0.0))).astype(z.dtype)),
    "softplus": (lambda z, alpha: np.logaddexp(0.0, z), lambda z, alpha: _sigmoid(z).astype(z.dtype)),
    "tanh": (lambda z, alpha: np.tanh(z), lambda z, alpha: 1.0 - np.tanh(z) ** 2),
}


def gaussian_log_prob(actions, mu, sigma):
    """log N(actions; mu, diag(sigma^2)) summed over the last axis: (batch, D) -> (batch,)."""
    z = (actions - mu) / sigma
    return np.sum(-0.5 * z**2 - np.log(sigma) - HALF_LOG_2PI, axis=-1)


def gaussian_entropy(sigma):
    """Differential entropy of N(mu, diag(sigma^2)) summed over the last axis: (batch, D) -> (batch,)."""
    return np.sum(0.5 + HALF_LOG_2PI + np.log(sigma), axis=-1)


def tanh_squash(u, low, high):
    """The tanh-squashed action ``low + (tanh(u) + 1) (high - low) / 2`` of pre-squash samples u (batch, D),
    clipped to [low, high] against rounding."""
    return np.clip(low + (np.tanh(u) + 1.0) * (0.5 * (high - low)), low, high)


def tanh_log_det(u, low, high):
    """log |det da/du| of :func:`tanh_squash`, summed over the last axis: (batch, D) -> (batch,).

    sum_d [log(1 - tanh(u_d)^2) + log((high_d - low_d) / 2)], with the stable form
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), which neither cancels nor underflows for large |u|.
    The squashed log-density is ``gaussian_log_prob(u, mu, sigma) - tanh_log_det(u, low, high)``.
    """
    return np.sum(2.0 * (LOG_2 - u - np.logaddexp(0.0, -2.0 * u)) + np.log(0.5 * (high - low)), axis=-1)


def normalize_observations(obs, mean, var, clip):
    """clip((obs - mean) / sqrt(var + OBS_EPS), -clip, clip); obs (batch, obs_dim)."""
    return np.clip((obs - mean) / np.sqrt(var + OBS_EPS), -clip, clip)


def mlp_forward(params, layers, x):
    """The dense layers ``layers`` (rows of a layer table) applied in order to x (batch, fan_in)."""
    for layer in layers:
        offset, fan_in, fan_out = int(layer["offset"]), int(layer["fan_in"]), int(layer["fan_out"])
        weight = params[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out)
        bias = params[offset + fan_in * fan_out : offset + fan_in * fan_out + fan_out]
        x = ACTIVATIONS[str(layer["activation"])][0](x @ weight + bias, float(layer["alpha"]))
    return x


def check_layers(what: str, layers, size: int, chains: list[tuple[str, int, int]], extra: int = 0) -> None:
    """ValueError unless the layer table ``layers`` covers a parameter vector of ``size`` entries
    exactly (layers back to back from 0, then ``extra`` loose parameters), and each (part, in, out)
    of ``chains`` is a chain of layers from width ``in`` to width ``out``."""
    end = 0
    for layer in layers:
        if int(layer["offset"]) != end:
            raise ValueError(f"the {what} layer table is not back to back: a layer at {int(layer['offset'])}, "
                             f"expected {end}")
        end += int(layer["fan_in"]) * int(layer["fan_out"]) + int(layer["fan_out"])
    if end + extra != size:
        raise ValueError(f"the {what} parameter vector has {size} entries, its layer table needs {end + extra}")
    for part, width_in, width_out in chains:
        rows = layers[layers["part"] == part]
        widths = [width_in] + [int(w) for w in rows["fan_out"]]
        if len(rows) == 0 or [int(w) for w in rows["fan_in"]] != widths[:-1] or widths[-1] != width_out:
            raise ValueError(f"the {what} layer table's {part} does not lead from width {width_in} to {width_out}")


class Policy:
    """A trained npppo policy (and critic) for acting; see the module docstring for the math.

    Attributes: ``obs_dim``, ``action_dim``, ``action_low`` / ``action_high`` (action_dim,),
    ``config`` (the training config as a dict), ``meta`` (the checkpoint's metadata).
    """

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.meta, self.config, facts = meta, meta["config"], meta["policy"]
        self.obs_dim, self.action_dim = int(meta["obs_dim"]), int(meta["action_dim"])
        self.action_low = np.asarray(arrays["action_low"], np.float64)
        self.action_high = np.asarray(arrays["action_high"], np.float64)
        self.params = np.asarray(arrays["policy.params"], np.float64)
        self.critic_params = np.asarray(arrays["critic.params"], np.float64)
        layers, self.critic_layers = arrays["policy.layers"], arrays["critic.layers"]
        self.parts = {part: layers[layers["part"] == part] for part in ("trunk", "mu_head", "sigma_head")}
        self.sigma_min, self.log_std_offset = float(facts["sigma_min"]), facts["log_std_offset"]
        self.obs_clip = facts["obs_clip"]
        self.action_squash = facts.get("action_squash", "clip")  # absent in checkpoints from before the option
        trunk_out = int(self.parts["trunk"]["fan_out"][-1]) if len(self.parts["trunk"]) else -1
        heads = [("mu_head", trunk_out, self.action_dim)]
        if self.log_std_offset is None:
            heads.append(("sigma_head", trunk_out, self.action_dim))
        check_layers("policy", layers, self.params.size, [("trunk", self.obs_dim, trunk_out), *heads],
                     0 if self.log_std_offset is None else self.action_dim)
        check_layers("critic", self.critic_layers, self.critic_params.size, [("critic", self.obs_dim, 1)])
        if self.obs_clip is not None:
            self.obs_mean = np.asarray(arrays["obs_rms.mean"], np.float64)
            self.obs_var = np.asarray(arrays["obs_rms.var"], np.float64)

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
            raise ValueError(f"checkpoint {path} does not fit its own layer tables: {exc}") from exc

    def _features(self, obs: np.ndarray) -> tuple[np.ndarray, bool]:
        """Raw obs (obs_dim,) or (k, obs_dim) -> normalised (k, obs_dim) float64, and whether it was one row."""
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape[-1:] != (self.obs_dim,) or obs.ndim > 2:
            raise ValueError(f"expected observations of shape ({self.obs_dim},) or (k, {self.obs_dim}), "
                             f"got {obs.shape}")
        x = obs.reshape(-1, self.obs_dim)
        if self.obs_clip is not None:
            x = normalize_observations(x, self.obs_mean, self.obs_var, self.obs_clip)
        return x, obs.ndim == 1

    def distribution(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of π(·|obs), each (k, action_dim), for raw observations (k, obs_dim)."""
        return self._distribution(self._features(obs)[0])

    def _distribution(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = mlp_forward(self.params, self.parts["trunk"], x)
        mu = mlp_forward(self.params, self.parts["mu_head"], h)
        if self.log_std_offset is not None:
            log_std = self.params[self.log_std_offset : self.log_std_offset + self.action_dim]
            return mu, np.broadcast_to(np.exp(log_std), mu.shape).copy()
        return mu, mlp_forward(self.params, self.parts["sigma_head"], h) + self.sigma_min

    def act(self, obs: np.ndarray, deterministic: bool = True,
            rng: np.random.Generator | None = None) -> np.ndarray:
        """The action for ``obs`` (obs_dim,) -> (action_dim,), or a batch (k, obs_dim) -> (k, action_dim).

        Deterministic: mu(s); otherwise a sample of N(mu, sigma^2) from ``rng`` (a fresh one if None).
        Either way clipped to the action space's bounds, or tanh-squashed into them (``action_squash``).
        """
        x, single = self._features(obs)
        mu, sigma = self._distribution(x)
        if deterministic:
            actions = mu
        else:
            rng = rng if rng is not None else np.random.default_rng()
            actions = mu + sigma * rng.standard_normal(mu.shape)
        if self.action_squash == "tanh":
            actions = tanh_squash(actions, self.action_low, self.action_high)
        else:
            actions = np.clip(actions, self.action_low, self.action_high)
        return actions[0] if single else actions

    def value(self, obs: np.ndarray) -> np.ndarray | float:
        """The critic's V(obs): a float for one observation, (k,) for a batch."""
        x, single = self._features(obs)
        values = mlp_forward(self.critic_params, self.critic_layers, x)[:, 0]
        return float(values[0]) if single else values
