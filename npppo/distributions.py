"""The diagonal Gaussian policy distribution: log-density, entropy and their derivatives.

For an action ``a (D,)`` under mean ``mu (D,)`` and standard deviation ``sigma (D,)``::

    log pi(a) = sum_d [ -(a_d - mu_d)^2 / (2 sigma_d^2) - log sigma_d - log(2 pi) / 2 ]
    H         = sum_d [ 1/2 + log(2 pi) / 2 + log sigma_d ]

    d log pi / d mu_d    = (a_d - mu_d) / sigma_d^2
    d log pi / d sigma_d = (a_d - mu_d)^2 / sigma_d^3 - 1 / sigma_d
    d H / d sigma_d      = 1 / sigma_d,     d H / d mu_d = 0

The compiled scalar forms below serve the rollout's sampling kernel and the fused actor loss
(:mod:`npppo.losses`, which holds the derivatives); their NumPy references are
:func:`npppo.inference.gaussian_log_prob` and :func:`npppo.inference.gaussian_entropy`. They use
NumPy's error model: a division by sigma = 0 gives inf, which the trainer reports as a non-finite
loss, instead of raising ZeroDivisionError from inside compiled code.
"""

from __future__ import annotations

import math

from npppo.inference import HALF_LOG_2PI
from npppo.jit import njit

HALF_LOG_2PI = float(HALF_LOG_2PI)


@njit(inline="always", error_model="numpy")
def normal_log_density(action, mean, std):
    """log N(action; mean, std^2) of one coordinate, in the precision of its arguments."""
    z = (action - mean) / std
    return -0.5 * z * z - math.log(std) - HALF_LOG_2PI


@njit(inline="always", error_model="numpy")
def normal_entropy(std):
    """H(N(mean, std^2)) = 1/2 + log(2 pi)/2 + log std, of one coordinate."""
    return 0.5 + HALF_LOG_2PI + math.log(std)
