"""Running statistics: RunningMeanStd's merged batches against np.mean / np.var of the joined data and
its clipped standardisation; the reward normalisation by the discounted return's running std, against
plain Python, and saved with the agent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npppo import PPO
from npppo.envs import EnvFactory
from npppo.normalization import RewardNormalizer, RunningMeanStd, discounted_returns


def reference_returns(rewards, episode_ends, gamma):
    returns, running = [], 0.0
    for reward, end in zip(rewards, episode_ends, strict=True):
        running = gamma * running + reward
        returns.append(running)
        if end:
            running = 0.0
    return returns


def test_discounted_returns_restart_after_each_segment():
    rewards = np.array([1.0, 2.0, 3.0, -1.0, 0.5, 4.0, 2.0])
    ends = np.array([False, False, True, False, True, False, True])
    gamma = 0.9
    returns = discounted_returns(rewards, ends, gamma)
    assert returns.tolist() == pytest.approx(reference_returns(rewards, ends, gamma), rel=1e-15)
    assert returns[:3].tolist() == pytest.approx([1.0, 2.9, 5.61])  # by hand: 0.9 * 2.9 + 3
    assert returns[3] == -1.0 and returns[5] == 4.0  # a new segment starts from its own reward


def test_reward_normalizer_updates_with_the_batch_then_scales_it():
    rng = np.random.default_rng(0)
    gamma, clip = 0.99, 10.0
    normalizer = RewardNormalizer(gamma, clip)
    seen = []
    for batch in range(3):
        rewards = rng.normal(2.0, 3.0, size=50) * (batch + 1)
        ends = rng.uniform(size=50) < 0.1
        ends[-1] = True
        seen += reference_returns(rewards, ends, gamma)
        scaled = normalizer(rewards, ends)
        std = math.sqrt(np.var(seen) + 1e-8)  # the population variance of every return so far, this batch's too
        np.testing.assert_allclose(scaled, np.clip(rewards / std, -clip, clip), rtol=1e-12)
        assert normalizer.return_rms.count == len(seen)


def test_normalised_rewards_are_clipped():
    normalizer = RewardNormalizer(0.5, clip=1.5)
    scaled = normalizer(np.array([0.0, 0.0, 0.0, 100.0]), np.array([False, False, False, True]))
    assert scaled[-1] == 1.5


def short_pendulum_agent(tiny_config, **changes) -> PPO:
    config = tiny_config(normalize_rewards=True, **changes)
    return PPO(EnvFactory("Pendulum-v1", max_episode_steps=50), config, seed=3)


def test_reward_statistics_are_saved_restored_and_continue_the_run_exactly(tmp_path, tiny_config):
    agent = short_pendulum_agent(tiny_config)
    agent.learn(200)
    assert agent.reward_normalizer.return_rms.count == 200
    loaded = PPO.load(agent.save(tmp_path / "checkpoint.npz"))
    for name in ("mean", "var", "count"):
        assert getattr(loaded.reward_normalizer.return_rms, name) == getattr(agent.reward_normalizer.return_rms, name)
    loaded.learn(400)
    straight = short_pendulum_agent(tiny_config)
    straight.learn(200)  # the same calls without the save and load
    straight.learn(400)
    np.testing.assert_array_equal(loaded.policy.params, straight.policy.params)
    np.testing.assert_array_equal(loaded.critic.params, straight.critic.params)
    assert loaded.reward_normalizer.return_rms.var == straight.reward_normalizer.return_rms.var


def test_inference_does_not_need_the_reward_statistics(tmp_path, tiny_config):
    from npppo.inference import Policy

    agent = short_pendulum_agent(tiny_config, dtype="float64")
    agent.learn(100)
    policy = Policy.load(agent.save(tmp_path / "model.npz"))
    obs = np.array([[0.5, -0.2, 1.0]])
    np.testing.assert_allclose(policy.act(obs), agent.act(obs), rtol=1e-12)


# ---------------------------------------------------------------- RunningMeanStd


def test_a_new_instance_is_the_identity_transform():
    rms = RunningMeanStd((3,), clip=10.0)
    assert rms.count == 0
    np.testing.assert_array_equal(rms.mean, np.zeros(3))
    np.testing.assert_array_equal(rms.var, np.ones(3))
    x = np.array([[0.5, -2.0, 3.0]])
    np.testing.assert_allclose(rms.normalize(x), x / np.sqrt(1.0 + 1e-8), rtol=1e-15)


@pytest.mark.parametrize("sizes", [[7], [1, 1, 1], [5, 1, 40, 3], [200, 2]])
def test_merged_batches_equal_the_statistics_of_the_joined_data(sizes):
    rng = np.random.default_rng(len(sizes))
    # batches of different scale and offset per column, so that each merge term matters
    batches = [rng.normal(loc=[3.0, -1.0], scale=[0.5, 4.0], size=(n, 2)) + k for k, n in enumerate(sizes)]
    rms = RunningMeanStd((2,), clip=10.0)
    for batch in batches:
        rms.update(batch)
    joined = np.concatenate(batches)
    assert rms.count == joined.shape[0]
    np.testing.assert_allclose(rms.mean, joined.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rms.var, joined.var(axis=0), rtol=1e-12)


def test_an_empty_batch_changes_nothing():
    rms = RunningMeanStd((2,), clip=10.0)
    rms.update(np.array([[1.0, 2.0], [3.0, 6.0]]))
    before = (rms.mean.copy(), rms.var.copy(), rms.count)
    rms.update(np.zeros((0, 2)))
    np.testing.assert_array_equal(rms.mean, before[0])
    np.testing.assert_array_equal(rms.var, before[1])
    assert rms.count == before[2]


def test_normalize_is_clipped_standardisation_with_the_running_statistics():
    rms = RunningMeanStd((2,), clip=1.5)
    rms.update(np.array([[0.0, 10.0], [2.0, 14.0], [4.0, 12.0]]))  # mean [2, 12], var [8/3, 8/3]
    std = np.sqrt(8.0 / 3.0 + 1e-8)
    x = np.array([[3.0, 12.5], [100.0, -100.0], [2.0 - 1.4 * std, 12.0]])
    expected = np.array([[1.0 / std, 0.5 / std], [1.5, -1.5], [-1.4, 0.0]])
    np.testing.assert_allclose(rms.normalize(x), expected, rtol=1e-12)
