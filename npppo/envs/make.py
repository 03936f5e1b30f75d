"""Making Gymnasium environments and checking that npppo can drive them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from npppo.errors import EnvironmentError

EnvSpec = str | gym.Env | Callable[[], gym.Env]


def make_env(spec: EnvSpec) -> gym.Env:
    """An environment from an id, an instance (returned as is) or a callable returning one."""
    if isinstance(spec, gym.Env):
        return spec
    if isinstance(spec, str):
        try:
            return gym.make(spec)
        except gym.error.DependencyNotInstalled as exc:
            raise EnvironmentError(
                f"environment {spec!r} needs a package that is not installed ({exc}); for Box2D "
                "environments such as LunarLanderContinuous-v3 run: pip install 'npppo[box2d]'"
            ) from exc
        except gym.error.Error as exc:
            raise EnvironmentError(
                f"unknown environment id {spec!r} ({exc}); use a registered Gymnasium id such as "
                "'Pendulum-v1' or 'LunarLanderContinuous-v3'"
            ) from exc
    if callable(spec):
        env = spec()
        if not isinstance(env, gym.Env):
            raise EnvironmentError(f"the environment factory returned {type(env).__name__}, not a gymnasium.Env")
        return env
    raise EnvironmentError(
        f"cannot make an environment from {type(spec).__name__}: pass a Gymnasium id, a gymnasium.Env "
        "or a function returning one"
    )


def env_name(spec: EnvSpec) -> str:
    """A printable name: the id, or the registered id of an instance, or its class name."""
    if isinstance(spec, str):
        return spec
    env = spec if isinstance(spec, gym.Env) else None
    if env is not None and env.spec is not None:
        return env.spec.id
    return getattr(spec, "__name__", type(spec).__name__)


def check_spaces(env: gym.Env) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(obs_dim, action_dim, action_low, action_high), or an error saying what to change."""
    action_space: Any = env.action_space
    obs_space: Any = env.observation_space
    if not isinstance(action_space, gym.spaces.Box):
        raise EnvironmentError(
            f"action space {action_space} is not supported: npppo needs a Box action space (continuous "
            "actions); for discrete actions use a library with a categorical policy"
        )
    if len(action_space.shape) != 1:
        raise EnvironmentError(
            f"action space {action_space} has shape {action_space.shape}: npppo needs a flat (1-D) Box; "
            "reshape it with a gymnasium.ActionWrapper"
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvironmentError(
            f"observation space {obs_space} is not supported: npppo needs a flat Box observation space; "
            "wrap the environment in gymnasium.wrappers.FlattenObservation"
        )
    if len(obs_space.shape) != 1:
        raise EnvironmentError(
            f"observation space {obs_space} has shape {obs_space.shape}: npppo's networks take flat "
            "vectors; wrap the environment in gymnasium.wrappers.FlattenObservation (images need a "
            "convolutional encoder, which npppo does not have)"
        )
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    return obs_space.shape[0], action_space.shape[0], low, high
