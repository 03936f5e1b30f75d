"""The kernels added for speed (docs/performance.md) against their plain NumPy references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numba import njit

from npppo import PPO, presets
from npppo.nn.activations import ELU, RELU, TANH, Activation, activate_vector, expm1_nonpositive
from npppo.nn.layers import MLP, forward_rows
from npppo.rollout import reference_sample_actions, sample_actions


@njit
def _expm1_all(z, out):
    for i in range(z.shape[0]):
        out[i] = expm1_nonpositive(z[i])


@njit
def _activate(code, z, alpha, out):
    activate_vector(code, z, alpha, out)


def test_expm1_nonpositive_matches_numpy_to_a_few_ulp():
    z = -np.concatenate([np.logspace(-300, 2, 20_000), np.linspace(0, 50, 20_001)])
    out = np.empty_like(z)
    _expm1_all(z, out)
    np.testing.assert_allclose(out, np.expm1(z), rtol=2e-15, atol=0)


def test_expm1_nonpositive_saturates_at_minus_one_far_below_zero():
    out = np.empty(3)
    _expm1_all(np.array([-40.0, -745.0, -1e300]), out)
    np.testing.assert_array_equal(out, [np.expm1(-40.0), -1.0, -1.0])


@pytest.mark.parametrize("name", ["elu", "relu", "tanh", "softplus", "identity"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activate_vector_matches_reference(name, dtype):
    activation = Activation(name, alpha=0.7)
    z = np.random.default_rng(0).normal(0, 3, 257).astype(dtype)
    out = np.empty_like(z)
    _activate(activation.code, z, activation.alpha, out)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, activation.reference(z), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_rows_matches_the_batched_forward(dtype):
    rng = np.random.default_rng(1)
    activations = [Activation("elu"), Activation("relu"), Activation("tanh"), Activation("identity")]
    mlp = MLP([5, 13, 9, 7, 3], activations, "net")
    params, grad = np.zeros(mlp.size, dtype), np.zeros(mlp.size, dtype)
    mlp.bind(params, grad, 0)
    mlp.init(rng, "glorot_normal")
    x = rng.normal(size=(6, 5)).astype(dtype)
    expected = x.astype(np.float64)
    for layer in mlp.layers:  # the reference: NumPy, layer by layer
        expected = layer.activation.reference(expected @ layer.weight.astype(np.float64) + layer.bias)
    out = np.empty((6, 3), dtype)
    forward_rows(params, mlp.layout(), mlp.alphas(), x, out)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol)
    assert ELU != RELU != TANH  # the codes activate_vector specialises on are distinct


def test_sample_actions_matches_reference():
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(7, 3)).astype(np.float32)
    sigma = rng.uniform(0.1, 2.0, size=(7, 3)).astype(np.float32)
    noise = rng.normal(size=(7, 3))
    low, high = np.array([-1.0, -0.5, 0.0]), np.array([1.0, 0.5, 2.0])
    actions, env_actions, log_prob = np.empty((7, 3)), np.empty((7, 3)), np.empty(7)
    sample_actions(mu, sigma, noise, low, high, actions, env_actions, log_prob)
    ref_actions, ref_env_actions, ref_log_prob = reference_sample_actions(mu, sigma, noise, low, high)
    np.testing.assert_array_equal(actions, ref_actions)
    np.testing.assert_array_equal(env_actions, ref_env_actions)
    np.testing.assert_allclose(log_prob, ref_log_prob, rtol=1e-13)


def reference_act(agent: PPO, obs: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """``agent.act`` in plain NumPy: normalise, the batched forward, sample, clip."""
    mu, sigma = agent.policy.distribution(agent.normalize_obs(obs))
    actions = mu.astype(np.float64) if noise is None else mu + sigma * noise
    return np.clip(actions, agent.action_low, agent.action_high)


@pytest.mark.parametrize("preset", ["seed", "pendulum"])
@pytest.mark.parametrize("deterministic", [True, False])
def test_act_matches_the_numpy_reference(preset, deterministic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = PPO("Pendulum-v1", presets.get(preset), seed=0)
    if agent.obs_rms is not None:
        agent.obs_rms.update(np.random.default_rng(3).normal(size=(50, 3)) * 2 + 1)
    obs = np.random.default_rng(4).normal(size=(9, 3)) * 3
    state = agent._act_rng.bit_generator.state
    actions = agent.act(obs, deterministic)
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    noise = None if deterministic else rng.standard_normal((9, agent.action_dim))
    np.testing.assert_allclose(actions, reference_act(agent, obs, noise), rtol=1e-5, atol=1e-6)


def test_small_batch_value_matches_the_batched_critic():
    agent = PPO("Pendulum-v1", presets.get("pendulum"), seed=0)
    obs = np.random.default_rng(5).normal(size=(40, 3))
    batched = agent.value(obs)  # > 16 rows: the BLAS forward
    rows = np.concatenate([agent.value(obs[i : i + 8]) for i in range(0, 40, 8)])
    np.testing.assert_allclose(rows, batched, rtol=1e-5, atol=1e-6)
    assert agent.value(obs[0]).shape == (1,)
