"""The diagonal Gaussian policy distribution: log-probability, entropy and their derivatives.

For an action ``a (D,)`` under mean ``mu (D,)`` and standard deviation ``sigma (D,)``::

    log pi(a) = sum_d [ -(a_d - mu_d)^2 / (2 sigma_d^2) - log sigma_d - log(2 pi) / 2 ]
    H         = sum_d [ 1/2 + log(2 pi) / 2 + log sigma_d ]

    d log pi / d mu_d    = (a_d - mu_d) / sigma_d^2
    d log pi / d sigma_d = (a_d - mu_d)^2 / sigma_d^3 - 1 / sigma_d
    d H / d sigma_d      = 1 / sigma_d,     d H / d mu_d = 0

The compiled kernels here are used by sampling and rollouts; the actor loss fuses the same formulas
into one pass (:mod:`npppo.losses`). The ``reference_*`` functions are the plain NumPy versions.

The kernels use NumPy's error model: a division by sigma = 0 gives inf, which the trainer reports
as a non-finite loss, instead of raising ZeroDivisionError from inside compiled code.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=True, inline="always", error_model="numpy")
def normal_log_density(action, mean, std):
    """log N(action; mean, std^2) of one coordinate, computed in float64 whatever the inputs' dtype."""
    a, m, s = np.float64(action), np.float64(mean), np.float64(std)
    z = (a - m) / s
    return -0.5 * z * z - math.log(s) - HALF_LOG_2PI


@njit(cache=True, error_model="numpy")
def gaussian_log_prob(actions, mu, sigma, out):
    """out[i] = log pi(actions[i]); actions, mu, sigma (batch, D), out (batch,)."""
    for i in range(actions.shape[0]):
        total = 0.0
        for d in range(actions.shape[1]):
            total += normal_log_density(actions[i, d], mu[i, d], sigma[i, d])
        out[i] = total


@njit(cache=True, error_model="numpy")
def gaussian_entropy(sigma, out):
    """out[i] = H(N(mu_i, diag(sigma_i^2))) = sum_d (1/2 + log(2 pi)/2 + log sigma_id); sigma (batch, D)."""
    for i in range(sigma.shape[0]):
        total = 0.0
        for d in range(sigma.shape[1]):
            total += 0.5 + HALF_LOG_2PI + math.log(sigma[i, d])
        out[i] = total


def log_prob(actions: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """log pi(a | mu, sigma) summed over action dimensions: (batch, D) -> (batch,)."""
    out = np.empty(actions.shape[0], dtype=np.result_type(mu, sigma))
    gaussian_log_prob(np.ascontiguousarray(actions, out.dtype), mu, sigma, out)
    return out


def entropy(sigma: np.ndarray) -> np.ndarray:
    """Differential entropy summed over action dimensions: (batch, D) -> (batch,)."""
    out = np.empty(sigma.shape[0], dtype=sigma.dtype)
    gaussian_entropy(sigma, out)
    return out


def sample(mu: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """a = mu + sigma * eps, eps ~ N(0, I); (batch, D)."""
    return mu + sigma * rng.standard_normal(mu.shape).astype(mu.dtype, copy=False)


def reference_log_prob(actions, mu, sigma):
    z = (actions - mu) / sigma
    return np.sum(-0.5 * z**2 - np.log(sigma) - HALF_LOG_2PI, axis=-1)


def reference_entropy(sigma):
    return np.sum(0.5 + HALF_LOG_2PI + np.log(sigma), axis=-1)


def reference_log_prob_grad(actions, mu, sigma):
    """(d log pi / d mu, d log pi / d sigma), each (batch, D)."""
    diff = actions - mu
    return diff / sigma**2, diff**2 / sigma**3 - 1.0 / sigma
