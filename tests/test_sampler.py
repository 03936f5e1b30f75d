"""The sampler on real Gymnasium environments: batch structure, termination vs truncation, the
random streams that make a batch independent of how the work is split, and the rollout kernel."""

import gymnasium as gym
import numpy as np
import pytest

from npppo.inference import gaussian_log_prob, tanh_log_det, tanh_squash
from npppo.policy import GaussianPolicy
from npppo.sampler import Batch, Sampler, sample_actions
from npppo.streams import EPISODE_RESET, reset_seed


def sampler(tiny_config, env_id="Pendulum-v1", env_ids=(0, 1, 2), seed=0, **changes):
    envs = [gym.make(env_id) for _ in env_ids]
    space = envs[0].action_space
    policy = GaussianPolicy(envs[0].observation_space.shape[0], space.shape[0],
                            tiny_config(sigma_mode="softplus", dtype="float64", **changes), np.random.default_rng(1))
    return Sampler(envs, list(env_ids), policy, space.low, space.high, seed, None)


def test_whole_episode_batch_on_pendulum_is_truncated_episodes_in_episode_order(tiny_config):
    batch = sampler(tiny_config).collect_episodes(0, [0, 1, 2, 3, 4])
    assert batch.steps == 5 * 200  # Pendulum-v1 is truncated at 200 steps
    np.testing.assert_array_equal(batch.end_steps, np.arange(1, 6) * 200 - 1)
    assert batch.episode_ends.sum() == 5 and not batch.end_terminated.any()
    np.testing.assert_allclose(batch.episode_returns.sum(), batch.rewards.sum())
    for k in range(5):  # rows in episode order: episode k's first observation is its reset state
        obs, _ = gym.make("Pendulum-v1").reset(seed=reset_seed(EPISODE_RESET, 0, 0, k))
        np.testing.assert_array_equal(batch.obs[200 * k], obs)


def test_actions_are_stored_unclipped_with_their_log_prob(tiny_config):
    s = sampler(tiny_config)
    s.policy.params[s.policy.part_ranges["sigma_head"][0]:] = 0.0  # sigma = softplus(0) + floor, about 0.69
    s.policy.params[s.policy.part_ranges["mu_head"][1] - 1] = 1.9  # mu's bias: samples often leave [-2, 2]
    batch = s.collect_episodes(0, [0, 1])
    assert np.any(np.abs(batch.actions) > 2.0), "samples beyond the bounds must be kept as sampled"
    mu, sigma = s.policy.distribution(batch.obs)
    np.testing.assert_allclose(batch.log_prob, gaussian_log_prob(batch.actions, mu, sigma), rtol=1e-10)


def test_lunar_lander_episodes_terminate_without_bootstrap(tiny_config):
    batch = sampler(tiny_config, "LunarLanderContinuous-v3", (0, 1)).collect_episodes(0, [0, 1, 2])
    assert batch.end_terminated.all()  # random landers crash long before the 1000-step limit
    assert batch.episode_lengths.sum() == batch.steps


def test_an_episode_does_not_depend_on_which_environment_or_split_runs_it(tiny_config):
    together = sampler(tiny_config, env_ids=(0, 1, 2)).collect_episodes(4, [0, 1, 2, 3, 4])
    first = sampler(tiny_config, env_ids=(0,)).collect_episodes(4, [0, 1])
    second = sampler(tiny_config, env_ids=(1, 2)).collect_episodes(4, [2, 3, 4])
    joined = Batch.concatenate([first, second])
    for field in ("obs", "actions", "log_prob", "rewards", "episode_ends", "end_steps", "end_obs", "episode_returns"):
        np.testing.assert_array_equal(getattr(joined, field), getattr(together, field), err_msg=field)
    other_iteration = sampler(tiny_config).collect_episodes(5, [0, 1, 2, 3, 4])
    assert not np.array_equal(other_iteration.obs[0], together.obs[0])  # other reset seeds


def test_fixed_step_batches_split_steps_per_environment_and_continue_episodes(tiny_config):
    s = sampler(tiny_config)
    first = s.collect_steps(0, [84, 83, 83])
    second = s.collect_steps(1, [84, 83, 83])
    assert first.steps == second.steps == 250
    # no episode finished yet: each environment's piece is cut and bootstrapped, in environment order
    assert first.episode_returns.size == 0
    np.testing.assert_array_equal(first.end_steps, [83, 166, 249])
    assert not first.end_terminated.any()
    np.testing.assert_array_equal(second.obs[[0, 84, 167]], first.end_obs)  # the next batch continues there


def test_fixed_step_environments_keep_their_own_streams_whatever_the_split(tiny_config):
    together = sampler(tiny_config, env_ids=(0, 1, 2))
    alone = sampler(tiny_config, env_ids=(2,))
    for iteration in range(3):  # 3 x 150 steps: episodes end (at 200) and restart inside a batch
        a = together.collect_steps(iteration, [150, 150, 150])
        b = alone.collect_steps(iteration, [150])
        np.testing.assert_array_equal(a.obs[300:], b.obs)
        np.testing.assert_array_equal(a.actions[300:], b.actions)
    np.testing.assert_array_equal(alone.episodes_started, [3])


def test_episode_seeds_differ_by_run_iteration_and_episode():
    seeds = {reset_seed(EPISODE_RESET, r, i, e) for r in range(3) for i in range(3) for e in range(3)}
    assert len(seeds) == 27 and all(0 <= s < 2**31 for s in seeds)


@pytest.mark.parametrize("squash", [False, True])
def test_sample_actions_matches_the_numpy_reference(squash):
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(7, 3)).astype(np.float32)
    sigma = rng.uniform(0.1, 2.0, size=(7, 3)).astype(np.float32)
    noise = rng.normal(size=(7, 3))
    low, high = np.array([-1.0, -0.5, 0.0]), np.array([1.0, 0.5, 2.0])
    actions, env_actions, log_prob = np.empty((7, 3)), np.empty((7, 3)), np.empty(7)
    sample_actions(mu, sigma, noise, np.stack([low, high]), squash, actions, env_actions, log_prob)
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)  # the kernel works in float64
    expected = mu + sigma * noise
    np.testing.assert_array_equal(actions, expected)  # the batch stores the pre-squash sample u
    if squash:
        np.testing.assert_allclose(env_actions, tanh_squash(expected, low, high), rtol=1e-14, atol=1e-15)
        assert np.all((env_actions >= low) & (env_actions <= high))
        reference = gaussian_log_prob(expected, mu, sigma) - tanh_log_det(expected, low, high)
    else:
        np.testing.assert_array_equal(env_actions, np.clip(expected, low, high))
        assert np.any(env_actions != actions)  # some samples were clipped
        reference = gaussian_log_prob(expected, mu, sigma)
    np.testing.assert_allclose(log_prob, reference, rtol=1e-13)


@pytest.mark.parametrize("bad, message", [(np.nan, "non-finite observation"), (np.inf, "non-finite observation")])
def test_a_non_finite_observation_names_the_environment_and_step(tiny_config, bad, message):
    from envs_for_tests import EpisodeSteps

    class Broken(EpisodeSteps):  # a bad observation at the 5th step of every episode
        def changed(self, obs, reward, terminated, truncated, info):
            return (np.full_like(obs, bad) if self.steps == 5 else obs), reward, terminated, truncated, info

    s = sampler(tiny_config, env_ids=(0,))
    s.envs = [Broken(gym.make("Pendulum-v1"))]
    with pytest.raises(Exception, match=rf"environment 0 returned a {message} .* at step 5 of its episode"):
        s.collect_episodes(0, [0])
