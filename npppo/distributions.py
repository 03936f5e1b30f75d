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

The compiled forms below are of one coordinate; :func:`act_coordinate` and :func:`add_log_prob` are the
one compiled description of acting (the rollout's kernels and batch-1 acting call the first, the
rollout and the fused actor loss the second); their NumPy references, summed
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
def act_coordinate(mu, sigma, noise, sampled, low, high, squash):
    """(u, action) of one coordinate: ``u = mu + sigma * noise`` in float64 (``u = mu`` unless
    ``sampled``; sigma and noise are then not read), and the ``action`` the environment receives: u
    clipped to [low, high], or with ``squash`` tanh-squashed into them (:func:`tanh_squash_scalar`).

    Scalars, not a row's views or the bounds array: each array argument of an inlined function can
    cost the caller a reference count's increment and decrement per coordinate (docs/performance.md)."""
    u = np.float64(mu)
    if sampled:
        u += np.float64(sigma) * noise
    return u, tanh_squash_scalar(u, low, high) if squash else min(max(u, low), high)


@njit(inline="always", error_model="numpy")
def add_log_prob(total, u, mu, sigma, low, high, squash):
    """``total`` plus one coordinate's term of log pi(u): log N(u; mu, sigma^2) in float64 whatever the
    policy's dtype (docs/math.md §5), then with ``squash`` less log|da/du| of the squash into [low, high].
    A row's log pi is this summed over the coordinates in order, by every kernel alike (the same bits)."""
    total += normal_log_density(np.float64(u), np.float64(mu), np.float64(sigma))
    if squash:
        total -= tanh_log_det_scalar(u, low, high)
    return total
