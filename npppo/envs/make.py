"""Making Gymnasium environments and checking that npppo can drive them.

An environment is given as a Gymnasium id (``"Pendulum-v1"``, or ``"module:Id"``, which imports
``module`` first, from the current folder too, as ``gymnasium.make`` does), a ``gymnasium.Env``
instance, or a callable returning one. :class:`EnvFactory` is an id with keyword arguments and an
optional time limit: a picklable callable, so worker processes can make their own copies.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from npppo.envs.mujoco_log import route_mujoco_warnings
from npppo.errors import EnvError

# the longest episode a whole-episode rollout or an evaluation waits for (a run option, PPO's
# ``episode_step_limit``): an environment that never ends its episodes then stops with a message
# instead of hanging
EPISODE_STEP_LIMIT = 100_000


@dataclass(frozen=True)
class EnvFactory:
    """``gymnasium.make(env_id, **kwargs)``, wrapped in a ``TimeLimit`` of ``max_episode_steps`` if given."""

    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None

    def __call__(self) -> gym.Env:
        env = make_env(self.env_id, **self.kwargs)
        if self.max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, self.max_episode_steps)
        return env

    @property
    def __name__(self) -> str:
        return self.env_id


EnvSpec = str | gym.Env | Callable[[], gym.Env]


def import_env_module(env_id: str) -> None:
    """For ``module:Id``: import ``module`` (from the current folder too) so that it can register ``Id``."""
    module, sep, _ = env_id.partition(":")
    if not sep:
        return
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise EnvError(f"environment {env_id!r}: cannot import module {module!r} ({exc}); run from the folder "
                       "that holds it, or install it") from exc


def _is_mujoco(env_id: str) -> bool:
    """Whether ``env_id`` is one of Gymnasium's MuJoCo tasks (by its registered entry point)."""
    registered = gym.envs.registry.get(env_id)
    return registered is not None and "mujoco" in str(registered.entry_point)


def make_env(spec: EnvSpec, **kwargs: Any) -> gym.Env:
    """An environment from an id (with ``kwargs`` for ``gymnasium.make``), an instance (returned as
    is) or a callable returning one."""
    if isinstance(spec, gym.Env):
        return spec
    if isinstance(spec, str):
        import_env_module(spec)
        try:
            # before gymnasium.make: MuJoCo warns while it compiles the model, into the current folder
            route_mujoco_warnings(load=_is_mujoco(spec))
            env = gym.make(spec, **kwargs)
            route_mujoco_warnings()  # an environment that loaded MuJoCo by itself
            return env
        except gym.error.DependencyNotInstalled as exc:
            raise EnvError(f"environment {spec!r} needs a package that is not installed ({exc}); "
                           f"{install_hint(spec)}") from exc
        except gym.error.Error as exc:
            raise EnvError(
                f"unknown environment id {spec!r} ({exc}); use a registered Gymnasium id such as "
                "'Pendulum-v1' or 'LunarLanderContinuous-v3', or 'module:Id' for an id that module registers"
            ) from exc
        except TypeError as exc:
            raise EnvError(f"environment {spec!r} does not take the keyword arguments {kwargs}: {exc}") from exc
    if callable(spec):
        env = spec()
        if not isinstance(env, gym.Env):
            raise EnvError(f"the environment factory returned {type(env).__name__}, not a gymnasium.Env")
        return env
    raise EnvError(
        f"cannot make an environment from {type(spec).__name__}: pass a Gymnasium id, a gymnasium.Env "
        "or a function returning one"
    )


# the npppo extra that brings each family of Gymnasium's environments, by its entry point's package
EXTRA_FOR_FAMILY = {"box2d": "box2d", "mujoco": "mujoco", "classic_control": "render"}


def install_hint(env_id: str) -> str:
    """What to install for ``env_id``'s missing package: the npppo extra of its family when it is one of
    Gymnasium's own (by the registered entry point), else a general hint."""
    try:
        entry_point = str(gym.spec(env_id).entry_point)
    except gym.error.Error:
        entry_point = ""
    for family, extra in EXTRA_FOR_FAMILY.items():
        if f"gymnasium.envs.{family}" in entry_point:
            return f"run: pip install 'npppo[{extra}]'"
    return ("install the package it names (for Gymnasium's Box2D environments: pip install 'npppo[box2d]', "
            "MuJoCo ones: pip install 'npppo[mujoco]')")


def check_episode_step_limit(limit) -> int:
    """``limit`` as an int, or a ConfigError unless it is a positive integer."""
    from npppo.config import positive_int

    return positive_int(limit, "episode_step_limit", also=" (steps)")


def episode_too_long(env: str, limit: int) -> EnvError:
    """The error for an episode of ``env`` that ran ``limit`` steps without terminating or truncating."""
    return EnvError(
        f"environment {env!r}: an episode ran {limit:,} steps without terminating or truncating (the "
        "episode_step_limit); if its episodes never end, give it a time limit (--max-episode-steps N, or "
        "gymnasium.wrappers.TimeLimit); if they are just long, raise the bound (--episode-step-limit N, or "
        "PPO(..., episode_step_limit=N))"
    )


def check_squash_bounds(low: np.ndarray, high: np.ndarray, env: str | None) -> None:
    """EnvError unless every bound is finite and ``high > low``: tanh squashing maps onto [low, high]
    (``low + (tanh(u) + 1)(high - low)/2`` is NaN or inf otherwise); low, high (action_dim,)."""
    bad = [d for d in range(len(low)) if not (np.isfinite(low[d]) and np.isfinite(high[d]) and high[d] > low[d])]
    if bad:
        d = bad[0]
        raise EnvError(
            f"environment {env!r}: action_squash='tanh' needs finite bounds with high > low, but action "
            f"dimension {d} has low {low[d]} and high {high[d]}: use action_squash='clip', or rescale the "
            "action space to finite bounds with high > low (a gymnasium.ActionWrapper that rescales the actions)"
        )


def env_name(spec: EnvSpec) -> str:
    """A printable name: the id, or the registered id of an instance, or its class name."""
    if isinstance(spec, str):
        return spec
    env = spec if isinstance(spec, gym.Env) else None
    if env is not None and env.spec is not None:
        return env.spec.id
    return getattr(spec, "__name__", type(spec).__name__)


@dataclass(frozen=True)
class Spaces:
    """What an agent is made for: the observation and action sizes and the action bounds (float64)."""

    obs_dim: int
    action_dim: int
    action_low: np.ndarray
    action_high: np.ndarray

    @classmethod
    def of(cls, spaces: Spaces | tuple) -> Spaces:
        """``spaces`` as a Spaces (from a tuple (obs_dim, action_dim, action_low, action_high) too)."""
        if isinstance(spaces, Spaces):
            return spaces
        obs_dim, action_dim, low, high = spaces
        return cls(int(obs_dim), int(action_dim), np.asarray(low, np.float64), np.asarray(high, np.float64))


def check_spaces(env: gym.Env) -> Spaces:
    """The environment's :class:`Spaces`, or an error saying what to change."""
    action_space: Any = env.action_space
    obs_space: Any = env.observation_space
    if not isinstance(action_space, gym.spaces.Box):
        raise EnvError(
            f"action space {action_space} is not supported: npppo needs a Box action space (continuous "
            "actions); for discrete actions use a library with a categorical policy"
        )
    if len(action_space.shape) != 1:
        raise EnvError(
            f"action space {action_space} has shape {action_space.shape}: npppo needs a flat (1-D) Box; "
            "reshape it with a gymnasium.ActionWrapper"
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(
            f"observation space {obs_space} is not supported: npppo needs a flat Box observation space; "
            "wrap the environment in gymnasium.wrappers.FlattenObservation"
        )
    if len(obs_space.shape) != 1:
        raise EnvError(
            f"observation space {obs_space} has shape {obs_space.shape}: npppo's networks take flat "
            "vectors; wrap the environment in gymnasium.wrappers.FlattenObservation (images need a "
            "convolutional encoder, which npppo does not have)"
        )
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    return Spaces(obs_space.shape[0], action_space.shape[0], low, high)
