"""npppo: Proximal Policy Optimization for continuous control in NumPy, hot loops compiled by Numba.

    from npppo import PPO, PPOConfig, presets
    agent = PPO("Pendulum-v1", presets.get("pendulum"), seed=0)
    agent.learn(total_steps=100_000)

The names below load on first use (PEP 562), so that ``import npppo.inference`` (acting from a
saved policy with NumPy alone) does not pull in Numba, and works where Numba and Gymnasium are absent.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from npppo.errors import CheckpointError, ConfigError, EnvError, NpppoError, TrainingError, WorkerError
from npppo.gradcheck import gradcheck

if TYPE_CHECKING:
    from npppo import presets
    from npppo.config import PPOConfig
    from npppo.ppo import PPO

try:  # npppo's own environments, for gymnasium.make (NumPy-only inference works without Gymnasium)
    import gymnasium  # noqa: F401
except ImportError:
    pass
else:
    from npppo.envs import register_envs

    register_envs()

__version__ = "0.1.0"
__all__ = [
    "PPO",
    "CheckpointError",
    "ConfigError",
    "EnvError",
    "NpppoError",
    "PPOConfig",
    "TrainingError",
    "WorkerError",
    "gradcheck",
    "presets",
]
_LAZY = {"PPO": "npppo.ppo", "PPOConfig": "npppo.config"}


def __getattr__(name: str) -> Any:
    """``PPO``, ``PPOConfig`` and the submodules (``npppo.presets``, ``npppo.losses``, ...) on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f"npppo.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"npppo.{name}":
                raise
            raise AttributeError(f"module 'npppo' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'npppo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
