"""Compiled environments (npppo/envs/compiled.py, pendulum.py, mountain_car.py, conwip_line.py):
each equals its original over whole episodes, seeded resets give the same initial states, the
adapter is a proper gymnasium.Env, and the documented user example runs."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import npppo  # noqa: F401  (registers npppo's environments)
from npppo.envs import conwip_line
from npppo.envs.compiled import CompiledEnv, compiled_of
from npppo.envs.conwip_line import DECISIONS, ConwipLineEnv

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5


def run_pair(original: gym.Env, compiled: gym.Env, actions) -> int:
    """Step both with the same actions until either's episode ends; assert every observation, reward
    and flag agrees within TOLERANCE (flags exactly). Returns the steps taken before the last one
    (0: the first action ended the episode), or len(actions) if none did."""
    for t, action in enumerate(actions):
        obs_a, reward_a, term_a, trunc_a, _ = original.step(action)
        obs_b, reward_b, term_b, trunc_b, _ = compiled.step(action)
        assert obs_a.dtype == obs_b.dtype == np.float32
        np.testing.assert_allclose(obs_b, obs_a, rtol=0, atol=TOLERANCE, err_msg=f"step {t}")
        assert abs(reward_b - reward_a) <= TOLERANCE, (t, reward_a, reward_b)
        assert (term_a, trunc_a) == (term_b, trunc_b), t
        if term_a or trunc_a:
            return t
    return len(actions)


def pendulum_actions(rng, dtype):
    return rng.uniform(-3.0, 3.0, (200, 1)).astype(dtype)  # a third of them beyond the bounds ±2


@pytest.mark.parametrize("seed", range(8))
def test_pendulum_equals_gymnasiums_over_whole_episodes(seed):
    original, compiled = gym.make("Pendulum-v1"), gym.make("npppo/Pendulum-v1")
    obs_a, _ = original.reset(seed=seed)
    obs_b, _ = compiled.reset(seed=seed)
    np.testing.assert_array_equal(compiled.unwrapped.state, original.unwrapped.state)  # the same draws
    np.testing.assert_allclose(obs_b, obs_a, rtol=0, atol=TOLERANCE)
    assert run_pair(original, compiled, pendulum_actions(np.random.default_rng(seed), np.float64)) == 199  # time limit


@pytest.mark.parametrize("seed", range(4))
def test_pendulum_with_float32_actions_agrees_step_by_step(seed):
    """Gymnasium's Pendulum rounds 3u and 0.001u² to float32 when u is float32 (and so differs from
    itself under the same actions as float64 by about 1e-5 over an episode); the compiled one
    always computes in float64. From the same state, each step agrees within 1e-6."""
    original, compiled = gym.make("Pendulum-v1"), gym.make("npppo/Pendulum-v1")
    original.reset(seed=seed)
    compiled.reset(seed=seed)
    for action in pendulum_actions(np.random.default_rng(seed), np.float32):
        compiled.unwrapped.state[:] = original.unwrapped.state
        obs_a, reward_a, *_ = original.step(action)
        obs_b, reward_b, *_ = compiled.step(action)
        np.testing.assert_allclose(obs_b, obs_a, rtol=0, atol=1e-6)
        assert abs(reward_b - reward_a) <= 1e-6


def test_pendulum_from_the_same_given_states_and_gravity():
    rng = np.random.default_rng(1)
    for _ in range(20):
        original, compiled = gym.make("Pendulum-v1", g=9.81), gym.make("npppo/Pendulum-v1", g=9.81)
        original.reset(seed=0)
        compiled.reset(seed=0)
        state = rng.uniform([-10.0, -8.0], [10.0, 8.0])  # angles beyond ±π, any speed
        original.unwrapped.state = state.copy()
        compiled.unwrapped.state[:] = state
        run_pair(original, compiled, pendulum_actions(rng, np.float64))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pump", [False, True])
def test_mountain_car_equals_gymnasiums_over_whole_episodes(seed, pump):
    """Noisy actions, often beyond ±1: random ones run to the time limit; pushing with the velocity
    reaches the goal (terminated, with its +100)."""
    original, compiled = gym.make("MountainCarContinuous-v0"), gym.make("npppo/MountainCarContinuous-v0")
    obs_a, _ = original.reset(seed=seed)
    obs_b, _ = compiled.reset(seed=seed)
    np.testing.assert_array_equal(compiled.unwrapped.state[:2], original.unwrapped.state)
    np.testing.assert_array_equal(obs_b, obs_a)
    rng = np.random.default_rng(seed)
    steps = 0
    while steps < 999:
        steps += 1
        push = 1.3 * (1.0 if original.unwrapped.state[1] >= 0 else -1.0) if pump else 0.0
        if run_pair(original, compiled, [np.array([push + rng.normal(0.0, 1.5)])]) == 0:
            break
    assert steps < 999 if pump else steps == 999


@pytest.mark.parametrize("env_id, original_id", [("npppo/Pendulum-v1", "Pendulum-v1"),
                                                 ("npppo/MountainCarContinuous-v0", "MountainCarContinuous-v0")])
def test_reset_streams_give_gymnasiums_initial_states(env_id, original_id):
    """Seeded, then unseeded resets (which continue the stream): the same initial-state sequence,
    so the same initial-state distribution."""
    original, compiled = gym.make(original_id), gym.make(env_id)
    for seed in (0, 12345):
        original.reset(seed=seed)
        compiled.reset(seed=seed)
        for _ in range(50):
            np.testing.assert_array_equal(compiled.unwrapped.state[:2], original.unwrapped.state)
            original.reset()
            compiled.reset()


class ReferenceLine:
    """ConwipLine-v0 as it was before it became compiled: each line's counters, clocks and release
    times in arrays of their own around the same event loop (the reference of the compiled state)."""

    def __init__(self, reward="standalone", wip_cost=0.02, twin_cap=100):
        self.twin, self.wip_cost, self.twin_cap = reward == "twin", wip_cost, twin_cap

    def reset(self, seed):
        rng = np.random.default_rng(seed)  # Gymnasium's np_random for this seed
        arrival_rng, m1_rng, m2_rng, cap_rng = (np.random.default_rng(s) for s in rng.integers(0, 2**63, size=4))
        self.gaps = conwip_line._draw_covering(arrival_rng, conwip_line._gaps, conwip_line.HORIZON)
        self.arrivals = np.cumsum(self.gaps)
        span = conwip_line.HORIZON + conwip_line.SERVICE_MAX
        self.m1 = conwip_line._draw_covering(m1_rng, conwip_line._service, span)
        self.m2 = conwip_line._draw_covering(m2_rng, conwip_line._service, span)
        self.line = self.new_line()
        for cap in cap_rng.integers(1, conwip_line.MAX_CAP, size=4):
            self.advance(self.line, int(cap))
        self.twin_line = [a.copy() for a in self.line]
        return self.line[3].copy()

    def new_line(self):
        return [np.zeros(7, np.int64), np.zeros(5), np.zeros(len(self.gaps)), np.zeros(8, np.float32)]

    def advance(self, line, cap):
        counts, clocks, releases, obs = line
        return conwip_line._simulate_epoch(self.arrivals, self.gaps, self.m1, self.m2, releases, counts, clocks, cap,
                                           conwip_line.WARMUP_END, obs)

    def step(self, action):
        cap = int(min(max(float(action[0]), 0.0), 100.0))
        parts, area = self.advance(self.line, cap)
        wip = area / conwip_line.EPOCH
        if self.twin:
            twin_parts, twin_area = self.advance(self.twin_line, self.twin_cap)
            reward = (parts - twin_parts) + (twin_area / conwip_line.EPOCH - wip)
        else:
            reward = parts - self.wip_cost * wip
        return self.line[3].copy(), reward


@pytest.mark.parametrize("kwargs", [{}, {"reward": "twin", "twin_cap": 10}, {"wip_cost": 0.5}])
def test_conwip_line_equals_its_reference_bit_for_bit(kwargs):
    reference, compiled = ReferenceLine(**kwargs), ConwipLineEnv(**kwargs)
    for seed in range(5):
        np.testing.assert_array_equal(compiled.reset(seed=seed)[0], reference.reset(seed))
        caps = np.random.default_rng(seed).uniform(-10.0, 130.0, DECISIONS)  # beyond 0..100 too
        for t, cap in enumerate(caps):
            obs, reward, terminated, truncated, _ = compiled.step(np.array([cap]))
            ref_obs, ref_reward = reference.step([cap])
            np.testing.assert_array_equal(obs, ref_obs)
            assert reward == ref_reward and not terminated and truncated == (t == DECISIONS - 1)


@pytest.mark.filterwarnings("ignore:.*symmetric and normalized:UserWarning",
                            "ignore:.*maximum value is infinity:UserWarning")
@pytest.mark.parametrize("env_id", ["npppo/Pendulum-v1", "npppo/MountainCarContinuous-v0"])
def test_compiled_envs_pass_gymnasiums_env_checker(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


def test_compiled_of_sees_through_neutral_wrappers_only():
    env = gym.make("npppo/Pendulum-v1")
    spec, limit = compiled_of(env)
    assert spec is env.unwrapped.compiled and limit == 200
    assert compiled_of(gym.make("Pendulum-v1")) is None
    assert compiled_of(gym.wrappers.ClipAction(env)) is None  # it would change what the step sees
    assert compiled_of(gym.wrappers.TimeLimit(env, 50))[1] == 50


def test_step_before_reset_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="call reset"):
        gym.make("npppo/Pendulum-v1").unwrapped.step(np.zeros(1))


def test_the_documented_user_env_is_compiled_and_trains(tmp_path, monkeypatch):
    docs = (ROOT / "docs" / "compiled_envs.md").read_text()
    block = re.search(r"## Writing one\n.*?```python\n(.*?)```", docs, re.S).group(1)
    module = tmp_path / "drift_env.py"
    module.write_text(block)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = runpy.run_path(str(module), run_name="drift_env")
    agent = names["agent"]
    assert isinstance(agent.envs[0].unwrapped, CompiledEnv)
    assert agent.num_timesteps >= 800 and np.isfinite(agent.history[-1]["return_mean"])
    gym.registry.pop("Drift-v0")
