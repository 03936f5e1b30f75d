"""``npppo/Pendulum-v1``: Gymnasium's Pendulum-v1 as a compiled environment (:mod:`npppo.envs.compiled`).

The same task, step for step: state (θ, θ̇), reset uniform in [-π, π] × [-1, 1] from the episode's
generator (the same draws as Gymnasium's), torque u = clip(a, -2, 2),

    cost = angle_normalize(θ)² + 0.1 θ̇² + 0.001 u²,   reward = -cost
    θ̇' = clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) dt, -8, 8),   θ' = θ + θ̇' dt

observation (cos θ, sin θ, θ̇) as float32; never terminates (the time limit, 200 steps, truncates).
Gymnasium's computes in float32 where a float32 action meets a float64 state; this one always in
float64, so the two agree to within about 1e-7 per step (tests/test_compiled_envs.py), not bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from npppo.envs.compiled import CompiledEnv, CompiledSpec
from npppo.jit import njit

MAX_SPEED, MAX_TORQUE, DT, MASS, LENGTH = 8.0, 2.0, 0.05, 1.0, 1.0
THETA, THETA_DOT = range(2)  # the state's slots
G = 0  # the params' slot: gravity


@njit
def _observe(state, obs):
    obs[0] = math.cos(state[THETA])
    obs[1] = math.sin(state[THETA])
    obs[2] = state[THETA_DOT]


@njit
def pendulum_reset(params, state, rng, obs):
    """θ ~ U(-π, π), then θ̇ ~ U(-1, 1): Gymnasium's two draws, in its order."""
    state[THETA] = rng.uniform(-math.pi, math.pi)
    state[THETA_DOT] = rng.uniform(-1.0, 1.0)
    _observe(state, obs)


@njit
def pendulum_step(params, state, action, obs):
    theta, theta_dot = state[THETA], state[THETA_DOT]
    u = min(max(action[0], -MAX_TORQUE), MAX_TORQUE)
    angle = ((theta + math.pi) % (2 * math.pi)) - math.pi
    cost = angle**2 + 0.1 * theta_dot**2 + 0.001 * (u**2)
    g = params[G]
    new_theta_dot = theta_dot + (3 * g / (2 * LENGTH) * math.sin(theta) + 3.0 / (MASS * LENGTH**2) * u) * DT
    new_theta_dot = min(max(new_theta_dot, -MAX_SPEED), MAX_SPEED)
    state[THETA] = theta + new_theta_dot * DT
    state[THETA_DOT] = new_theta_dot
    _observe(state, obs)
    return -cost, False, False


class PendulumEnv(CompiledEnv):
    """Pendulum-v1, compiled; ``g`` as in Gymnasium's (no rendering)."""

    def __init__(self, g: float = 10.0) -> None:
        high = np.array([1.0, 1.0, MAX_SPEED])
        super().__init__(CompiledSpec(reset=pendulum_reset, step=pendulum_step, params=np.array([g], np.float64),
                                      state_size=2, obs_low=-high, obs_high=high,
                                      action_low=np.array([-MAX_TORQUE]), action_high=np.array([MAX_TORQUE])))
