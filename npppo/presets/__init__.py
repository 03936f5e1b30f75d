"""Named configurations, stored as JSON files beside this module (a preset is data, not code).

    >>> from npppo import presets
    >>> cfg = presets.get("seed")        # a fresh, validated PPOConfig
    >>> presets.names()  # doctest: +NORMALIZE_WHITESPACE
    ['bipedalwalker', 'conwip', 'halfcheetah', 'lunarlander', 'mountaincar', 'mujoco', 'pendulum',
     'pendulum_compiled', 'seed']
    >>> presets.for_env("Hopper-v5")     # the preset made for an environment, or None
    'mujoco'

A preset file holds ``description``, ``env``, ``steps``, ``env_kwargs`` and ``config`` (every
PPOConfig field); :func:`npppo.config.read_config_file` owns that schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from npppo.config import PPOConfig, read_config_file
from npppo.errors import ConfigError

_FOLDER = Path(__file__).parent
# environment id -> the preset tuned for it (what `npppo train --env ID` uses without --preset); the
# seed preset also runs Pendulum-v1, but the tuned one is pendulum; mountaincar trains on the compiled
# twin of MountainCarContinuous-v0 and serves both ids
FOR_ENV = {
    "Pendulum-v1": "pendulum",
    "npppo/Pendulum-v1": "pendulum_compiled",
    "MountainCarContinuous-v0": "mountaincar",
    "npppo/MountainCarContinuous-v0": "mountaincar",
    "LunarLanderContinuous-v3": "lunarlander",
    "npppo/ConwipLine-v0": "conwip",
    "HalfCheetah-v5": "halfcheetah",
    "Hopper-v5": "mujoco",
    "Walker2d-v5": "mujoco",
    "BipedalWalker-v3": "bipedalwalker",
}


def names() -> list[str]:
    """The names of the available presets."""
    return sorted(p.stem for p in _FOLDER.glob("*.json"))


def load(name: str) -> tuple[PPOConfig, dict[str, Any]]:
    """(config, facts): a fresh PPOConfig of preset ``name`` and its ``env``, ``steps``, ``env_kwargs``."""
    path = _FOLDER / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}: choose one of {names()}")
    return read_config_file(path)


def get(name: str) -> PPOConfig:
    """A fresh PPOConfig of preset ``name`` (change it freely; the preset itself stays)."""
    return load(name)[0]


def for_env(env_id: str) -> str | None:
    """The name of the preset made for ``env_id`` (:data:`FOR_ENV`), or None."""
    return FOR_ENV.get(env_id)
