"""npppo.evaluation: whole episodes on fixed reset seeds, their undiscounted returns, and the frames."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from npppo.evaluation import evaluate


class Counter(gym.Env):
    """Reward = the action; an episode lasts ``3 + seed % 2`` steps; render() names the frame."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (1,))
    action_space = gym.spaces.Box(-10.0, 10.0, (1,))

    def __init__(self) -> None:
        self.seeds, self.frame = [], None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seeds.append(seed)
        self.t, self.length = 0, 3 + seed % 2
        self.frame = (seed, 0)
        return np.array([float(self.t)]), {}

    def step(self, action):
        self.t += 1
        self.frame = (self.frame[0], self.t)
        return np.array([float(self.t)]), float(action[0]), False, self.t == self.length, {}

    def render(self):
        return self.frame


def test_episodes_use_seeds_from_seed_and_their_returns_are_summed():
    env = Counter()
    mean, std = evaluate(lambda obs: obs + 1.0, env, 3, seed=7)  # rewards 1, 2, ... over each episode
    assert env.seeds == [7, 8, 9]
    returns = [1 + 2 + 3 + 4, 1 + 2 + 3, 1 + 2 + 3 + 4]  # lengths 4, 3, 4
    assert (mean, std) == pytest.approx((np.mean(returns), np.std(returns)), rel=1e-15)


def test_a_frame_is_recorded_after_each_reset_and_each_step():
    frames = []
    evaluate(lambda obs: obs, Counter(), 2, seed=0, frames=frames)
    assert frames == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
