"""Critic: its forwards (BLAS and compiled rows) against the NumPy reference (npppo.inference), and its
backward against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_every_tensor_checked, kink_free_rows, randomise_biases, spread_indices

from npppo.critic import Critic
from npppo.inference import mlp_forward
from npppo.nn.layers import ROWS_FORWARD_MAX

TOLERANCES = {"float32": {"rtol": 2e-5, "atol": 2e-6}, "float64": {"rtol": 1e-12, "atol": 1e-13}}


@pytest.mark.parametrize("rows", [1, 7, ROWS_FORWARD_MAX + 1])  # the compiled rows, then BLAS
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_value_matches_the_numpy_reference(dtype, rows, tiny_config):
    critic = Critic(5, tiny_config(critic_activation="elu", elu_alpha=0.6, dtype=dtype), np.random.default_rng(0))
    randomise_biases(critic, np.random.default_rng(1))
    assert critic.layers["activation"].tolist() == ["elu", "elu", "identity"]  # a linear output
    obs = np.random.default_rng(2).normal(size=(rows, 5)).astype(dtype)
    reference = mlp_forward(critic.params.astype(np.float64), critic.layers, obs.astype(np.float64))[:, 0]
    for values in (critic.value(obs), critic.value_rows(obs)):
        assert values.shape == (rows,) and values.dtype == np.dtype(dtype)
        np.testing.assert_allclose(values, reference, **TOLERANCES[dtype])
    values = critic.value(obs)
    critic.value(2.0 * obs)
    np.testing.assert_allclose(values, reference, **TOLERANCES[dtype])  # a fresh array, not a layer buffer


@pytest.mark.parametrize("rows", [1, ROWS_FORWARD_MAX, ROWS_FORWARD_MAX + 1, 40])
def test_value_takes_the_compiled_rows_up_to_rows_forward_max_and_blas_above(rows, tiny_config, monkeypatch):
    critic = Critic(5, tiny_config(critic_sizes=[64, 64], dtype="float32"), np.random.default_rng(0))
    randomise_biases(critic, np.random.default_rng(1))
    obs = np.random.default_rng(2).normal(size=(rows, 5)).astype(np.float32)
    by_rows, by_blas = critic.value_rows(obs), critic.forward(obs).copy()
    # which path ran is recorded, not read off rounding (on some BLAS kernels the two agree bit for bit)
    taken = []
    for name in ("value_rows", "forward"):
        method = getattr(critic, name)
        monkeypatch.setattr(critic, name, lambda x, method=method, name=name: taken.append(name) or method(x))
    values = critic.value(obs)
    assert taken == (["value_rows"] if rows <= ROWS_FORWARD_MAX else ["forward"])
    np.testing.assert_array_equal(values, by_rows if rows <= ROWS_FORWARD_MAX else by_blas)
    # contiguous (batch,) arrays: a strided view would make each kernel it meets compile an 'A'-layout version
    assert values.flags.c_contiguous and by_rows.flags.c_contiguous


@pytest.mark.parametrize(("hidden_sizes", "subset"), [([8, 7, 6], False), ([100, 100, 100, 80, 40], True)])
def test_critic_gradients_match_finite_differences(hidden_sizes, subset, tiny_config, checked_gradient):
    critic = Critic(5, tiny_config(critic_sizes=hidden_sizes, dtype="float64"), np.random.default_rng(0))
    randomise_biases(critic, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    obs = kink_free_rows(critic, critic.forward, rng.normal(size=(64, 5)), 8)
    weights = rng.normal(size=8)

    def loss() -> float:
        return float(weights @ critic.forward(obs))

    critic.forward(obs)
    critic.grad[...] = np.nan  # the backward must write every entry
    critic.backward(weights)
    grad = critic.grad.copy()
    indices = spread_indices(critic, np.random.default_rng(3), total=200) if subset else None
    result = checked_gradient(loss, critic.params, grad, indices)
    assert result.max_rel_error < 1e-6, result
    assert_every_tensor_checked(critic, result)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_value_is_the_forward_written_out_from_the_named_parameters(activation, tiny_config):
    """Independent of npppo.inference: the layers in named order, a linear output."""
    critic = Critic(4, tiny_config(critic_sizes=[6, 5], critic_activation=activation, dtype="float64"),
                    np.random.default_rng(0))
    assert critic.obs_dim == 4
    params = critic.named_params()
    rng = np.random.default_rng(1)
    for view in params.values():
        view[...] = rng.normal(size=view.shape)
    obs = rng.normal(size=(20, 4))
    f = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh}[activation]
    weights = [name for name in params if name.endswith(".weight")]
    x = obs
    for k, name in enumerate(weights):
        x = x @ params[name] + params[name.replace("weight", "bias")]
        x = f(x) if k < len(weights) - 1 else x
    np.testing.assert_allclose(critic.value(obs), x[:, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(critic.value_rows(obs[:3]), x[:3, 0], rtol=1e-12, atol=1e-14)
