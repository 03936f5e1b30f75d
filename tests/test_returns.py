"""n-step returns and GAE: the compiled kernels against plain-Python references on hand-built batches."""

import numpy as np
import pytest

from npppo.returns import gae_advantages, n_step_returns, normalize_advantages

GAMMA = 0.9


def reference_n_step_returns(rewards, values, episode_ends, end_values, gamma, n):
    """Plain-Python n-step returns, straight from the definition."""
    steps = len(rewards)
    ends = [t for t in range(steps) if episode_ends[t]]
    out = np.empty(steps)
    for t in range(steps):
        e = next(e for e in ends if e >= t)
        m = min(n, e + 1 - t)
        g = sum(gamma**k * rewards[t + k] for k in range(m))
        bootstrap = values[t + m] if t + m <= e else end_values[e]
        out[t] = g + gamma**m * bootstrap
    return out


def reference_gae(rewards, values, episode_ends, end_values, gamma, lam):
    """Plain-Python GAE as the λ-weighted sum of δs to the episode's end."""
    steps = len(rewards)
    ends = [t for t in range(steps) if episode_ends[t]]
    deltas = [
        rewards[t] + gamma * (end_values[t] if episode_ends[t] else values[t + 1]) - values[t]
        for t in range(steps)
    ]
    out = np.empty(steps)
    for t in range(steps):
        e = next(e for e in ends if e >= t)
        out[t] = sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, e + 1))
    return out


def batch(lengths, terminated, seed=0):
    """Episodes of the given lengths back to back; `terminated[i]` False means truncated."""
    rng = np.random.default_rng(seed)
    steps = sum(lengths)
    rewards = rng.normal(size=steps)
    values = rng.normal(size=steps)
    ends = np.cumsum(lengths) - 1
    episode_ends = np.zeros(steps, bool)
    episode_ends[ends] = True
    end_values = np.zeros(steps)
    for end, term in zip(ends, terminated, strict=True):
        end_values[end] = 0.0 if term else rng.normal()
    return rewards, values, episode_ends, end_values


def test_n_step_return_of_terminated_episode_by_hand():
    rewards = np.array([1.0, 2.0, 3.0])
    values = np.array([10.0, 20.0, 30.0])
    ends = np.array([False, False, True])
    end_values = np.zeros(3)
    got = n_step_returns(rewards, values, ends, end_values, GAMMA, 2)
    # t=0: r0 + γ r1 + γ² V(s2); t=1: r1 + γ r2 (terminal: no bootstrap); t=2: r2
    expected = [1 + GAMMA * 2 + GAMMA**2 * 30, 2 + GAMMA * 3, 3]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_n_step_return_of_truncated_episode_bootstraps_from_final_observation():
    rewards = np.array([1.0, 2.0])
    values = np.array([10.0, 20.0])
    ends = np.array([False, True])
    end_values = np.array([0.0, 5.0])  # V(s_final) of the truncated episode
    got = n_step_returns(rewards, values, ends, end_values, GAMMA, 20)
    np.testing.assert_allclose(got, [1 + GAMMA * 2 + GAMMA**2 * 5, 2 + GAMMA * 5], rtol=1e-12)


@pytest.mark.parametrize(
    ("lengths", "terminated", "n"),
    [
        ([50], [True], 20),  # longer than n
        ([5], [False], 20),  # shorter than n
        ([20], [True], 20),  # exactly n
        ([7, 30, 3, 25], [True, False, False, True], 20),  # several episodes in one batch
        ([1, 1, 2], [False, True, False], 3),  # one-step episodes
    ],
)
def test_n_step_returns_match_reference(lengths, terminated, n):
    args = batch(lengths, terminated)
    got = n_step_returns(*args, GAMMA, n)
    np.testing.assert_allclose(got, reference_n_step_returns(*args, GAMMA, n), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("lengths", "terminated", "lam"),
    [
        ([50], [True], 0.95),
        ([5], [False], 0.95),
        ([7, 30, 3, 25], [True, False, False, True], 0.9),
        ([10, 10], [False, True], 0.0),  # λ = 0: one-step TD errors
        ([10, 10], [False, True], 1.0),  # λ = 1: Monte Carlo minus V
    ],
)
def test_gae_matches_reference(lengths, terminated, lam):
    args = batch(lengths, terminated, seed=1)
    got = gae_advantages(*args, GAMMA, lam)
    np.testing.assert_allclose(got, reference_gae(*args, GAMMA, lam), rtol=1e-12, atol=1e-12)


def test_gae_with_lambda_one_equals_infinite_step_return_minus_value():
    args = batch([12, 8], [True, False], seed=2)
    values = args[1]
    mc_returns = n_step_returns(*args, GAMMA, 1000)
    np.testing.assert_allclose(gae_advantages(*args, GAMMA, 1.0), mc_returns - values, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("kernel", "last"), [(n_step_returns, 3), (gae_advantages, 0.9)])
def test_the_kernels_read_and_write_only_inside_their_arrays(kernel, last):
    """Compiled code does not check bounds; the same source run by Python (where NumPy raises
    IndexError past an array's end) must give the compiled kernel's values."""
    args = batch([7, 30, 3, 25], [True, False, False, True], seed=3)
    np.testing.assert_allclose(kernel.py_func(*args, GAMMA, last), kernel(*args, GAMMA, last), rtol=1e-13, atol=0)


def test_episode_boundary_stops_the_sum():
    """A reward in the next episode must not leak into this one's return."""
    rewards = np.array([0.0, 0.0, 100.0])
    values = np.zeros(3)
    ends = np.array([False, True, True])
    end_values = np.zeros(3)
    assert n_step_returns(rewards, values, ends, end_values, GAMMA, 20)[0] == 0.0
    assert gae_advantages(rewards, values, ends, end_values, GAMMA, 0.95)[0] == 0.0


def test_normalize_advantages_gives_zero_mean_unit_std():
    advantages = np.random.default_rng(0).normal(3.0, 7.0, size=1000)
    normed = normalize_advantages(advantages)
    assert abs(normed.mean()) < 1e-12
    assert abs(normed.std() - 1.0) < 1e-6
