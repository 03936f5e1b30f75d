"""Activations: the compiled kernels against the NumPy references and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from npppo.nn.activations import Activation

ACTIVATIONS = [
    Activation("identity"),
    Activation("relu"),
    Activation("elu"),
    Activation("elu", alpha=0.3),
    Activation("softplus"),
    Activation("tanh"),
]
IDS = [f"{a.name}-{a.alpha}" if a.name == "elu" else a.name for a in ACTIVATIONS]
TOLERANCES = {np.float32: {"rtol": 2e-6, "atol": 3e-7}, np.float64: {"rtol": 1e-13, "atol": 1e-15}}


def _points(dtype, rng) -> np.ndarray:
    """A (6, 50) grid of pre-activations: ordinary values, exact zeros and far tails."""
    z = rng.normal(0.0, 3.0, size=(6, 50))
    z[0, :5] = [0.0, -0.0, 1e-8, -1e-8, 0.5]
    z[1, :4] = [60.0, -60.0, 30.0, -30.0]
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=IDS)
def test_kernel_value_matches_reference(activation, dtype):
    z = _points(dtype, np.random.default_rng(0))
    y = activation.forward(z)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, activation.reference(z), **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=IDS)
def test_kernel_derivative_matches_reference(activation, dtype):
    z = _points(dtype, np.random.default_rng(1))
    derivative = activation.backward(z, np.ones_like(z))
    assert derivative.dtype == dtype
    np.testing.assert_allclose(derivative, activation.reference_derivative(z), **TOLERANCES[dtype])


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=IDS)
def test_backward_matches_finite_differences(activation, checked_gradient):
    rng = np.random.default_rng(2)
    z = rng.normal(0.0, 2.0, size=(5, 8))
    z[np.abs(z) < 1e-2] += 0.1  # keep the stencil (±2e-4) away from the kinks of relu and elu
    weights = rng.normal(size=z.shape)
    analytic = activation.backward(z, weights)  # d/dz sum(w * f(z)) = w * f'(z)
    result = checked_gradient(lambda: float(np.sum(weights * activation.forward(z))), z, analytic)
    assert result.max_rel_error < 1e-6, result


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_does_not_overflow_at_large_inputs(dtype):
    softplus = Activation("softplus")
    z = np.array([[-1000.0, -80.0, 80.0, 1000.0]], dtype=dtype)
    with np.errstate(all="raise"):
        y = softplus.forward(z)
        derivative = softplus.backward(z, np.ones_like(z))
    np.testing.assert_allclose(y, [[0.0, np.exp(-80.0), 80.0, 1000.0]], rtol=1e-6, atol=0)
    np.testing.assert_allclose(derivative, [[0.0, np.exp(-80.0), 1.0, 1.0]], rtol=1e-6, atol=0)


def test_elu_alpha_sets_the_negative_saturation():
    z = np.array([[-50.0, -1.0, 2.0]])
    np.testing.assert_allclose(Activation("elu", alpha=0.3).forward(z), [[-0.3, 0.3 * np.expm1(-1.0), 2.0]])


def test_unknown_activation_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        Activation("gelu")
