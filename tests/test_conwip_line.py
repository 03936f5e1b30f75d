"""ConwipLine-v0: the Gymnasium contract, determinism, the line's bookkeeping and its queueing behaviour."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import npppo  # noqa: F401  (registers npppo/ConwipLine-v0)
from npppo.envs import conwip_line
from npppo.envs.conwip_line import ARRIVALS, CAPACITY, DECISIONS, GAPS, RELEASES, ConwipLineEnv


def run_episode(env: gym.Env, seed: int, caps) -> list[tuple]:
    """(obs, reward, terminated, truncated, info) of each step; ``caps`` is one cap or one per step."""
    env.reset(seed=seed)
    caps = np.broadcast_to(np.asarray(caps, dtype=np.float32), (DECISIONS,))
    return [env.step(np.array([cap], dtype=np.float32)) for cap in caps]


# the action is a cap in 0..100 by design, and gaps have no upper bound: both warnings are expected
@pytest.mark.filterwarnings("ignore:.*symmetric and normalized:UserWarning",
                            "ignore:.*maximum value is infinity:UserWarning")
@pytest.mark.parametrize("kwargs", [{}, {"reward": "twin", "twin_cap": 10}])
def test_passes_gymnasiums_env_checker(kwargs):
    check_env(ConwipLineEnv(**kwargs), skip_render_check=True)


def test_registered_id_makes_the_line_and_truncates_after_99_decisions():
    env = gym.make("npppo/ConwipLine-v0")
    assert isinstance(env.unwrapped, ConwipLineEnv)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (8,) and obs.dtype == np.float32
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(DECISIONS)]
    assert [truncated for _, truncated in flags] == [False] * (DECISIONS - 1) + [True]
    assert not any(terminated for terminated, _ in flags)
    assert env.unwrapped.line_state()["time"] == 3090.0


def test_same_seed_same_episode_other_seed_other_episode():
    caps = np.random.default_rng(0).uniform(-5, 120, DECISIONS)
    first, again, other = (run_episode(ConwipLineEnv(), seed, caps) for seed in (7, 7, 8))
    for (obs_a, reward_a, *_, info_a), (obs_b, reward_b, *_, info_b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert reward_a == reward_b
        assert info_a.keys() == info_b.keys()
        np.testing.assert_array_equal(list(info_a.values()), list(info_b.values()))
    assert [step[1] for step in first] != [step[1] for step in other]


def test_action_maps_to_an_integer_cap_in_0_to_100():
    env = ConwipLineEnv()
    env.reset(seed=1)
    for action, cap in [(7.9, 7), (-3.0, 0), (250.0, 100), (0.99, 0), (100.0, 100)]:
        obs, *_, info = env.step(np.array([action], dtype=np.float32))
        assert info["cap"] == cap and obs[7] == cap
    released = env.line_state()["released"]
    for _ in range(5):  # a cap of 0 releases nothing
        env.step(np.array([0.0], dtype=np.float32))
    assert env.line_state()["released"] == released


def test_conservation_and_the_release_rule_at_every_decision():
    env = ConwipLineEnv()
    caps = np.random.default_rng(3).integers(0, 40, DECISIONS)
    for seed in range(5):
        env.reset(seed=seed)
        state = env.line_state()
        completed_at_start, previous_wip = state["completed"], state["released"] - state["completed"]
        parts = 0
        for cap in caps:
            *_, info = env.step(np.array([cap], dtype=np.float32))
            parts += info["parts"]
            s = env.line_state()
            wip = s["buffer1"] + s["machine1"] + s["buffer2"] + s["machine2"]
            assert s["released"] == s["completed"] + wip
            assert s["arrived"] == s["released"] + s["order_queue"] == s["released"] + info["order_queue"]
            assert min(s["buffer1"], s["buffer2"], s["order_queue"]) >= 0
            assert s["machine1"] in (0, 1) and s["machine2"] in (0, 1)
            # work conserving: a machine idles only when its buffer is empty
            assert s["buffer1"] == 0 or s["machine1"] == 1
            assert s["buffer2"] == 0 or s["machine2"] == 1
            # CONWIP: release up to the cap while orders wait, never beyond it
            assert wip <= max(cap, previous_wip)
            assert s["order_queue"] == 0 or wip >= cap
            previous_wip = wip
        assert parts == env.line_state()["completed"] - completed_at_start


@pytest.mark.parametrize("twin_cap", [0, 7, 100])
def test_twin_reward_is_exactly_zero_under_the_twins_own_cap(twin_cap):
    env = ConwipLineEnv(reward="twin", twin_cap=twin_cap)
    for seed in range(3):
        steps = run_episode(env, seed, twin_cap)
        assert all(reward == 0.0 for _, reward, *_ in steps)
        assert all(info["twin_parts"] == info["parts"] and info["twin_wip"] == info["wip"] for *_, info in steps)


def test_twin_reward_compares_with_the_twin_under_other_caps():
    standalone = run_episode(ConwipLineEnv(wip_cost=1.0), 4, 3)
    twin = run_episode(ConwipLineEnv(reward="twin", twin_cap=100), 4, 3)
    baseline = run_episode(ConwipLineEnv(wip_cost=1.0), 4, 100)
    for (_, reward, *_, info), (*_, line), (*_, reference) in zip(twin, standalone, baseline, strict=True):
        # same random numbers: the twin is exactly the standalone line under cap 100
        assert (info["twin_parts"], info["twin_wip"]) == (reference["parts"], reference["wip"])
        assert (info["parts"], info["wip"]) == (line["parts"], line["wip"])
        assert reward == pytest.approx((line["parts"] - reference["parts"]) + (reference["wip"] - line["wip"]))
    assert sum(step[1] for step in twin) > 0  # cap 3 holds far less WIP than cap 100 for a few parts fewer


def test_standalone_reward_is_parts_minus_wip_cost_times_wip():
    for _, reward, *_, info in run_episode(ConwipLineEnv(wip_cost=0.25), 5, 12):
        assert reward == pytest.approx(info["parts"] - 0.25 * info["wip"])


def test_littles_law_over_many_episodes():
    # Over one window of 2970 time units Little's law holds up to edge terms: the parts in the line
    # at t = 120 bring flow time from before it, those at t = 3090 bring WIP without a flow time.
    # Each term is about WIP × flow time / 2970; caps of 3..10 (flow times of 30..110) keep them
    # well inside 2 %, while a bookkeeping error (flow from arrival, a missed part) would not be.
    env = ConwipLineEnv()
    rng = np.random.default_rng(11)
    wip, throughput, flow_time = [], [], []
    for seed in range(300):
        steps = run_episode(env, seed, rng.integers(3, 11))
        wip.append(np.mean([info["wip"] for *_, info in steps]))
        throughput.append(steps[-1][4]["throughput"])
        flow_time.append(steps[-1][4]["flow_time"])
    parts = np.array(throughput)  # every episode spans the same time, so parts ∝ throughput
    mean_flow_time = np.sum(parts * flow_time) / np.sum(parts)
    assert np.mean(wip) == pytest.approx(np.mean(throughput) * mean_flow_time, rel=0.02)


def test_throughput_is_one_part_per_two_mean_services_at_cap_1_and_rises_towards_0_1():
    env = ConwipLineEnv()
    parts, time_units = 0, 0.0
    for seed in range(20):
        steps = run_episode(env, seed, 1)[10:]  # after 10 epochs the warm-up's extra WIP has left
        assert all(info["order_queue"] > 0 and info["wip"] == 1.0 for *_, info in steps)
        parts += sum(info["parts"] for *_, info in steps)
        time_units += 30.0 * len(steps)
    assert parts / time_units == pytest.approx(0.05, rel=0.05)
    caps = [1, 2, 4, 8, 16, 100]
    rates = [np.mean([run_episode(env, seed, cap)[-1][4]["throughput"] for seed in range(20)]) for cap in caps]
    assert all(np.diff(rates) > 0)
    assert 0.09 < rates[-1] < 0.1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"reward": "profit"}, "unknown reward mode 'profit'"), ({"wip_cost": -0.5}, "wip_cost must be"),
     ({"wip_cost": float("nan")}, "wip_cost must be"), ({"twin_cap": 101}, "twin_cap must be")],
)
def test_bad_keywords_raise_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("npppo/ConwipLine-v0", **kwargs)


def test_step_before_reset_or_after_the_end_raises():
    env = ConwipLineEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([5.0], dtype=np.float32))
    run_episode(env, 0, 5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([5.0], dtype=np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_first_order_arrives_and_is_released_at_t_0_and_the_kth_after_k_gaps(seed):
    """As in the original line, which creates an order before its first timeout: arrivals at 0, g0,
    g0 + g1, ...; with the first warm-up cap (>= 1) the first order enters the line at once."""
    env = ConwipLineEnv()
    env.reset(seed=seed)
    state = env.state  # the compiled state: drawn numbers and release times at fixed offsets
    assert state[RELEASES] == 0.0
    gaps_before = state[GAPS : GAPS + CAPACITY]
    arrivals = state[ARRIVALS : ARRIVALS + CAPACITY]
    drawn = int(np.flatnonzero(arrivals)[-1]) + 1  # the slots after the last drawn arrival stay 0
    assert np.isnan(gaps_before[0])
    np.testing.assert_array_equal(arrivals[:drawn], np.concatenate(([0.0], np.cumsum(gaps_before[1:drawn]))))
    assert env.line_state()["arrived"] == int(np.sum(arrivals[:drawn] <= 120.0))


def test_every_observation_and_info_value_of_a_hand_checked_line(monkeypatch):
    """Orders every GAP time units and every processing time SERVICE on both machines (GAP > 2 SERVICE):
    a part never waits, so order i is in the line over [i GAP, i GAP + 2 SERVICE), on machine 1 for the
    first SERVICE of it, and every value the line reports follows by hand."""
    gap, service = 10.37, 3.13  # no event within 0.01 of a sampling instant (asserted below)
    monkeypatch.setattr(conwip_line, "_gaps", lambda rng, n: np.full(n, gap))
    monkeypatch.setattr(conwip_line, "_service", lambda rng, n: np.full(n, service))
    arrivals = np.arange(400) * gap
    exits = arrivals + 2 * service

    def epoch(t0):  # (parts, WIP time integral, obs[0], obs[3], obs[4]) of the epoch [t0, t0 + 30]
        samples = t0 + np.arange(1, 7) * 5.0
        events = np.concatenate([arrivals, arrivals + service, exits])
        assert np.min(np.abs(events[:, None] - samples[None, :])) > 0.01
        in_line = (arrivals[:, None] <= samples) & (samples < exits[:, None])
        on_m1 = (arrivals[:, None] <= samples) & (samples < arrivals[:, None] + service)
        parts = int(np.sum((exits > t0) & (exits <= t0 + 30)))
        area = float(np.sum(np.clip(np.minimum(exits, t0 + 30) - np.maximum(arrivals, t0), 0.0, None)))
        return parts, area, in_line.sum(0).mean(), on_m1.any(0).mean(), (in_line & ~on_m1).any(0).mean()

    env = ConwipLineEnv(wip_cost=0.02)
    obs, info = env.reset(seed=0)
    _, _, wip_samples, busy1, busy2 = epoch(90.0)
    assert info["order_queue"] == 0 and obs[7] == info["cap"] >= 1
    np.testing.assert_allclose(obs[[0, 1, 2, 3, 4, 5, 6]], [wip_samples, gap, 0, busy1, busy2, service, service],
                               atol=1e-5)
    caps = np.random.default_rng(0).integers(1, 101, DECISIONS)  # never binding: one part at a time
    for k, cap in enumerate(caps):
        obs, reward, terminated, truncated, info = env.step(np.array([cap], dtype=np.float32))
        t1 = 150.0 + 30 * k
        parts, area, wip_samples, busy1, busy2 = epoch(t1 - 30)
        measured = int(np.sum((exits >= 120) & (exits <= t1)))
        assert (info["cap"], info["parts"], info["order_queue"]) == (cap, parts, 0)
        assert info["wip"] == pytest.approx(area / 30, abs=1e-9)
        assert info["throughput"] == pytest.approx(measured / (t1 - 120), abs=1e-12)
        assert info["lead_time"] == pytest.approx(2 * service) and info["flow_time"] == pytest.approx(2 * service)
        assert reward == pytest.approx(parts - 0.02 * area / 30, abs=1e-9)
        np.testing.assert_allclose(obs, [wip_samples, gap, 0, busy1, busy2, service, service, cap], atol=1e-5)
        assert not terminated and truncated == (k == DECISIONS - 1)
    assert info["throughput"] == pytest.approx(1 / gap, rel=0.01)
