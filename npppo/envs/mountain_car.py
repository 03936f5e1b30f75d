"""``npppo/MountainCarContinuous-v0``: Gymnasium's MountainCarContinuous-v0 as a compiled environment.

The same task, step for step: state (position, velocity); reset position ~ U(-0.6, -0.4) from the
episode's generator, velocity 0; force = clip(a, -1, 1),

    v' = clip(v + 0.0015 force - 0.0025 cos(3 x), -0.07, 0.07),   x' = clip(x + v', -1.2, 0.6)
    (v' = 0 when x' hits -1.2 moving left);   terminated when x' >= 0.45 and v' >= goal_velocity
    reward = 100 [terminated] - 0.1 a²   (the unclipped action, as in Gymnasium's)

Gymnasium's stores its state as float32 after the first step, and NumPy 2 then computes parts of
a step in float32 (3x always, and the whole update when the action was clipped, since force is
then a Python float); this one reproduces that arithmetic for float64 actions (what npppo sends).
The time limit is 999 steps.
"""

from __future__ import annotations

import math

import numpy as np

from npppo.envs.compiled import CompiledEnv, CompiledSpec
from npppo.jit import njit

MIN_POSITION, MAX_POSITION, MAX_SPEED, GOAL_POSITION, POWER = -1.2, 0.6, 0.07, 0.45, 0.0015
POSITION, VELOCITY, STORED_FLOAT32 = range(3)  # the state's slots
GOAL_VELOCITY = 0  # the params' slot


@njit
def mountain_car_reset(params, state, rng, obs):
    state[POSITION] = rng.uniform(-0.6, -0.4)
    state[VELOCITY] = 0.0
    state[STORED_FLOAT32] = 0.0
    obs[0], obs[1] = state[POSITION], state[VELOCITY]


@njit(inline="always")
def _f32(x):
    """x rounded to float32, as float64."""
    return np.float64(np.float32(x))


@njit
def mountain_car_step(params, state, action, obs):
    position, velocity = state[POSITION], state[VELOCITY]
    stored_f32 = state[STORED_FLOAT32] != 0.0
    # Gymnasium's own arithmetic under NumPy 2's promotion rules: its state is float32 after the first
    # step, so 3x is a float32 product; and when the action is clipped, force is a Python float, so
    # the velocity and position updates (and the comparisons after them) are float32 too
    narrow = stored_f32 and (action[0] < -1.0 or action[0] > 1.0)
    force = min(max(action[0], -1.0), 1.0)
    angle = _f32(3 * position) if stored_f32 else 3 * position
    change = force * POWER - 0.0025 * math.cos(angle)
    velocity = _f32(velocity + _f32(change)) if narrow else velocity + change
    velocity_f32 = narrow  # velocity still a float32 value (not replaced by a bound)
    speed = _f32(MAX_SPEED) if velocity_f32 else MAX_SPEED
    if velocity > speed:
        velocity, velocity_f32 = MAX_SPEED, False
    if velocity < (-_f32(MAX_SPEED) if velocity_f32 else -MAX_SPEED):
        velocity, velocity_f32 = -MAX_SPEED, False
    position = _f32(position + _f32(velocity)) if narrow else position + velocity
    position_f32 = narrow
    if position > (_f32(MAX_POSITION) if position_f32 else MAX_POSITION):
        position, position_f32 = MAX_POSITION, False
    if position < (_f32(MIN_POSITION) if position_f32 else MIN_POSITION):
        position, position_f32 = MIN_POSITION, False
    if position == (_f32(MIN_POSITION) if position_f32 else MIN_POSITION) and velocity < 0:
        velocity = 0.0
    goal_velocity = params[GOAL_VELOCITY]
    terminated = (position >= (_f32(GOAL_POSITION) if position_f32 else GOAL_POSITION)
                  and velocity >= (_f32(goal_velocity) if velocity_f32 else goal_velocity))
    reward = 100.0 if terminated else 0.0
    reward -= action[0] ** 2 * 0.1  # the unclipped action, as in Gymnasium's
    state[POSITION], state[VELOCITY] = _f32(position), _f32(velocity)
    state[STORED_FLOAT32] = 1.0
    obs[0], obs[1] = state[POSITION], state[VELOCITY]
    return reward, terminated, False


class MountainCarContinuousEnv(CompiledEnv):
    """MountainCarContinuous-v0, compiled; ``goal_velocity`` as in Gymnasium's (no rendering)."""

    def __init__(self, goal_velocity: float = 0.0) -> None:
        super().__init__(CompiledSpec(
            reset=mountain_car_reset, step=mountain_car_step, params=np.array([goal_velocity], np.float64),
            state_size=3, obs_low=np.array([MIN_POSITION, -MAX_SPEED], np.float32).astype(np.float64),
            obs_high=np.array([MAX_POSITION, MAX_SPEED], np.float32).astype(np.float64),
            action_low=np.array([-1.0]), action_high=np.array([1.0])))
