"""PPOConfig: every setting of a run, validated up front, convertible to and from JSON.

This module owns the allowed values of every field and the schema of preset files. The defaults are
the broadly working PPO settings users know from Stable-Baselines3 (Adam 3e-4, 64-64 tanh networks,
identity mean with a state-independent log sigma, GAE(0.95), 10 epochs of 64-sample minibatches over
2048-step batches); the seed's system (SPEC §1) is the preset ``seed``, spelled out field by field
in ``presets/seed.json``. Every out-of-range value raises :class:`npppo.errors.ConfigError` naming
the field, its value and what is allowed; an unknown key gets a "did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npppo.errors import ConfigError
from npppo.inference import ACTIVATIONS

ADVANTAGES = ("n_step", "gae")
LR_SCHEDULES = ("constant", "linear")
DTYPES = ("float32", "float64")
SIGMA_MODES = ("relu", "softplus", "state_independent")
INITIALISERS = ("glorot_normal", "glorot_uniform", "he_normal", "orthogonal")
OPTIMIZERS = ("sgd", "adam")
ACTION_SQUASHES = ("clip", "tanh")
PRESET_KEYS = ("description", "env", "steps", "env_kwargs", "config")


@dataclass
class PPOConfig:
    """All settings of a PPO run (SB3's name, where it differs, in the comments; docs/config.md)."""

    # --- batches: a fixed number of env steps (default) or whole episodes (the seed: 40)
    num_envs: int = 8  # environments stepped together (SB3: n_envs)
    episodes_per_batch: int | None = None  # whole episodes per iteration (then steps_per_batch=None)
    steps_per_batch: int | None = 2048  # env steps per iteration, over all environments (SB3: n_steps * n_envs)
    # --- critic targets and advantages
    gamma: float = 0.99
    advantage: str = "gae"  # "gae" (GAE(λ) with λ-returns as targets) or "n_step" (the seed's n-step returns)
    n_step: int = 20  # the n of n-step returns
    gae_lambda: float = 0.95
    normalize_advantages: bool = True
    # --- the PPO update
    clip_eps: float = 0.2  # SB3: clip_range
    actor_epochs: int = 10  # k1: passes over the batch for the actor per iteration (SB3: n_epochs)
    critic_epochs: int = 10  # k2: passes for the critic
    batch_size: int | None = 64  # minibatch size; None = full batch (the seed)
    ent_coef_start: float = 0.0  # entropy coefficient, annealed linearly over the run ... (SB3: ent_coef)
    ent_coef_end: float = 0.0  # ... to this value at its end
    target_kl: float | None = None  # stop the actor epochs once approx KL exceeds this
    value_clip: float | None = None  # clip V around V_old by this much in the critic loss (SB3: clip_range_vf)
    # --- networks (SB3: net_arch, activation_fn)
    trunk_sizes: list[int] = field(default_factory=lambda: [64, 64])
    head_sizes: list[int] = field(default_factory=list)
    actor_activation: str = "tanh"
    mu_activation: str = "identity"  # the mean head's output; "relu" in the seed
    sigma_mode: str = "state_independent"  # "relu" (seed) / "softplus" (+ sigma_min), or a log-std parameter
    sigma_min: float = 1e-3
    action_squash: str = "clip"  # the env gets the sample clipped to its bounds, or tanh-squashed into them
    log_std_init: float = 0.0  # initial log sigma when sigma_mode="state_independent"
    critic_sizes: list[int] = field(default_factory=lambda: [64, 64])
    critic_activation: str = "tanh"
    elu_alpha: float = 1.0
    init: str = "orthogonal"  # SB3: ortho_init
    mu_output_gain: float = 0.01  # scale of the mu head's last-layer initial weights
    # --- optimizers: one for trunk + mu head, one for the sigma head, one for the critic
    optimizer: str = "adam"  # "adam" or "sgd" (momentum SGD, the seed)
    mu_lr: float = 3e-4  # SB3: learning_rate
    sigma_lr: float = 3e-4
    critic_lr: float = 3e-4
    momentum: float = 0.9
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-5
    lr_schedule: str = "constant"  # or "linear": down to 0 at the end of the run
    max_grad_norm: float | None = 0.5  # per optimizer group
    # --- normalisation
    normalize_obs: bool = False  # running mean/std of observations, saved with the model
    obs_clip: float = 10.0  # normalised observations are clipped to ±obs_clip
    reward_scale: float = 1.0  # rewards are multiplied by this before targets are computed
    normalize_rewards: bool = False  # divide rewards by the running std of the discounted return (SB3: norm_reward)
    reward_clip: float = 10.0  # normalised rewards are clipped to ±reward_clip (SB3: clip_reward)
    # --- numerics
    dtype: str = "float32"  # training precision; gradient checks always use float64

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise ConfigError for the first value out of range."""

        def fail(name: str, allowed: str) -> None:
            raise ConfigError(f"config field {name!r} = {getattr(self, name)!r} is invalid: {allowed}")

        def positive_int(name: str, optional: bool = False) -> None:
            value = getattr(self, name)
            if value is None and optional:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(name, "it must be an integer >= 1" + (" or null" if optional else ""))

        def number(name: str, low: float, high: float, low_open: bool, high_open: bool,
                   optional: bool = False) -> None:
            value = getattr(self, name)
            if value is None and optional:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                fail(name, "it must be a finite number" + (" or null" if optional else ""))
            below = value <= low if low_open else value < low
            above = value >= high if high_open else value > high
            if below or above:
                interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
                fail(name, f"it must lie in {interval}")

        def choice(name: str, allowed) -> None:
            if getattr(self, name) not in allowed:
                fail(name, f"choose one of {sorted(allowed)}")

        def sizes(name: str, allow_empty: bool) -> None:
            value = getattr(self, name)
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
            )
            if not ok or (not allow_empty and len(value) == 0):
                fail(name, "it must be a list of positive layer widths" + ("" if allow_empty else ", not empty"))

        inf = math.inf
        positive_int("num_envs")
        positive_int("episodes_per_batch", optional=True)
        positive_int("steps_per_batch", optional=True)
        if (self.episodes_per_batch is None) == (self.steps_per_batch is None):
            raise ConfigError(
                "config: set exactly one of 'episodes_per_batch' (whole episodes per iteration) and "
                f"'steps_per_batch' (env steps per iteration); got {self.episodes_per_batch!r} and "
                f"{self.steps_per_batch!r}"
            )
        number("gamma", 0.0, 1.0, True, False)
        choice("advantage", ADVANTAGES)
        positive_int("n_step")
        number("gae_lambda", 0.0, 1.0, False, False)
        number("clip_eps", 0.0, 1.0, True, True)
        positive_int("actor_epochs")
        positive_int("critic_epochs")
        positive_int("batch_size", optional=True)
        number("ent_coef_start", 0.0, inf, False, True)
        number("ent_coef_end", 0.0, inf, False, True)
        number("target_kl", 0.0, inf, True, True, optional=True)
        number("value_clip", 0.0, inf, True, True, optional=True)
        sizes("trunk_sizes", allow_empty=False)
        sizes("head_sizes", allow_empty=True)
        sizes("critic_sizes", allow_empty=False)
        for name in ("actor_activation", "mu_activation", "critic_activation"):
            choice(name, list(ACTIVATIONS))
        choice("sigma_mode", SIGMA_MODES)
        choice("action_squash", ACTION_SQUASHES)
        number("sigma_min", 0.0, inf, False, True)
        if self.sigma_mode != "state_independent" and self.sigma_min <= 0:
            fail("sigma_min", f"sigma_mode {self.sigma_mode!r} needs a floor sigma_min > 0 so that sigma > 0")
        number("log_std_init", -20.0, 5.0, False, False)
        number("elu_alpha", 0.0, inf, True, True)
        choice("init", INITIALISERS)
        number("mu_output_gain", 0.0, inf, True, True)
        choice("optimizer", OPTIMIZERS)
        for name in ("mu_lr", "sigma_lr", "critic_lr"):
            number(name, 0.0, inf, False, True)
        number("momentum", 0.0, 1.0, False, True)
        betas = self.adam_betas
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2
                and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            fail("adam_betas", "it must be two numbers in [0, 1)")
        number("adam_eps", 0.0, inf, True, True)
        choice("lr_schedule", LR_SCHEDULES)
        number("max_grad_norm", 0.0, inf, True, True, optional=True)
        if not isinstance(self.normalize_obs, bool):
            fail("normalize_obs", "it must be true or false")
        if not isinstance(self.normalize_rewards, bool):
            fail("normalize_rewards", "it must be true or false")
        number("reward_clip", 0.0, inf, True, False)
        if not isinstance(self.normalize_advantages, bool):
            fail("normalize_advantages", "it must be true or false")
        number("obs_clip", 0.0, inf, True, False)
        number("reward_scale", 0.0, inf, True, True)
        choice("dtype", DTYPES)

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PPOConfig:
        """Build from a dict; unknown keys are an error (a typo should not pass silently)."""
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a JSON object of field: value, got {type(values).__name__}")
        reject_unknown(values, [f.name for f in dataclasses.fields(cls)], "config field")
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> PPOConfig:
        """From a JSON file path (or a JSON string starting with ``{``) of PPOConfig fields."""
        text = str(path_or_text)
        return cls.from_dict(_parse_json(text if text.lstrip().startswith("{") else _read(path_or_text), text))

    def replace(self, **changes: Any) -> PPOConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def reject_unknown(values: dict[str, Any], known: list[str], what: str) -> None:
    """ConfigError naming each unknown key of ``values``, with the closest known name."""
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown {what} {key!r}: {hint}valid names are {sorted(known)}")


def read_config_file(path: str | Path) -> tuple[PPOConfig, dict[str, Any]]:
    """(config, run facts) from a JSON file: either PPOConfig fields, or a preset-style object
    ``{description, env, steps, env_kwargs, config}`` (the run facts are its keys other than config)."""
    values = _parse_json(_read(path), str(path))
    if isinstance(values, dict) and "config" in values:
        reject_unknown(values, list(PRESET_KEYS), f"key in preset-style file {path}:")
        facts = {key: values[key] for key in PRESET_KEYS if key != "config" and key in values}
        return PPOConfig.from_dict(values["config"]), facts
    return PPOConfig.from_dict(values), {}


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config {source} is not valid JSON: {exc}") from exc
