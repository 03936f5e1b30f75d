"""Named configurations, stored as JSON files beside this module (a preset is data, not code).

    >>> from npppo import presets
    >>> cfg = presets.get("seed")        # a fresh, validated PPOConfig
    >>> presets.names()
    ['lunarlander', 'pendulum', 'seed']
"""

from __future__ import annotations

import json
from pathlib import Path

from npppo.config import PPOConfig
from npppo.errors import ConfigError

_FOLDER = Path(__file__).parent


def names() -> list[str]:
    """The names of the available presets."""
    return sorted(p.stem for p in _FOLDER.glob("*.json"))


def get_dict(name: str) -> dict:
    """The preset's raw JSON object (its ``env`` and ``description`` included)."""
    path = _FOLDER / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}: choose one of {names()}")
    return json.loads(path.read_text())


def get(name: str) -> PPOConfig:
    """A fresh PPOConfig of preset ``name`` (change it freely; the preset itself stays)."""
    values = get_dict(name)
    return PPOConfig.from_dict(values["config"])


def default_env(name: str) -> str:
    """The environment a preset was made for."""
    return get_dict(name)["env"]
