"""The diagonal Gaussian: kernels against NumPy references, derivatives against finite differences."""

import numpy as np
import pytest

from npppo.distributions import (
    entropy,
    log_prob,
    reference_entropy,
    reference_log_prob,
    reference_log_prob_grad,
    sample,
)
from npppo.gradcheck import gradcheck


def gaussian(seed=0, batch=6, dims=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(batch, dims)).astype(dtype)
    sigma = rng.uniform(0.2, 2.0, size=(batch, dims)).astype(dtype)
    actions = (mu + sigma * rng.normal(size=(batch, dims))).astype(dtype)
    return actions, mu, sigma


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_prob_and_entropy_kernels_match_reference(dtype):
    actions, mu, sigma = gaussian(dtype=dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(log_prob(actions, mu, sigma), reference_log_prob(actions, mu, sigma), rtol=tol)
    np.testing.assert_allclose(entropy(sigma), reference_entropy(sigma), rtol=tol)


def test_log_prob_matches_scalar_normal_density():
    # a 1-D standard normal at 0: log(1 / sqrt(2 pi))
    got = log_prob(np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1)))
    assert got[0] == pytest.approx(-0.5 * np.log(2 * np.pi), rel=1e-14)


@pytest.mark.parametrize("wrt", ["mu", "sigma"])
def test_log_prob_gradient_matches_finite_differences(wrt):
    actions, mu, sigma = gaussian(seed=1)
    x = mu if wrt == "mu" else sigma
    weights = np.random.default_rng(2).normal(size=actions.shape[0])
    grad_mu, grad_sigma = reference_log_prob_grad(actions, mu, sigma)
    analytic = (grad_mu if wrt == "mu" else grad_sigma) * weights[:, None]
    result = gradcheck(lambda: float(weights @ log_prob(actions, mu, sigma)), x, analytic)
    assert result.max_rel_error < 1e-6, result


def test_entropy_gradient_is_one_over_sigma():
    _, _, sigma = gaussian(seed=3)
    result = gradcheck(lambda: float(entropy(sigma).sum()), sigma, 1.0 / sigma)
    assert result.max_rel_error < 1e-6, result


def test_sample_has_the_right_moments():
    mu = np.full((200_000, 1), 1.5)
    sigma = np.full((200_000, 1), 0.3)
    draws = sample(mu, sigma, np.random.default_rng(0))
    assert abs(draws.mean() - 1.5) < 0.005
    assert abs(draws.std() - 0.3) < 0.005
