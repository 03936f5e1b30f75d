"""The diagonal Gaussian policy distribution: log-density, entropy and their derivatives.

For an action ``a (D,)`` under mean ``mu (D,)`` and standard deviation ``sigma (D,)``::

    log pi(a) = sum_d [ -(a_d - mu_d)^2 / (2 sigma_d^2) - log sigma_d - log(2 pi) / 2 ]
    H         = sum_d [ 1/2 + log(2 pi) / 2 + log sigma_d ]

    d log pi / d mu_d    = (a_d - mu_d) / sigma_d^2
    d log pi / d sigma_d = (a_d - mu_d)^2 / sigma_d^3 - 1 / sigma_d
    d H / d sigma_d      = 1 / sigma_d,     d H / d mu_d = 0

With ``action_squash="tanh"`` the environment receives ``a = low + (tanh(u) + 1)(high - low)/2`` of
the Gaussian sample u (which the batch stores), and::

    log pi(a) = log N(u; mu, sigma^2) - sum_d log |da_d/du_d|,
    log |da/du| = log(1 - tanh(u)^2) + log((high - low) / 2) = 2 (log 2 - u - softplus(-2u)) + log((high - low)/2)

The correction depends on u alone, not on mu or sigma: the derivatives above are unchanged, and it
cancels in PPO's ratio (docs/math.md §4). The entropy term stays the Gaussian's H (of u).

The compiled forms below are of one coordinate (``*_scalar``, :func:`normal_log_density`) or of one
row (:func:`act_row`, :func:`log_prob_row`: the one compiled description of acting, which the
rollout's kernels, batch-1 acting and the fused actor loss all call); their NumPy references, summed
over a batch's rows, are :func:`npppo.inference.gaussian_log_prob`, :func:`npppo.inference.gaussian_entropy`,
:func:`npppo.inference.tanh_squash` and :func:`npppo.inference.tanh_log_det`. They use NumPy's error
model: a division by sigma = 0 gives inf, which the trainer reports as a non-finite loss, instead of
raising ZeroDivisionError from inside compiled code.
"""

from __future__ import annotations

import math

import numpy as np

from npppo.inference import HALF_LOG_2PI, LOG_2
from npppo.jit import njit

HALF_LOG_2PI = float(HALF_LOG_2PI)
LOG_2 = float(LOG_2)


@njit(inline="always", error_model="numpy")
def normal_log_density(action, mean, std):
    """log N(action; mean, std^2) of one coordinate, in the precision of its arguments."""
    z = (action - mean) / std
    return -0.5 * z * z - math.log(std) - HALF_LOG_2PI


@njit(inline="always", error_model="numpy")
def normal_log_density_backward(action, mean, std, grad):
    """(dL/dmean, dL/dstd) from ``grad`` = dL/d :func:`normal_log_density`: grad (a - mean) / std^2 and
    grad ((a - mean)^2 / std^3 - 1 / std)."""
    diff = action - mean
    inv_std = 1.0 / std
    inv_var = inv_std * inv_std
    return grad * diff * inv_var, grad * (diff * diff * inv_var * inv_std - inv_std)


@njit(inline="always", error_model="numpy")
def normal_entropy(std):
    """H(N(mean, std^2)) = 1/2 + log(2 pi)/2 + log std, of one coordinate."""
    return 0.5 + HALF_LOG_2PI + math.log(std)


@njit(inline="always", error_model="numpy")
def normal_entropy_backward(std, grad):
    """dL/dstd from ``grad`` = dL/d :func:`normal_entropy`: grad / std (as grad * (1 / std))."""
    return grad * (1.0 / std)


@njit(inline="always", error_model="numpy")
def tanh_squash_scalar(u, low, high):
    """low + (tanh(u) + 1)(high - low)/2 of one coordinate, clipped to [low, high] against rounding."""
    return min(max(low + (math.tanh(u) + 1.0) * (0.5 * (high - low)), low), high)


@njit(inline="always", error_model="numpy")
def tanh_log_det_scalar(u, low, high):
    """log |da/du| of :func:`tanh_squash_scalar` for one coordinate:
    2 (log 2 - u - softplus(-2u)) + log((high - low)/2)."""
    x = -2.0 * u
    softplus = max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    return 2.0 * (LOG_2 - u - softplus) + math.log(0.5 * (high - low))


@njit(inline="always", error_model="numpy")
def act_row(mu, sigma, noise, bounds, squash, u, action):
    """One row's action: ``u = mu + sigma * noise`` in float64 (``u = mu`` for an empty noise, sigma
    then unread), and ``action``, what the environment receives: u clipped to [bounds[0], bounds[1]],
    or with ``squash`` tanh-squashed into them (:func:`tanh_squash_scalar`).

    mu, sigma (D,) in the policy's dtype; noise (D,) or (0,) float64; bounds (2, D); u, action (D,) float64.
    """
    sampled = noise.shape[0] > 0
    for d in range(mu.shape[0]):
        x = np.float64(mu[d])
        if sampled:
            x += np.float64(sigma[d]) * noise[d]
        u[d] = x
        low, high = bounds[0, d], bounds[1, d]
        action[d] = tanh_squash_scalar(x, low, high) if squash else min(max(x, low), high)


@njit(inline="always", error_model="numpy")
def log_prob_row(u, mu, sigma, bounds, squash):
    """log pi of one row's sample u (D,) under N(mu, sigma^2), in float64 whatever the policy's dtype
    (docs/math.md §5); with ``squash`` that of the squashed action (less log|da/du|, bounds (2, D))."""
    total = 0.0
    for d in range(u.shape[0]):
        total += normal_log_density(np.float64(u[d]), np.float64(mu[d]), np.float64(sigma[d]))
        if squash:
            total -= tanh_log_det_scalar(u[d], bounds[0, d], bounds[1, d])
    return total
