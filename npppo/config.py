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
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npppo.errors import ConfigError
from npppo.inference import ACTIVATIONS

ADVANTAGES = ("n_step", "gae")
LR_SCHEDULES = ("constant", "linear")
DTYPES = ("float32", "float64")
SIGMA_MODES = ("relu", "softplus", "state_independent")
INITIALISERS = ("glorot_normal", "glorot_uniform", "he_normal", "orthogonal")
OPTIMIZERS = ("sgd", "adam")
ACTION_SQUASHES = ("clip", "tanh")
FUSED_UPDATES = ("auto", "off")
PRESET_KEYS = ("description", "env", "steps", "env_kwargs", "config")



def is_positive_int(value) -> bool:
    """An integer (Python's or NumPy's; not a bool) of at least 1."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def positive_int(value, what: str, error: type[Exception] = ConfigError, also: str = "",
                 whole_floats: bool = False) -> int:
    """``value`` as an int, or ``error`` saying that ``what`` must be a positive integer (``also``: what
    else it may be). ``whole_floats``: a float that is a whole number (``1e5``) counts as that int."""
    if whole_floats and isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        value = int(value)
    if not is_positive_int(value):
        raise error(f"{what} must be a positive integer{also}, got {value!r}")
    return int(value)


@dataclass
class PPOConfig:
    """All settings of a PPO run.

    Each field's trailing comment is its documentation: ``python -m npppo.config --markdown`` turns the
    comments (with "(SB3: name)" for Stable-Baselines3's name), the defaults and the ranges that
    :meth:`validate` enforces into docs/config.md, and a test keeps that file equal to the output.
    """

    # --- batches: a fixed number of env steps (default) or whole episodes (the seed: 40)
    num_envs: int = 8  # environments stepped together (SB3: n_envs)
    episodes_per_batch: int | None = None  # whole episodes per iteration (then steps_per_batch: null)
    steps_per_batch: int | None = 2048  # env steps per iteration, over all environments (SB3: n_steps * n_envs)
    # --- critic targets and advantages
    gamma: float = 0.99  # discount factor (SB3: gamma)
    advantage: str = "gae"  # "gae" (GAE(λ), λ-returns as critic targets) or "n_step" (the seed's n-step returns)
    n_step: int = 20  # the n of n-step returns (with advantage="n_step")
    gae_lambda: float = 0.95  # λ of GAE(λ), with advantage="gae" (SB3: gae_lambda)
    normalize_advantages: bool = True  # standardise advantages over the whole batch (SB3: normalize_advantage)
    # --- the PPO update
    clip_eps: float = 0.2  # ε of the clipped surrogate objective (SB3: clip_range)
    actor_epochs: int = 10  # k1: passes over the batch for the actor per iteration (SB3: n_epochs)
    critic_epochs: int = 10  # k2: passes over the batch for the critic (SB3: n_epochs)
    batch_size: int | None = 64  # minibatch size; null = the full batch (the seed) (SB3: batch_size)
    ent_coef_start: float = 0.0  # entropy coefficient at the start, annealed linearly over the run
    #   (SB3: ent_coef)
    ent_coef_end: float = 0.0  # entropy coefficient at the end of the run
    target_kl: float | None = None  # SB3's rule: before each minibatch's step, if its approx KL (at the current
    #   parameters) exceeds 1.5 × target_kl, that step is not taken and the actor's epochs stop (docs/math.md)
    #   (SB3: target_kl)
    value_clip: float | None = None  # critic loss max((V − G)², (V_clip − G)²), V_clip = V_old + clip(V − V_old,
    #   ±value_clip): the form of CleanRL's clip_vloss and OpenAI baselines (SB3's clip_range_vf differs:
    #   it uses the clipped prediction alone)
    recompute_advantages: bool = False  # before each epoch after the first, recompute V, the critic targets and
    #   the advantages with the critic as it is then; the actor and critic epochs then alternate, serially
    #   (Tianshou: recompute_advantage)
    fused_update: str = "auto"  # "auto": each network's minibatch steps in one compiled call when covered
    #   (npppo.fused_update: needs SciPy, not target_kl nor recompute_advantages, steps of at most 4,096 rows);
    #   "off": one Python step each
    # --- networks
    trunk_sizes: list[int] = field(default_factory=lambda: [64, 64])  # the actor's hidden layers (SB3: net_arch pi)
    head_sizes: list[int] = field(default_factory=list)  # hidden layers of each head (mu, sigma) after the trunk
    actor_activation: str = "tanh"  # hidden activation of the actor (SB3: activation_fn)
    mu_activation: str = "identity"  # the mean head's output; "relu" in the seed
    sigma_mode: str = "state_independent"  # a state-independent log-std parameter, or a sigma head with
    #   "relu" (the seed) or "softplus" output, plus sigma_min
    sigma_min: float = 1e-3  # floor added to sigma by the relu/softplus sigma heads
    action_squash: str = "clip"  # the env gets the sample clipped to its bounds ("clip"), or tanh-squashed into them
    log_std_init: float = 0.0  # initial log sigma when sigma_mode="state_independent" (SB3: log_std_init)
    critic_sizes: list[int] = field(default_factory=lambda: [64, 64])  # the critic's hidden layers (SB3: net_arch vf)
    critic_activation: str = "tanh"  # hidden activation of the critic (SB3: activation_fn)
    elu_alpha: float = 1.0  # ELU's negative saturation, where an activation is "elu"
    init: str = "orthogonal"  # weight initialiser (SB3: ortho_init=True is "orthogonal")
    mu_output_gain: float = 0.01  # scale of the mu head's last-layer initial weights
    # --- optimizers: one for trunk + mu head, one for the sigma head, one for the critic
    optimizer: str = "adam"  # "adam" or "sgd" (momentum SGD, the seed)
    mu_lr: float = 3e-4  # learning rate of the trunk and mu head (SB3: learning_rate)
    sigma_lr: float = 3e-4  # learning rate of the sigma head or log-std parameter (SB3: learning_rate)
    critic_lr: float = 3e-4  # learning rate of the critic (SB3: learning_rate)
    momentum: float = 0.9  # momentum of optimizer="sgd"
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam's β1, β2
    adam_eps: float = 1e-5  # Adam's ε (SB3's Adam uses 1e-5 too)
    lr_schedule: str = "constant"  # "constant", or "linear": all learning rates fall to 0 at the end of the run
    #   (SB3: a learning_rate schedule)
    max_grad_norm: float | None = 0.5  # scale gradients down to this norm, per optimizer group
    #   (SB3: max_grad_norm)
    # --- normalisation
    normalize_obs: bool = False  # running mean/std of observations, saved with the model (SB3: VecNormalize norm_obs)
    obs_clip: float = 10.0  # normalised observations are clipped to ±obs_clip (SB3: VecNormalize clip_obs)
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
        self._check()

    def _check(self, record: dict[str, str] | None = None) -> None:
        """Check every field; with ``record``, also write each field's allowed values into it (for the docs)."""

        def rule(name: str, ok: bool, allowed: str) -> None:
            if record is not None:
                record[name] = f"{record[name]}; {allowed}" if name in record else allowed
            if not ok:
                raise ConfigError(f"config field {name!r} = {getattr(self, name)!r} is invalid: it must be {allowed}")

        def positive_field(name: str, optional: bool = False) -> None:
            value = getattr(self, name)
            ok = (value is None and optional) or (isinstance(value, int) and is_positive_int(value))
            rule(name, ok, "an integer >= 1" + (" or null" if optional else ""))

        def number(name: str, low: float, high: float, low_open: bool, high_open: bool,
                   optional: bool = False) -> None:
            value = getattr(self, name)
            interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            allowed = f"a number in {interval}" + (" or null" if optional else "")
            if value is None and optional:
                rule(name, True, allowed)
                return
            finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            inside = finite and not ((value <= low if low_open else value < low) or
                                     (value >= high if high_open else value > high))
            rule(name, inside, allowed)

        def choice(name: str, allowed) -> None:
            rule(name, getattr(self, name) in allowed, "one of " + ", ".join(json.dumps(a) for a in sorted(allowed)))

        def boolean(name: str) -> None:
            rule(name, isinstance(getattr(self, name), bool), "true or false")

        def sizes(name: str, allow_empty: bool) -> None:
            value = getattr(self, name)
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
            ) and (allow_empty or len(value) > 0)
            rule(name, ok, "a list of positive layer widths" + (" (may be empty)" if allow_empty else ", not empty"))

        inf = math.inf
        positive_field("num_envs")
        positive_field("episodes_per_batch", optional=True)
        positive_field("steps_per_batch", optional=True)
        if (self.episodes_per_batch is None) == (self.steps_per_batch is None):
            raise ConfigError(
                "config: set exactly one of 'episodes_per_batch' (whole episodes per iteration) and "
                f"'steps_per_batch' (env steps per iteration); got {self.episodes_per_batch!r} and "
                f"{self.steps_per_batch!r}"
            )
        number("gamma", 0.0, 1.0, True, False)
        choice("advantage", ADVANTAGES)
        positive_field("n_step")
        number("gae_lambda", 0.0, 1.0, False, False)
        boolean("normalize_advantages")
        number("clip_eps", 0.0, 1.0, True, True)
        positive_field("actor_epochs")
        positive_field("critic_epochs")
        positive_field("batch_size", optional=True)
        number("ent_coef_start", 0.0, inf, False, True)
        number("ent_coef_end", 0.0, inf, False, True)
        number("target_kl", 0.0, inf, True, True, optional=True)
        number("value_clip", 0.0, inf, True, True, optional=True)
        boolean("recompute_advantages")
        choice("fused_update", FUSED_UPDATES)
        sizes("trunk_sizes", allow_empty=False)
        sizes("head_sizes", allow_empty=True)
        sizes("critic_sizes", allow_empty=False)
        for name in ("actor_activation", "mu_activation", "critic_activation"):
            choice(name, list(ACTIVATIONS))
        choice("sigma_mode", SIGMA_MODES)
        choice("action_squash", ACTION_SQUASHES)
        number("sigma_min", 0.0, inf, False, True)
        rule("sigma_min", self.sigma_mode == "state_independent" or self.sigma_min > 0,
             '> 0 unless sigma_mode is "state_independent" (a sigma head needs a floor so that sigma > 0)')
        number("log_std_init", -20.0, 5.0, False, False)
        number("elu_alpha", 0.0, inf, True, True)
        choice("init", INITIALISERS)
        number("mu_output_gain", 0.0, inf, True, True)
        choice("optimizer", OPTIMIZERS)
        for name in ("mu_lr", "sigma_lr", "critic_lr"):
            number(name, 0.0, inf, False, True)
        number("momentum", 0.0, 1.0, False, True)
        betas = self.adam_betas
        rule("adam_betas", isinstance(betas, (list, tuple)) and len(betas) == 2
             and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas),
             "two numbers in [0, 1)")
        number("adam_eps", 0.0, inf, True, True)
        choice("lr_schedule", LR_SCHEDULES)
        number("max_grad_norm", 0.0, inf, True, True, optional=True)
        boolean("normalize_obs")
        boolean("normalize_rewards")
        number("reward_clip", 0.0, inf, True, False)
        number("obs_clip", 0.0, inf, True, False)
        number("reward_scale", 0.0, inf, True, True)
        choice("dtype", DTYPES)
        if record is not None:
            missing = [f.name for f in dataclasses.fields(self) if f.name not in record]
            if missing:
                raise AssertionError(f"PPOConfig._check has no rule for {missing}")

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


def allowed_values() -> dict[str, str]:
    """Each field's allowed values, in words, as :meth:`PPOConfig.validate` enforces them."""
    record: dict[str, str] = {}
    PPOConfig()._check(record)
    return record


def field_comments() -> dict[str, tuple[str, str]]:
    """Each field's (section, documentation), read from the source of :class:`PPOConfig`: the field's
    trailing comment, the ``#   ...`` lines that continue it, and the ``# --- section`` line above."""
    import inspect

    docs: dict[str, tuple[str, str]] = {}
    section, last = "", None
    for line in inspect.getsource(PPOConfig).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("def "):
            break  # the fields end where the methods begin
        match = re.match(r"(\w+): [^=]+ = .*?(?:  # (.*))?$", stripped)
        if stripped.startswith("# ---"):
            section, last = stripped[5:].strip(), None
        elif stripped.startswith("#") and last is not None:
            docs[last] = (section, f"{docs[last][1]} {stripped.lstrip('# ')}")
        elif match:
            last = match.group(1)
            docs[last] = (section, (match.group(2) or "").strip())
        else:
            last = None
    return docs


def reference_markdown() -> str:
    """docs/config.md: every PPOConfig field with its meaning, default, allowed values and SB3 name."""
    comments, allowed = field_comments(), allowed_values()
    lines = [
        "# PPOConfig reference",
        "",
        "<!-- Generated by `python -m npppo.config --markdown > docs/config.md` from the field comments and",
        "     the validation rules in npppo/config.py; tests/test_config_reference.py keeps it in step. -->",
        "",
        "Every setting of a run, as a field of `npppo.PPOConfig` and as a key of a config JSON (`npppo train",
        "--config FILE`, a run's `config.json`, a preset's `\"config\"`). The defaults are the broadly working",
        "PPO settings of Stable-Baselines3; `presets/seed.json` spells out the seed's system field by field.",
        "The SB3 column names the `stable_baselines3.PPO` argument (or policy keyword) with the same role.",
        "A value outside the allowed range raises `ConfigError` naming the field.",
    ]
    section = None
    for name, default in PPOConfig().to_dict().items():
        where, meaning = comments.get(name, ("", ""))
        if where != section:
            section = where
            lines += ["", f"## {where[:1].upper() + where[1:] or 'Other'}", "",
                      "| field | default | allowed | SB3 | meaning |", "| --- | --- | --- | --- | --- |"]
        sb3 = re.search(r"\s*\(SB3: ([^)]*)\)", meaning)
        if sb3:
            meaning = (meaning[:sb3.start()] + meaning[sb3.end():]).strip()
        cells = [f"`{name}`", f"`{json.dumps(default)}`", allowed[name], sb3.group(1) if sb3 else "", meaning]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


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


def main(argv: list[str] | None = None) -> int:
    """``python -m npppo.config --markdown``: print docs/config.md."""
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["--markdown"]:
        print("usage: python -m npppo.config --markdown > docs/config.md", file=sys.stderr)
        return 2
    sys.stdout.write(reference_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
