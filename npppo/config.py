"""PPOConfig: every setting of a run, validated up front, convertible to and from JSON.

The defaults are the seed's system (SPEC §1); :mod:`npppo.presets` holds named configurations as
data. Every out-of-range value raises :class:`npppo.errors.ConfigError` naming the field, its value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npppo.errors import ConfigError
from npppo.nn.activations import CODES as ACTIVATIONS
from npppo.nn.layers import INITIALISERS
from npppo.optim import Optimizer
from npppo.policy import SIGMA_MODES

ADVANTAGES = ("n_step", "gae")
LR_SCHEDULES = ("constant", "linear")
DTYPES = ("float32", "float64")


@dataclass
class PPOConfig:
    """All settings of a PPO run. Field comments give the seed's value and meaning."""

    # --- batches: whole episodes (seed: 40) or a fixed number of env steps
    num_envs: int = 40  # environments stepped together (seed: one per episode of the batch)
    episodes_per_batch: int | None = 40  # whole episodes per iteration
    steps_per_batch: int | None = None  # or: this many env steps per iteration (then episodes_per_batch=None)
    # --- critic targets and advantages
    gamma: float = 0.99
    advantage: str = "n_step"  # "n_step" (seed) or "gae"
    n_step: int = 20  # the seed's 20-step returns
    gae_lambda: float = 0.95
    normalize_advantages: bool = True
    # --- the PPO update
    clip_eps: float = 0.2
    actor_epochs: int = 10  # k1: passes over the batch for the actor per iteration
    critic_epochs: int = 5  # k2: passes for the critic
    batch_size: int | None = None  # minibatch size; None = full batch (seed)
    ent_coef_start: float = 1.0  # entropy coefficient, annealed linearly over the run ...
    ent_coef_end: float = 0.005  # ... to this value at its end
    target_kl: float | None = None  # stop the actor epochs once approx KL exceeds this
    value_clip: float | None = None  # clip V around V_old by this much in the critic loss
    # --- networks
    trunk_sizes: list[int] = field(default_factory=lambda: [100, 80, 70])
    head_sizes: list[int] = field(default_factory=lambda: [60, 50])
    actor_activation: str = "elu"
    mu_activation: str = "relu"
    sigma_mode: str = "relu"  # "relu" (seed) / "softplus" (+ sigma_min), or "state_independent"
    sigma_min: float = 1e-3
    log_std_init: float = 0.0  # initial log sigma when sigma_mode="state_independent"
    critic_sizes: list[int] = field(default_factory=lambda: [100, 100, 100, 80, 40])
    critic_activation: str = "relu"
    elu_alpha: float = 1.0
    init: str = "glorot_normal"
    mu_output_gain: float = 1.0  # scale of the mu head's last-layer initial weights
    # --- optimizers: one for trunk + mu head, one for the sigma head, one for the critic
    optimizer: str = "sgd"  # "sgd" (momentum SGD, seed) or "adam"
    mu_lr: float = 1e-4
    sigma_lr: float = 1e-4
    critic_lr: float = 1e-4
    momentum: float = 0.9
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    lr_schedule: str = "constant"  # or "linear": down to 0 at the end of the run
    max_grad_norm: float | None = 1.0  # per optimizer group
    # --- normalisation
    normalize_obs: bool = False  # running mean/std of observations, saved with the model
    obs_clip: float = 10.0  # normalised observations are clipped to ±obs_clip
    reward_scale: float = 1.0  # rewards are multiplied by this before targets are computed
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
            choice(name, ACTIVATIONS)
        choice("sigma_mode", SIGMA_MODES)
        number("sigma_min", 0.0, inf, False, True)
        if self.sigma_mode != "state_independent" and self.sigma_min <= 0:
            fail("sigma_min", f"sigma_mode {self.sigma_mode!r} needs a floor sigma_min > 0 so that sigma > 0")
        number("log_std_init", -20.0, 5.0, False, False)
        number("elu_alpha", 0.0, inf, True, True)
        choice("init", INITIALISERS)
        number("mu_output_gain", 0.0, inf, True, True)
        choice("optimizer", Optimizer.KINDS)
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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; valid fields are {sorted(known)}")
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> PPOConfig:
        """From a JSON file path (or a JSON string starting with ``{``)."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            try:
                text = Path(path_or_text).read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read config file {path_or_text}: {exc.strerror}") from exc
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config {path_or_text} is not valid JSON: {exc}") from exc
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> PPOConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)
