"""Compiled environments: an environment written as Numba-compiled functions over a state array.

A compiled environment is described by a :class:`CompiledSpec`, whose two functions do all the work:

``reset(params, state, rng, obs) -> None``
    Start an episode: write the whole environment state into ``state`` (state_size,) float64 and the
    first observation into ``obs`` (obs_dim,) float64, drawing any randomness from ``rng``, the
    episode's ``numpy.random.Generator`` (the one Gymnasium makes from ``reset(seed=...)``). It runs
    once per episode, from Python, so it may be a compiled function or a Python one that calls
    compiled pieces.

``step(params, state, action, obs) -> (reward, terminated, truncated)``
    One step: ``action`` (action_dim,) float64 (exactly what the agent sent; clip it yourself if the
    task clips), the state updated in place, the next observation written into ``obs``. It must be
    compiled (``npppo.jit.njit`` or ``numba.njit``): it is called from compiled code with the
    signature :data:`STEP_SIGNATURE`, so ``reward`` is a float and both flags are bools.

``params`` (n_params,) float64 holds the environment's settings (constructor keywords); nothing
else may persist between calls but ``state``. Observations live in float64 buffers and reach the
agent as ``obs_dtype`` (float32 by default: the value is rounded once there).

:class:`CompiledEnv` makes such an environment a plain ``gymnasium.Env`` (so every wrapper, checker
and tool works with it); its :attr:`CompiledEnv.compiled` is what npppo's fused rollout
(:mod:`npppo.fused`) reads to run whole batches in one compiled call; docs/compiled_envs.md shows how to write one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from numba import types

_ARRAY = types.float64[::1]
# what every compiled step is compiled for, and what the fused rollout calls it as
STEP_SIGNATURE = types.Tuple((types.float64, types.boolean, types.boolean))(_ARRAY, _ARRAY, _ARRAY, _ARRAY)
STEP_TYPE = types.FunctionType(STEP_SIGNATURE)
# wrappers that change nothing a compiled rollout has to reproduce (TimeLimit's is its own time limit)
_NEUTRAL_WRAPPERS = (gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing, gym.wrappers.PassiveEnvChecker)


@dataclass(frozen=True, eq=False)
class CompiledSpec:
    """One compiled environment: its two functions (see the module docstring), settings and sizes."""

    reset: Callable
    step: Any  # a Numba dispatcher
    params: np.ndarray  # (n_params,) float64
    state_size: int
    obs_low: np.ndarray  # (obs_dim,)
    obs_high: np.ndarray
    action_low: np.ndarray  # (action_dim,)
    action_high: np.ndarray
    obs_dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", np.ascontiguousarray(self.params, np.float64))
        self.step.compile(STEP_SIGNATURE.args)  # the one machine code both rollouts call

    @property
    def obs_dim(self) -> int:
        return self.obs_low.shape[0]

    def new_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Fresh (state (state_size,), obs (obs_dim,)) float64 buffers."""
        return np.zeros(self.state_size), np.zeros(self.obs_dim)

    def observe(self, obs: np.ndarray) -> np.ndarray:
        """``obs`` as the agent receives it (rounded to ``obs_dtype``)."""
        return obs.astype(self.obs_dtype)


class CompiledEnv(gym.Env):
    """A :class:`CompiledSpec` as a ``gymnasium.Env``: reset seeds Gymnasium's ``np_random`` and hands
    it to the spec's reset; step calls the spec's compiled step. Subclasses may add ``info``
    (:meth:`reset_info`, :meth:`step_info`) from the state."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, compiled: CompiledSpec) -> None:
        self.compiled = compiled
        self.action_space = gym.spaces.Box(compiled.action_low.astype(np.float32),
                                           compiled.action_high.astype(np.float32), dtype=np.float32)
        self.observation_space = gym.spaces.Box(compiled.obs_low.astype(compiled.obs_dtype),
                                                compiled.obs_high.astype(compiled.obs_dtype), dtype=compiled.obs_dtype)
        self.state, self._obs = compiled.new_state()
        self._started = False

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.compiled.reset(self.compiled.params, self.state, self.np_random, self._obs)
        self._started = True
        return self.compiled.observe(self._obs), self.reset_info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        action = np.ascontiguousarray(np.asarray(action, dtype=np.float64).reshape(self.action_space.shape))
        reward, terminated, truncated = self.compiled.step(self.compiled.params, self.state, action, self._obs)
        return self.compiled.observe(self._obs), float(reward), bool(terminated), bool(truncated), self.step_info()

    def reset_info(self) -> dict:
        return {}

    def step_info(self) -> dict:
        return {}


def compiled_of(env: gym.Env) -> tuple[CompiledSpec, int | None] | None:
    """(spec, time limit or None) when ``env`` is a :class:`CompiledEnv` under wrappers that change
    nothing else (TimeLimit, OrderEnforcing, the passive checker); None otherwise."""
    limit = None
    layer = env
    while isinstance(layer, gym.Wrapper):
        if not isinstance(layer, _NEUTRAL_WRAPPERS):
            return None
        if isinstance(layer, gym.wrappers.TimeLimit):
            limit = layer._max_episode_steps if limit is None else min(limit, layer._max_episode_steps)
        layer = layer.env
    if not isinstance(layer, CompiledEnv):
        return None
    return layer.compiled, limit
