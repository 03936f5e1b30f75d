"""Activation functions as compiled kernels: each value beside its derivative.

The formulas' plain-NumPy references are :data:`npppo.inference.ACTIVATIONS` (the tests compare
these kernels with them); the kernels dispatch on an integer code, the activation's position in
that table, so that one compiled signature serves every activation (few signatures keep the
first-run compile time short). Layers call the two fused kernels :func:`bias_activation_forward`
and :func:`activation_backward`. Each forward loop holds one activation, the small kernel of it
(``_tanh``, ``_relu``, ...) passed in, which LLVM inlines into the loop and vectorises; the backward's
derivatives are a few operations each, so one loop's dispatch over all of them compiles cheaply.

The derivative is expressed through both the pre-activation ``z`` and the output ``y = f(z)``
because several are cheapest from ``y`` (ELU: f'(z) = y + alpha for z <= 0; tanh: 1 - y^2).

==========  ==============================  =============================================
name        f(z)                            f'(z)
==========  ==============================  =============================================
identity    z                               1
relu        max(z, 0)                       1 if z > 0 else 0
elu         z if z > 0 else a(e^z - 1)      1 if z > 0 else a e^z = y + a
softplus    log(1 + e^z)                    sigmoid(z) = 1 / (1 + e^-z)
tanh        tanh(z)                         1 - y^2
==========  ==============================  =============================================
"""

from __future__ import annotations

import math

import numpy as np

from npppo.inference import ACTIVATIONS
from npppo.jit import njit

CODES = {name: code for code, name in enumerate(ACTIVATIONS)}
IDENTITY, RELU, ELU, SOFTPLUS, TANH = (CODES[name] for name in ("identity", "relu", "elu", "softplus", "tanh"))


# expm1_nonpositive's constants: 2^-d for d doublings, the clamp, the Taylor coefficients 1/1! ...
# 1/10!, the doubling's 2, and 0; held in an array of the data's dtype, since Numba types float
# literals as float64 and would promote a float32 expression. float64: e^z - 1 is -1 to float64
# precision below -40, and 8 doublings leave |w| <= 0.157; float32: -1 to float32 precision below
# -17.5, and 3 doublings leave |w| <= 2.19, where the series to w^10 is still within float32 precision
_TAYLOR = [1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800]
EXPM1_CONSTANTS = np.array([2.0**-8, -40.0, *_TAYLOR, 2.0, 0.0])
EXPM1_DOUBLINGS = 8
EXPM1_CONSTANTS_FLOAT32 = np.array([2.0**-3, -17.5, *_TAYLOR, 2.0, 0.0], np.float32)
EXPM1_DOUBLINGS_FLOAT32 = 3


@njit(inline="always")
def expm1_nonpositive(z, k, doublings):
    """e^z - 1 for z <= 0, from + and * alone, in the dtype of ``k``: :data:`EXPM1_CONSTANTS` with
    :data:`EXPM1_DOUBLINGS` (within a few ulp of ``math.expm1``), or the float32 pair.

    ``math.expm1`` is a libm call that stops LLVM from vectorising the ELU loop (13 ns an element);
    this version vectorises. With w = z / 2^d (z clamped where e^z - 1 is -1 to the dtype's
    precision), e = expm1(w) by its Taylor series to w^10, then d doublings expm1(2w) = e (e + 2):
    no cancellation near 0, and the doublings shrink an error as e nears -1.
    """
    w = max(z, k[1]) * k[0]
    e = w * (k[2] + w * (k[3] + w * (k[4] + w * (k[5] + w * (k[6] + w * (k[7] + w * (
        k[8] + w * (k[9] + w * (k[10] + w * k[11])))))))))
    for _ in range(doublings):
        e = e * (e + k[12])
    return e


@njit(inline="always")
def _elu(z, alpha, k, doublings):
    """ELU in the dtype of ``k`` (``alpha`` given in it); the exponential is computed for every z:
    a select, not a branch, so loops over it vectorise."""
    negative = alpha * expm1_nonpositive(min(z, k[13]), k, doublings)
    return z if z > k[13] else negative


# One small kernel per activation's value, each compiled once and passed to the forward loops below:
# every loop then holds one activation (LLVM inlines it and vectorises the loop), and no loop holds a
# dispatch over all of them (which compiled each activation several times: seconds of a first run)


@njit(error_model="numpy")
def _identity(z, alpha):
    return z


@njit(error_model="numpy")
def _relu(z, alpha):
    return z if z > 0.0 else 0.0


@njit(error_model="numpy")
def _elu_float64(z, alpha):
    return _elu(z, alpha, EXPM1_CONSTANTS, EXPM1_DOUBLINGS)


@njit(error_model="numpy")
def _softplus(z, alpha):
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large |z|
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@njit(error_model="numpy")  # NumPy's error model: no zero-division branch, which kept the loops scalar
def _tanh(z, alpha):
    # tanh|z| = -e / (2 + e) with e = expm1(-2|z|): like ELU's, this vectorises where
    # math.tanh (a libm call, 20 ns an element) does not, and has no cancellation near 0
    e = expm1_nonpositive(-2.0 * abs(z), EXPM1_CONSTANTS, EXPM1_DOUBLINGS)
    magnitude = -e / (2.0 + e)
    return magnitude if z >= 0.0 else -magnitude


@njit(inline="always")
def _vector(f, z, alpha, out):
    for j in range(z.shape[0]):
        out[j] = f(z[j], alpha)


@njit(inline="always")
def activate_vector(code, z, alpha, out):
    """out[j] = f(z[j]) for vectors z, out (n,): one loop per activation, so that LLVM sees a fixed
    activation and vectorises it (the batch-1 forward's per-layer step). A float32 vector's ELU is
    computed in float32, as in :func:`bias_activation_forward`."""
    if code == ELU and z.itemsize == 4:
        alpha32 = np.float32(alpha)
        for j in range(z.shape[0]):
            out[j] = _elu(z[j], alpha32, EXPM1_CONSTANTS_FLOAT32, EXPM1_DOUBLINGS_FLOAT32)
    elif code == ELU:
        _vector(_elu_float64, z, alpha, out)
    elif code == TANH:
        _vector(_tanh, z, alpha, out)
    elif code == RELU:
        _vector(_relu, z, alpha, out)
    elif code == SOFTPLUS:
        _vector(_softplus, z, alpha, out)
    else:
        _vector(_identity, z, alpha, out)


@njit(inline="always")
def _bias_elu_rows(pre, bias, alpha, out, k, doublings):
    rows, cols = pre.shape
    for i in range(rows):
        for j in range(cols):
            z = pre[i, j] + bias[j]
            pre[i, j] = z
            out[i, j] = _elu(z, alpha, k, doublings)


@njit(fastmath={"contract"})  # fused multiply-adds in the Taylor series: fewer roundings, 1.5x faster
def _bias_elu_forward(pre, bias, alpha, out):
    """:func:`bias_activation_forward` for ELU; a float32 batch is computed in float32 with
    :data:`EXPM1_CONSTANTS_FLOAT32`: twice the SIMD lanes of float64 and 5 fewer doublings (2.7x
    faster than float32 arithmetic with the float64 constants here; within 4 ulp of float32 expm1)."""
    if pre.itemsize == 4:
        _bias_elu_rows(pre, bias, np.float32(alpha), out, EXPM1_CONSTANTS_FLOAT32, EXPM1_DOUBLINGS_FLOAT32)
    else:
        _bias_elu_rows(pre, bias, np.float64(alpha), out, EXPM1_CONSTANTS, EXPM1_DOUBLINGS)


@njit(inline="always")
def _bias_rows(pre, bias, f, alpha, out):
    rows, cols = pre.shape
    for i in range(rows):
        for j in range(cols):
            z = pre[i, j] + bias[j]
            pre[i, j] = z
            out[i, j] = f(z, alpha)


@njit(error_model="numpy")
def bias_activation_forward(pre, bias, code, alpha, out):
    """In place: ``pre += bias`` (broadcast over rows), then ``out = f(pre)``.

    pre (batch, n) holds ``x @ W`` on entry and ``z = x @ W + b`` on exit; out (batch, n) gets y.
    Each activation gets its own loop, calling that activation's kernel, so that LLVM sees no
    dispatch and vectorises; NumPy's error model removes the zero-division branch of tanh's formula,
    which also kept it scalar (docs/performance.md has the figures).
    """
    if code == ELU:
        _bias_elu_forward(pre, bias, alpha, out)
    elif code == TANH:
        _bias_rows(pre, bias, _tanh, alpha, out)
    elif code == RELU:
        _bias_rows(pre, bias, _relu, alpha, out)
    elif code == SOFTPLUS:
        _bias_rows(pre, bias, _softplus, alpha, out)
    else:
        _bias_rows(pre, bias, _identity, alpha, out)


@njit(inline="always")
def _derivative(code: int, z: float, y: float, alpha: float) -> float:
    if code == RELU:
        return 1.0 if z > 0.0 else 0.0
    if code == ELU:
        return 1.0 if z > 0.0 else y + alpha
    if code == SOFTPLUS:
        if z >= 0.0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    if code == TANH:
        return 1.0 - y * y
    return 1.0


@njit(inline="always")
def _backward_rows(pre, out, grad_out, code, alpha, grad_pre, grad_bias):
    for j in range(grad_bias.shape[0]):
        grad_bias[j] = 0.0
    rows, cols = pre.shape
    for i in range(rows):
        for j in range(cols):
            grad_pre[i, j] = grad_out[i, j] * _derivative(code, pre[i, j], out[i, j], alpha)
            grad_bias[j] += grad_pre[i, j]


@njit
def activation_backward(pre, out, grad_out, code, alpha, grad_pre, grad_bias):
    """Chain rule through the activation: ``grad_pre = grad_out * f'(pre)``, all (batch, n), and the
    bias gradient ``grad_bias`` (n,), the column sums of grad_pre, in the same pass.

    The sums run row after row in the arrays' dtype, the order of NumPy's ``sum(axis=0)`` over more
    than one column. ReLU's and ELU's loops read only y (f'(z) from y), so a pass moves a quarter less
    memory; with the sums fused in, half the time of this kernel and ``np.sum`` one after the other.
    """
    if code == ELU:
        _backward_rows(pre, out, grad_out, ELU, alpha, grad_pre, grad_bias)
    elif code == RELU:
        _backward_rows(pre, out, grad_out, RELU, alpha, grad_pre, grad_bias)
    else:
        _backward_rows(pre, out, grad_out, code, alpha, grad_pre, grad_bias)
