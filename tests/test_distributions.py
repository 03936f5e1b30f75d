"""The Gaussian's compiled scalar log-density and entropy against the NumPy references
(npppo.inference) and the closed form, and their derivatives against finite differences (the fused
actor loss that uses them is checked the same way in tests/test_losses.py)."""

import math

import numpy as np
import pytest

from npppo.distributions import (
    normal_entropy,
    normal_entropy_backward,
    normal_log_density,
    normal_log_density_backward,
    tanh_log_det_scalar,
    tanh_squash_scalar,
)
from npppo.inference import gaussian_entropy, gaussian_log_prob
from npppo.inference import tanh_log_det as reference_log_det
from npppo.inference import tanh_squash as reference_squash


def gaussian(seed=0, batch=6, dims=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(batch, dims)).astype(dtype)
    sigma = rng.uniform(0.2, 2.0, size=(batch, dims)).astype(dtype)
    actions = (mu + sigma * rng.normal(size=(batch, dims))).astype(dtype)
    return actions, mu, sigma


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_summed_over_dimensions_match_the_references(dtype):
    actions, mu, sigma = gaussian(dtype=dtype)
    log_prob = np.array([sum(normal_log_density(a, m, s) for a, m, s in zip(*row, strict=True))
                         for row in zip(actions, mu, sigma, strict=True)])
    entropy = np.array([sum(normal_entropy(s) for s in row) for row in sigma])
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(log_prob, gaussian_log_prob(actions, mu, sigma), rtol=tol)
    np.testing.assert_allclose(entropy, gaussian_entropy(sigma), rtol=tol)


@pytest.mark.parametrize(("action", "mean", "std"), [(0.0, 0.0, 1.0), (1.3, -0.4, 0.7), (-2.0, 0.5, 2.5)])
def test_log_density_is_the_log_of_the_normal_density(action, mean, std):
    density = math.exp(-((action - mean) ** 2) / (2 * std**2)) / (std * math.sqrt(2 * math.pi))
    assert normal_log_density(action, mean, std) == pytest.approx(math.log(density), rel=1e-14)


@pytest.mark.parametrize("std", [0.1, 1.0, 3.0])
def test_entropy_is_half_log_two_pi_e_variance(std):
    assert normal_entropy(std) == pytest.approx(0.5 * math.log(2 * math.pi * math.e * std**2), rel=1e-14)


@pytest.mark.parametrize(("action", "mean", "std"), [(0.0, 0.0, 1.0), (1.3, -0.4, 0.7), (-2.0, 0.5, 1.5)])
def test_derivatives_match_central_differences(action, mean, std):
    step, grad = 1e-6, 0.3  # grad: dL/d(the value), passed through by the chain rule
    from_mean, from_std = normal_log_density_backward(action, mean, std, grad)
    numeric_mean = (normal_log_density(action, mean + step, std) - normal_log_density(action, mean - step, std))
    numeric_std = (normal_log_density(action, mean, std + step) - normal_log_density(action, mean, std - step))
    assert from_mean == pytest.approx(grad * numeric_mean / (2 * step), rel=1e-7)
    assert from_std == pytest.approx(grad * numeric_std / (2 * step), rel=1e-7)
    numeric_entropy = (normal_entropy(std + step) - normal_entropy(std - step)) / (2 * step)
    assert normal_entropy_backward(std, grad) == pytest.approx(grad * numeric_entropy, rel=1e-7)


def test_zero_std_gives_a_non_finite_value_not_an_exception():
    # NumPy's error model: the trainer then reports a non-finite loss (a clear TrainingError)
    assert not math.isfinite(normal_log_density(0.5, 0.0, 0.0))
    assert normal_entropy(0.0) == -math.inf


# ---------------------------------------------------------------- the tanh-squashed Gaussian

LOW, HIGH = np.array([-1.0, 0.0, -3.0]), np.array([1.0, 2.0, 5.0])


def test_squash_kernels_match_the_references():
    u = np.array([-30.0, -4.0, -0.3, 0.0, 0.7, 5.0, 30.0])[:, None] * np.ones(3)
    kernel_squash = np.array([[tanh_squash_scalar(x, lo, hi) for x, lo, hi in zip(row, LOW, HIGH, strict=True)]
                              for row in u])
    kernel_log_det = np.array([sum(tanh_log_det_scalar(x, lo, hi) for x, lo, hi in zip(row, LOW, HIGH, strict=True))
                               for row in u])
    np.testing.assert_allclose(kernel_squash, reference_squash(u, LOW, HIGH), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(kernel_log_det, reference_log_det(u, LOW, HIGH), rtol=1e-14)
    assert np.all((kernel_squash >= LOW) & (kernel_squash <= HIGH))
    np.testing.assert_array_equal(kernel_squash[0], LOW)
    np.testing.assert_array_equal(kernel_squash[-1], HIGH)


@pytest.mark.parametrize("u", [-8.0, -1.5, -0.2, 0.0, 0.4, 2.0, 9.0])
def test_stable_log_det_is_the_log_of_the_squash_derivative(u):
    low, high = -3.0, 5.0
    half_range = (high - low) / 2
    exact = math.log(half_range * (1.0 - math.tanh(u) ** 2))  # fine in float64 for |u| <= 9
    assert tanh_log_det_scalar(u, low, high) == pytest.approx(exact, rel=1e-9)
    step = 1e-6  # and it is the log of the squash's own derivative
    numeric = (tanh_squash_scalar(u + step, low, high) - tanh_squash_scalar(u - step, low, high)) / (2 * step)
    if numeric > 1e-6:
        assert math.log(numeric) == pytest.approx(exact, rel=1e-5, abs=1e-6)


def test_log_det_stays_finite_where_the_naive_form_fails():
    # 1 - tanh(u)^2 rounds to 0 for |u| > ~19: the naive log gives -inf, the stable form -2|u| + 2 log 2
    assert 1.0 - math.tanh(25.0) ** 2 == 0.0
    for u in (-25.0, 25.0, 400.0):
        assert tanh_log_det_scalar(u, -1.0, 1.0) == pytest.approx(2 * math.log(2) - 2 * abs(u), rel=1e-12)


def test_squashed_density_integrates_to_one():
    # the density of a = squash(u) is N(u; mu, sigma) / |da/du|: over a grid of a it integrates to 1
    mu, sigma, low, high = 0.8, 0.9, -1.0, 3.0
    a = np.linspace(low, high, 400_001)[1:-1]
    u = np.arctanh(2 * (a - low) / (high - low) - 1)
    log_density = gaussian_log_prob(u[:, None], mu, sigma) - reference_log_det(u[:, None], low, high)
    assert np.trapezoid(np.exp(log_density), a) == pytest.approx(1.0, abs=1e-4)


def test_squashed_log_prob_gradient_matches_finite_differences(checked_gradient):
    # log pi(a) = log N(u; mu, sigma) - log|da/du|: d/dmu = (u - mu)/sigma^2, d/dsigma = (u - mu)^2/sigma^3 - 1/sigma
    # (the correction depends on u alone), checked against finite differences of the squashed log-density
    u, mu, sigma = gaussian(seed=4, batch=5, dims=3)
    u = u * 3.0  # into tanh's saturation as well
    params = np.concatenate([mu.ravel(), sigma.ravel()])

    def log_prob_sum() -> float:
        m, s = params[: mu.size].reshape(mu.shape), params[mu.size :].reshape(sigma.shape)
        return float(np.sum(gaussian_log_prob(u, m, s) - reference_log_det(u, LOW, HIGH)))

    analytic = np.concatenate([((u - mu) / sigma**2).ravel(), ((u - mu) ** 2 / sigma**3 - 1 / sigma).ravel()])
    result = checked_gradient(log_prob_sum, params, analytic)
    assert result.max_rel_error < 1e-7, result
