"""Activations: the compiled kernels against the NumPy references (npppo.inference.ACTIVATIONS) and
against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from npppo.inference import ACTIVATIONS
from npppo.nn.activations import (
    CODES,
    EXPM1_CONSTANTS,
    EXPM1_CONSTANTS_FLOAT32,
    EXPM1_DOUBLINGS,
    EXPM1_DOUBLINGS_FLOAT32,
    activate_vector,
    activation_backward,
    bias_activation_forward,
    expm1_nonpositive,
)

CASES = [("identity", 1.0), ("relu", 1.0), ("elu", 1.0), ("elu", 0.3), ("softplus", 1.0), ("tanh", 1.0)]
IDS = [name if name != "elu" else f"elu-{alpha}" for name, alpha in CASES]
TOLERANCES = {np.float32: {"rtol": 2e-6, "atol": 3e-7}, np.float64: {"rtol": 1e-13, "atol": 1e-15}}


def forward(name: str, alpha: float, z: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The fused kernel: (z + bias, f(z + bias)) for z (batch, n), without touching z."""
    pre = z.copy()
    out = np.empty_like(z)
    bias = np.zeros(z.shape[1], z.dtype) if bias is None else bias
    bias_activation_forward(pre, bias, CODES[name], alpha, out)
    return pre, out


def backward(name: str, alpha: float, z: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """The chain-rule kernel: grad_out * f'(z)."""
    _, out = forward(name, alpha, z)
    grad_pre = np.empty_like(z)
    grad_bias = np.empty(z.shape[1], z.dtype)
    activation_backward(z, out, grad_out, CODES[name], alpha, grad_pre, grad_bias)
    np.testing.assert_array_equal(grad_bias, np.sum(grad_pre, axis=0))  # the same sums, in NumPy's order
    return grad_pre


def _points(dtype, rng) -> np.ndarray:
    """A (6, 50) grid of pre-activations: ordinary values, exact zeros and far tails."""
    z = rng.normal(0.0, 3.0, size=(6, 50))
    z[0, :5] = [0.0, -0.0, 1e-8, -1e-8, 0.5]
    z[1, :4] = [60.0, -60.0, 30.0, -30.0]
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "alpha"), CASES, ids=IDS)
def test_forward_kernel_adds_the_bias_then_matches_the_reference(name, alpha, dtype):
    rng = np.random.default_rng(0)
    z = _points(dtype, rng)
    bias = rng.normal(size=z.shape[1]).astype(dtype)
    pre, y = forward(name, alpha, z, bias)
    assert y.dtype == dtype
    np.testing.assert_array_equal(pre, z + bias)  # in place: the backward needs z = xW + b
    np.testing.assert_allclose(y, ACTIVATIONS[name][0](pre, alpha), **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "alpha"), CASES, ids=IDS)
def test_backward_kernel_matches_the_reference_derivative(name, alpha, dtype):
    z = _points(dtype, np.random.default_rng(1))
    derivative = backward(name, alpha, z, np.ones_like(z))
    assert derivative.dtype == dtype
    np.testing.assert_allclose(derivative, ACTIVATIONS[name][1](z, alpha), **TOLERANCES[dtype])


@njit(cache=True)
def _activate_rows(code, z, alpha, out):
    for i in range(z.shape[0]):
        activate_vector(code, z[i], alpha, out[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_kernel_matches_the_reference(dtype):
    # activate_vector is the row-by-row forward's activation step; one compiled call covers every code
    z = _points(dtype, np.random.default_rng(2))
    for name, alpha in CASES:
        out = np.empty_like(z)
        _activate_rows(CODES[name], z, alpha, out)
        np.testing.assert_allclose(out, ACTIVATIONS[name][0](z, alpha), **TOLERANCES[dtype], err_msg=name)


@pytest.mark.parametrize(("name", "alpha"), CASES, ids=IDS)
def test_backward_matches_finite_differences(name, alpha, checked_gradient):
    rng = np.random.default_rng(2)
    z = rng.normal(0.0, 2.0, size=(5, 8))
    z[np.abs(z) < 1e-2] += 0.1  # keep the stencil (±2e-4) away from the kinks of relu and elu
    weights = rng.normal(size=z.shape)
    analytic = backward(name, alpha, z, weights)  # d/dz sum(w * f(z)) = w * f'(z)
    result = checked_gradient(lambda: float(np.sum(weights * forward(name, alpha, z)[1])), z, analytic)
    assert result.max_rel_error < 1e-6, result


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_does_not_overflow_at_large_inputs(dtype):
    z = np.array([[-1000.0, -80.0, 80.0, 1000.0]], dtype=dtype)
    with np.errstate(all="raise"):
        _, y = forward("softplus", 1.0, z)
        derivative = backward("softplus", 1.0, z, np.ones_like(z))
    np.testing.assert_allclose(y, [[0.0, np.exp(-80.0), 80.0, 1000.0]], rtol=1e-6, atol=0)
    np.testing.assert_allclose(derivative, [[0.0, np.exp(-80.0), 1.0, 1.0]], rtol=1e-6, atol=0)


def test_elu_alpha_sets_the_negative_saturation():
    z = np.array([[-50.0, -1.0, 2.0]])
    np.testing.assert_allclose(forward("elu", 0.3, z)[1], [[-0.3, 0.3 * np.expm1(-1.0), 2.0]])


# ---------------------------------------------------------------- the vectorisable expm1 of ELU and tanh


@njit(cache=True)
def _expm1_all(z, k, doublings, out):
    for i in range(z.shape[0]):
        out[i] = expm1_nonpositive(z[i], k, doublings)


def test_expm1_nonpositive_matches_numpy_to_a_few_ulp():
    z = -np.concatenate([np.logspace(-300, 2, 20_000), np.linspace(0, 50, 20_001)])
    out = np.empty_like(z)
    _expm1_all(z, EXPM1_CONSTANTS, EXPM1_DOUBLINGS, out)
    np.testing.assert_allclose(out, np.expm1(z), rtol=2e-15, atol=0)


def test_expm1_nonpositive_in_float32_matches_numpy():
    z = -np.linspace(0, 20, 5_001).astype(np.float32)
    out = np.empty_like(z)
    _expm1_all(z, EXPM1_CONSTANTS_FLOAT32, EXPM1_DOUBLINGS_FLOAT32, out)
    np.testing.assert_allclose(out, np.expm1(z.astype(np.float64)), rtol=5e-7, atol=0)


def test_expm1_nonpositive_saturates_at_minus_one_far_below_zero():
    out = np.empty(3)
    _expm1_all(np.array([-40.0, -745.0, -1e300]), EXPM1_CONSTANTS, EXPM1_DOUBLINGS, out)
    np.testing.assert_array_equal(out, [np.expm1(-40.0), -1.0, -1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_elu_is_within_four_ulp_of_expm1_rounded_to_the_dtype_and_keeps_nan(dtype):
    z = -np.concatenate([np.logspace(-30, 1.5, 4_000), np.linspace(0, 20, 4_001)]).astype(dtype)[None, :]
    _, y = forward("elu", 1.0, z)
    exact = np.expm1(z.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    assert np.max(np.abs(y - exact) / ulp) <= 4.0
    _, y = forward("elu", 1.0, np.array([[np.nan, -np.inf, np.inf]], dtype))
    assert np.isnan(y[0, 0]) and abs(y[0, 1] + 1.0) <= 2 * np.finfo(dtype).epsneg and y[0, 2] == np.inf
