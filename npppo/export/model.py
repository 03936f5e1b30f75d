"""What an export reads: a trained policy as the float32 layers and constants of its acting formula.

The policy is loaded by :mod:`npppo.inference` (the NumPy reference every export is tested against),
after :func:`npppo.checkpoint.read_checkpoint` has checked the file, so a full ``checkpoint.npz`` and
a ``model.npz`` holding only what acting needs both work. The formula (inference.py's docstring):

    x      = clip((obs - mean) / sqrt(var + OBS_EPS), -obs_clip, obs_clip)   if normalised
    h      = trunk(x);   mu = mu_head(h)
    sigma  = sigma_head(h) + sigma_min   or  exp(log_std)
    u      = mu   or   mu + sigma * noise
    action = clip(u, low, high)   or   low + (tanh(u) + 1) (high - low) / 2, clipped to [low, high]

The constants that have a float64 closed form (sqrt(var + OBS_EPS), exp(log_std), (high - low) / 2)
are computed here in float64 and rounded once to float32.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npppo.errors import CheckpointError, NpppoError
from npppo.inference import OBS_EPS, Policy

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile "
    "while _Bool _Complex _Imaginary".split())


@dataclass(frozen=True)
class Layer:
    """One row of a layer table with its weights: ``y = f(x W + b)``."""

    name: str  # part and index, e.g. "trunk.0"
    weight: np.ndarray  # (fan_in, fan_out) float32
    bias: np.ndarray  # (fan_out,) float32
    activation: str  # a name of npppo.inference.ACTIVATIONS
    alpha: float  # ELU's negative saturation (unused by the others)


@dataclass(frozen=True)
class ExportModel:
    """A policy ready to be written out; arrays are float32 unless said otherwise."""

    source: Path  # the checkpoint file read
    sha256: str  # of that file's bytes
    preset: str | None  # the preset whose config it was trained with, if one matches
    policy: Policy  # the NumPy reference (float64)
    obs_dim: int
    action_dim: int
    trunk: list[Layer]
    mu_head: list[Layer]
    sigma_head: list[Layer]  # empty for a state-independent sigma
    sigma_min: float  # added to sigma_head's output
    sigma: np.ndarray | None  # (action_dim,) exp(log_std), for a state-independent sigma
    obs_mean: np.ndarray | None  # (obs_dim,), None without observation normalisation
    obs_std: np.ndarray | None  # (obs_dim,) sqrt(var + OBS_EPS)
    obs_clip: float | None
    action_low: np.ndarray  # (action_dim,)
    action_high: np.ndarray  # (action_dim,)
    half_range: np.ndarray  # (action_dim,) (high - low) / 2, for the tanh squash
    action_squash: str  # "clip" or "tanh"
    env_id: str | None

    @property
    def parts(self) -> dict[str, list[Layer]]:
        return {"trunk": self.trunk, "mu_head": self.mu_head, "sigma_head": self.sigma_head}

    def multiply_adds(self, deterministic: bool = True) -> int:
        """Multiply-adds of one forward (the mean alone when ``deterministic``)."""
        layers = self.trunk + self.mu_head + ([] if deterministic else self.sigma_head)
        return sum(layer.weight.size for layer in layers)


def resolve_source(source: str | Path) -> Path:
    """The checkpoint file that SOURCE names: a run folder (its model.npz, else its checkpoint.npz) or a file."""
    path = Path(source)
    if path.is_dir():
        found = [p for p in (path / "model.npz", path / "checkpoint.npz") if p.is_file()]
        if not found:
            raise CheckpointError(f"{path} holds neither model.npz nor checkpoint.npz: give a run folder or a .npz")
        return found[0]
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: give a run folder, its model.npz or a checkpoint.npz")
    return path


def load_model(source: str | Path) -> ExportModel:
    """The policy in SOURCE (see :func:`resolve_source`), or CheckpointError saying what is wrong."""
    from npppo.checkpoint import read_checkpoint

    path = resolve_source(source)
    _, meta = read_checkpoint(path)  # the clear messages for corrupt, truncated and foreign files
    try:
        policy = Policy.load(path)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    parts = {part: [_layer(policy.params, row, index) for index, row in enumerate(policy.parts[part])]
             for part in ("trunk", "mu_head", "sigma_head")}
    if policy.log_std_offset is not None:
        parts["sigma_head"] = []
        start = int(policy.log_std_offset)
        sigma = np.exp(policy.params[start : start + policy.action_dim]).astype(np.float32)
    else:
        sigma = None
    normalised = policy.obs_clip is not None
    model = ExportModel(
        source=path, sha256=sha256, preset=_preset_of(meta), policy=policy,
        obs_dim=policy.obs_dim, action_dim=policy.action_dim, **parts,
        sigma_min=float(policy.sigma_min), sigma=sigma,
        obs_mean=policy.obs_mean.astype(np.float32) if normalised else None,
        obs_std=np.sqrt(policy.obs_var + OBS_EPS).astype(np.float32) if normalised else None,
        obs_clip=float(policy.obs_clip) if normalised else None,
        action_low=policy.action_low.astype(np.float32), action_high=policy.action_high.astype(np.float32),
        half_range=(0.5 * (policy.action_high - policy.action_low)).astype(np.float32),
        action_squash=str(policy.action_squash), env_id=meta.get("env_id"),
    )
    _check_finite(model)
    return model


def _layer(params: np.ndarray, row, index: int) -> Layer:
    offset, fan_in, fan_out = int(row["offset"]), int(row["fan_in"]), int(row["fan_out"])
    weight = params[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out)
    bias = params[offset + fan_in * fan_out : offset + fan_in * fan_out + fan_out]
    return Layer(f"{row['part']}.{index}", weight.astype(np.float32), bias.astype(np.float32),
                 str(row["activation"]), float(row["alpha"]))


def _check_finite(model: ExportModel) -> None:
    """A non-finite weight or statistic (or one beyond float32's range) would export a policy that acts NaN."""
    arrays = {f"{layer.name}.{kind}": getattr(layer, kind)
              for layers in model.parts.values() for layer in layers for kind in ("weight", "bias")}
    arrays.update(sigma=model.sigma, obs_mean=model.obs_mean, obs_std=model.obs_std)
    for name, values in arrays.items():
        if values is not None and not np.all(np.isfinite(values)):
            raise CheckpointError(f"checkpoint {model.source}: {name} holds non-finite values (or values beyond "
                                  "float32's range): there is no policy to export; use an earlier checkpoint")
    if model.action_squash == "tanh" and not np.all(np.isfinite(model.half_range)):
        raise CheckpointError(f"checkpoint {model.source}: the tanh squash needs finite action bounds")


def _preset_of(meta: dict) -> str | None:
    """The preset that the run names, else the preset whose config equals the checkpoint's, else None."""
    from npppo import presets

    named = str((meta.get("run") or {}).get("preset") or "").split(" ")[0]
    if named in presets.names():
        return named
    config = json.dumps(meta.get("config"), sort_keys=True)
    for name in presets.names():
        if json.dumps(presets.get(name).to_dict(), sort_keys=True) == config:
            return name
    return None


def check_c_name(name: str) -> str:
    """``name`` if it can prefix the exported C symbols, else NpppoError saying what to pass."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in C_KEYWORDS or name.startswith("__") or \
            re.match(r"_[A-Z]", name):
        suggestion = default_name(name)
        raise NpppoError(f"--name {name!r} is not a C identifier to prefix the exported functions with: use letters, "
                         f"digits and _, not starting with a digit, not a C keyword (for example --name {suggestion})")
    return name


def default_name(text: str | None) -> str:
    """A C identifier made from ``text`` (a preset's name): 'policy' when nothing is left of it."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text or "").strip("_")
    if not name:
        return "policy"
    if name[0].isdigit() or name in C_KEYWORDS:
        name = f"policy_{name}"
    return name
