"""Resuming from a checkpoint finishes the run exactly as an uninterrupted run would (SPEC §5)."""

from __future__ import annotations

import numpy as np
import pytest
from configs_for_tests import SMALL

from npppo import PPO, presets
from npppo.checkpoint import snapshot

TINY = {**SMALL, "episodes_per_batch": 4, "head_sizes": [6]}


def tiny_config(**changes):
    return presets.get("seed").replace(**{**TINY, **changes})


def short_pendulum():
    import gymnasium as gym

    return gym.make("Pendulum-v1", max_episode_steps=50)


def assert_same_state(resumed: PPO, straight: PPO) -> None:
    assert resumed.num_timesteps == straight.num_timesteps
    assert resumed.iteration == straight.iteration
    assert np.array_equal(resumed.policy.params, straight.policy.params)
    assert np.array_equal(resumed.critic.params, straight.critic.params)
    for name, array in snapshot(straight)[0].items():
        assert np.array_equal(snapshot(resumed)[0][name], array), name
    # the counters, episodes begun per environment and the acting RNG's state
    assert snapshot(resumed)[1] == snapshot(straight)[1]


@pytest.mark.filterwarnings("ignore:the mu head ends in ReLU")
@pytest.mark.parametrize("changes", [
    {},  # the seed's system: n-step returns, momentum SGD, entropy annealing
    {"optimizer": "adam", "advantage": "gae", "normalize_obs": True, "batch_size": 64,
     "lr_schedule": "linear", "sigma_mode": "state_independent", "mu_activation": "identity",
     "dtype": "float64"},
])
def test_save_load_and_continue_equals_an_uninterrupted_run(tmp_path, changes):
    steps_per_iteration = 4 * 50
    total = 4 * steps_per_iteration
    straight = PPO(short_pendulum, tiny_config(**changes), seed=3)
    straight.learn(total)

    first = PPO(short_pendulum, tiny_config(**changes), seed=3)
    first.learn(total, callback=lambda agent, _: agent.iteration < 2)
    assert first.iteration == 2
    first.save(tmp_path / "checkpoint.npz")
    resumed = PPO.load(tmp_path / "checkpoint.npz", env=short_pendulum)
    resumed.learn(total)

    assert_same_state(resumed, straight)
    # acting after the run uses the agent's own RNG, saved with it
    obs = np.array([0.5, -0.5, 0.1])
    assert np.array_equal(resumed.act(obs, deterministic=False), straight.act(obs, deterministic=False))
