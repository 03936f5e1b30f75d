"""The Gaussian's compiled scalar log-density and entropy against the NumPy references
(npppo.inference) and the closed form. Their derivatives live in the fused actor loss
(tests/test_losses.py checks them against finite differences)."""

import math

import numpy as np
import pytest

from npppo.distributions import normal_entropy, normal_log_density
from npppo.inference import gaussian_entropy, gaussian_log_prob


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


def test_zero_std_gives_a_non_finite_value_not_an_exception():
    # NumPy's error model: the trainer then reports a non-finite loss (a clear TrainingError)
    assert not math.isfinite(normal_log_density(0.5, 0.0, 0.0))
    assert normal_entropy(0.0) == -math.inf
