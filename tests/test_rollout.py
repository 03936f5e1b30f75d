"""The rollout on real Gymnasium environments: batch structure, termination vs truncation, seeds."""

import gymnasium as gym
import numpy as np

from npppo.inference import gaussian_log_prob as log_prob
from npppo.rollout import Collector, episode_seed


def collector(env_id="Pendulum-v1", n_envs=3, seed=0):
    envs = [gym.make(env_id) for _ in range(n_envs)]
    space = envs[0].action_space
    return Collector(envs, space.low.astype(float), space.high.astype(float), seed)


def wide_policy(obs):
    """A fixed policy whose samples often leave the action bounds (to test clipping)."""
    return np.full((obs.shape[0], 1), 1.5), np.full((obs.shape[0], 1), 2.0)


def test_whole_episode_batch_on_pendulum_is_truncated_episodes():
    batch = collector().collect(wide_policy, 0, np.random.default_rng(0), n_episodes=5)
    assert batch.steps == 5 * 200  # Pendulum-v1 is truncated at 200 steps
    assert batch.episode_ends.sum() == 5
    assert not batch.end_terminated.any()
    np.testing.assert_array_equal(batch.end_steps, np.arange(1, 6) * 200 - 1)
    assert batch.episode_returns.shape == (5,)
    np.testing.assert_allclose(batch.episode_returns.sum(), batch.rewards.sum())


def test_actions_are_stored_unclipped_with_their_log_prob():
    batch = collector().collect(wide_policy, 0, np.random.default_rng(0), n_episodes=2)
    assert np.any(np.abs(batch.actions) > 2.0), "samples beyond the bounds must be kept as sampled"
    mu, sigma = wide_policy(batch.obs)
    np.testing.assert_allclose(batch.log_prob, log_prob(batch.actions, mu, sigma), rtol=1e-12)


def test_lunar_lander_episodes_terminate():
    c = collector("LunarLanderContinuous-v3", n_envs=2)

    def policy(obs):
        return np.zeros((obs.shape[0], 2)), np.ones((obs.shape[0], 2))

    batch = c.collect(policy, 0, np.random.default_rng(1), n_episodes=3)
    assert batch.end_terminated.all()  # random landers crash long before the 1000-step limit
    assert batch.episode_lengths.sum() == batch.steps


def test_same_iteration_gives_the_same_batch_and_another_iteration_does_not():
    a = collector(seed=7).collect(wide_policy, 3, np.random.default_rng([7, 3]), n_episodes=4)
    b = collector(seed=7).collect(wide_policy, 3, np.random.default_rng([7, 3]), n_episodes=4)
    c = collector(seed=7).collect(wide_policy, 4, np.random.default_rng([7, 3]), n_episodes=4)
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert not np.array_equal(a.obs[0], c.obs[0])  # other reset seeds


def test_fixed_step_batches_have_exactly_that_many_steps_and_continue_episodes():
    c = collector(n_envs=3)
    first = c.collect(wide_policy, 0, np.random.default_rng(0), n_steps=250)
    second = c.collect(wide_policy, 1, np.random.default_rng(1), n_steps=250)
    assert first.steps == second.steps == 250
    # 3 envs × ~83 steps: no episode finished yet, each piece is cut and bootstrapped
    assert first.episode_returns.size == 0
    assert first.episode_ends.sum() == 3 and not first.end_terminated.any()
    # the second batch continues where the first stopped
    np.testing.assert_array_equal(second.obs[0], first.end_obs[0])


def test_episode_seeds_differ_by_run_iteration_and_episode():
    seeds = {episode_seed(r, i, e) for r in range(3) for i in range(3) for e in range(3)}
    assert len(seeds) == 27
