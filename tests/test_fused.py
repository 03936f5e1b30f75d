"""The fused rollout (npppo/fused.py): the same rows and bits as the sampler's Python loop over the
Gymnasium form of the same compiled environments (whole episodes, fixed steps, every path of the
call: more noise, more resets, more rows), a NumPy reference of every row, and the same runs for
any worker count and on Ray."""

from __future__ import annotations

import math
import warnings
from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest

import npppo  # noqa: F401  (registers npppo's environments)
from npppo import PPO, fused, presets
from npppo.envs import EnvFactory, check_spaces, make_env
from npppo.envs.compiled import CompiledEnv, CompiledSpec
from npppo.errors import EnvError
from npppo.fused import FusedRollout
from npppo.inference import mlp_forward
from npppo.jit import njit
from npppo.policy import GaussianPolicy
from npppo.sampler import Sampler
from npppo.streams import EPISODE_NOISE, EPISODE_RESET, generator, reset_seed


@njit
def drift_reset(params, state, rng, obs):
    state[0] = rng.uniform(-1.0, 1.0)
    obs[0] = state[0]


@njit
def drift_step(params, state, action, obs):
    state[0] += params[0] * action[0]
    obs[0] = state[0] if state[0] < params[1] else np.inf  # a non-finite observation past params[1]
    return -abs(state[0]), abs(state[0]) > 3.0, False


class DriftEnv(CompiledEnv):
    """Episodes that terminate early and often (|x| > 3), with no time limit of their own."""

    def __init__(self, speed: float = 1.0, blow_up_at: float = np.inf) -> None:
        super().__init__(CompiledSpec(reset=drift_reset, step=drift_step, params=np.array([speed, blow_up_at]),
                                      state_size=1, obs_low=np.array([-np.inf]), obs_high=np.array([np.inf]),
                                      action_low=np.array([-2.0]), action_high=np.array([2.0])))


def samplers(env, preset: str = "pendulum", n_envs: int = 3, seed: int = 7, **changes):
    """(fused sampler, Python sampler) over ``n_envs`` copies of ``env`` (an id or a factory), one policy."""
    config = presets.get(preset).replace(**changes)
    make = (lambda: make_env(env)) if isinstance(env, str) else env
    envs = [make() for _ in range(n_envs)]
    spaces = check_spaces(envs[0])
    obs_dim, action_dim, low, high = spaces.obs_dim, spaces.action_dim, spaces.action_low, spaces.action_high
    policy = GaussianPolicy(obs_dim, action_dim, config, np.random.default_rng(seed))
    clip = config.obs_clip if config.normalize_obs else None
    with_fused = Sampler(envs, list(range(n_envs)), policy, low, high, seed, clip)
    python = Sampler([make() for _ in range(n_envs)], list(range(n_envs)), policy, low, high, seed, clip)
    python.fused = None
    assert with_fused.fused is not None
    return with_fused, python


def assert_same_batch(a, b):
    for field in fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert x.dtype == y.dtype and x.shape == y.shape, field.name
        np.testing.assert_array_equal(x, y, err_msg=field.name)


STATS = (np.array([0.1, -0.2, 0.3]), np.array([0.5, 0.4, 2.0]))  # observation normalisation, Pendulum's


@pytest.mark.parametrize("preset, changes, stats", [
    ("pendulum", {}, None),
    ("seed", {"trunk_sizes": [20, 12], "head_sizes": [9]}, None),  # two heads, ELU, ReLU sigma
    ("pendulum", {"action_squash": "tanh", "dtype": "float64", "normalize_obs": True}, STATS),
])
def test_whole_episodes_are_the_python_samplers_bits(preset, changes, stats):
    with_fused, python = samplers("npppo/Pendulum-v1", preset, 3, **changes)
    for iteration, episodes in [(0, [0, 1, 2, 3, 4, 5, 6]), (1, [4, 2]), (2, [])]:  # more episodes than envs
        assert_same_batch(with_fused.collect_episodes(iteration, episodes, stats),
                          python.collect_episodes(iteration, episodes, stats))


def test_fixed_steps_are_the_python_samplers_bits_across_batches():
    with_fused, python = samplers("npppo/Pendulum-v1", "pendulum", 4, normalize_obs=True)
    for iteration, steps in enumerate([[250, 130, 0, 400], [150, 270, 5, 200], [199, 1, 1, 0]]):
        assert_same_batch(with_fused.collect_steps(iteration, steps, STATS),
                          python.collect_steps(iteration, steps, STATS))
        np.testing.assert_array_equal(with_fused.episodes_started, python.episodes_started)


@pytest.mark.parametrize("kwargs", [{}, {"reward": "twin", "twin_cap": 12}])
def test_conwip_line_batches_are_the_python_samplers_bits(kwargs):
    with_fused, python = samplers(EnvFactory("npppo/ConwipLine-v0", kwargs), "conwip", 3)
    assert_same_batch(with_fused.collect_episodes(0, [3, 0, 8, 1]), python.collect_episodes(0, [3, 0, 8, 1]))
    for iteration in range(2):
        assert_same_batch(with_fused.collect_steps(iteration, [150, 60, 99]),
                          python.collect_steps(iteration, [150, 60, 99]))


def test_mountain_car_with_squashed_actions_is_the_python_samplers_bits():
    with_fused, python = samplers("npppo/MountainCarContinuous-v0", "pendulum", 2, action_squash="tanh")
    assert_same_batch(with_fused.collect_episodes(0, [0, 1, 2]), python.collect_episodes(0, [0, 1, 2]))


def test_early_ends_short_noise_and_few_rows_cost_calls_not_bits(monkeypatch):
    """Terminations beyond what the time limit promises (resets made during the call), noise and
    rows running out (no time limit: 3 rows per lane at first): the same bits."""
    monkeypatch.setattr(fused, "NOISE_ROWS_MAX", 3)
    with_fused, python = samplers(lambda: DriftEnv(1.5), "pendulum", 3, log_std_init=0.5)
    calls = []
    kernel = with_fused.fused._compiled  # loaded when the sampler was made
    with_fused.fused._compiled = lambda *args: calls.append(1) or kernel(*args)
    batch = with_fused.collect_episodes(0, [0, 1, 2, 3])
    assert_same_batch(batch, python.collect_episodes(0, [0, 1, 2, 3]))
    assert batch.episode_lengths.max() > 3 and len(calls) > 2
    limited, python_limited = samplers(lambda: gym.wrappers.TimeLimit(DriftEnv(1.5), 40), "pendulum", 3)
    for iteration in range(3):
        batch = limited.collect_steps(iteration, [90, 120, 30])
        assert_same_batch(batch, python_limited.collect_steps(iteration, [90, 120, 30]))
        np.testing.assert_array_equal(limited.episodes_started, python_limited.episodes_started)
    assert batch.end_terminated.any()  # episodes that ended before the time limit


def test_a_non_finite_observation_is_the_same_clear_error():
    with_fused, python = samplers(lambda: DriftEnv(1.0, blow_up_at=0.5), "pendulum", 1, log_std_init=1.0)
    with pytest.raises(EnvError, match=r"environment 0 returned a non-finite observation \[inf\] at step") as seen:
        with_fused.collect_episodes(0, [0, 1, 2])
    with pytest.raises(EnvError) as expected:
        python.collect_episodes(0, [0, 1, 2])
    assert str(seen.value) == str(expected.value)


def test_every_row_against_a_numpy_reference_on_gymnasiums_pendulum():
    """Each episode replayed in NumPy: Gymnasium's own Pendulum-v1 reset from the episode's seed, the
    policy's layer table through inference.mlp_forward in float64, the noise from the episode's
    stream, clipped actions stepped through Gymnasium's env."""
    config = presets.get("pendulum")
    with_fused, _ = samplers("npppo/Pendulum-v1", "pendulum", 2, seed=5)
    batch = with_fused.collect_episodes(3, [0, 1])
    policy = with_fused.policy
    params, layers = policy.params.astype(np.float64), policy.layers
    starts = np.concatenate([[0], batch.end_steps[:-1] + 1])
    for k, (start, end) in enumerate(zip(starts, batch.end_steps + 1, strict=True)):
        env = gym.make("Pendulum-v1")
        obs, _ = env.reset(seed=reset_seed(EPISODE_RESET, 5, 3, k))
        noise = generator(EPISODE_NOISE, 5, 3, k).standard_normal((end - start, 1))
        total = 0.0
        for t in range(start, end):
            np.testing.assert_allclose(batch.obs[t], obs, atol=1e-5)
            h = mlp_forward(params, layers[layers["part"] == "trunk"], obs[None])
            mu = mlp_forward(params, layers[layers["part"] == "mu_head"], h)[0]
            sigma = np.exp(params[policy.log_std_offset:])
            action = mu + sigma * noise[t - start]
            np.testing.assert_allclose(batch.actions[t], action, rtol=1e-5, atol=1e-5)
            log_prob = np.sum(-0.5 * ((action - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi))
            assert batch.log_prob[t] == pytest.approx(log_prob, rel=1e-5, abs=1e-5)
            obs, reward, terminated, truncated, _ = env.step(np.clip(batch.actions[t], -2.0, 2.0))
            assert batch.rewards[t] == pytest.approx(reward, abs=1e-5)
            total += reward
        assert truncated and not terminated and not batch.end_terminated[k]
        np.testing.assert_allclose(batch.end_obs[k], obs, atol=1e-5)
        assert batch.episode_returns[k] == pytest.approx(total, abs=1e-4)
    assert config.trunk_sizes == [64, 64]


def test_the_gymnasium_environments_keep_the_python_path():
    policy = GaussianPolicy(3, 1, presets.get("pendulum"), np.random.default_rng(0))
    assert Sampler([make_env("Pendulum-v1")], [0], policy, [-2.0], [2.0], 0, None).fused is None
    wrapped = gym.wrappers.ClipAction(make_env("npppo/Pendulum-v1"))  # a wrapper the call cannot know
    assert Sampler([wrapped], [0], policy, [-2.0], [2.0], 0, None).fused is None


def train(workers: int, backend: str = "local", **changes) -> PPO:
    paths = []
    small = {"num_envs": 3, "episodes_per_batch": 4, "actor_epochs": 2, "critic_epochs": 2}
    config = presets.get("pendulum").replace(**{**small, **changes})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with PPO(EnvFactory("npppo/Pendulum-v1", max_episode_steps=50), config, seed=4, workers=workers,
                 backend=backend) as agent:
            agent.learn(600, callback=lambda agent, metrics: paths.append(
                getattr(getattr(agent.rollout.running, "sampler", None), "fused", "workers")))
    assert workers > 1 or paths[0] is None or isinstance(paths[0], FusedRollout)
    return agent


FIXED_STEPS = {"episodes_per_batch": None, "steps_per_batch": 200, "batch_size": 64, "normalize_obs": True}


@pytest.mark.parametrize("changes", [{}, FIXED_STEPS])
def test_training_runs_are_the_python_paths_for_any_worker_count(monkeypatch, changes):
    with monkeypatch.context() as patched:
        patched.setattr(FusedRollout, "of", classmethod(lambda cls, sampler: None))
        python = train(1, **changes)
    one, two = train(1, **changes), train(2, **changes)
    for agent in (one, two):
        np.testing.assert_array_equal(agent.policy.params, python.policy.params)
        np.testing.assert_array_equal(agent.critic.params, python.critic.params)
        assert agent.episodes_started == python.episodes_started


def test_ray_runs_are_the_python_paths(monkeypatch):
    ray = pytest.importorskip("ray")  # the test extra installs it
    with monkeypatch.context() as patched:
        patched.setattr(FusedRollout, "of", classmethod(lambda cls, sampler: None))
        python = train(1, **FIXED_STEPS)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        remote = train(2, "ray", **FIXED_STEPS)
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(remote.policy.params, python.policy.params)
    np.testing.assert_array_equal(remote.critic.params, python.critic.params)
