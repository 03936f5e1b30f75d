"""Small matrix products as compiled loops, for kernels that must not leave Numba (the fused update).

A dense layer's step needs three products (:mod:`npppo.nn.layers`)::

    forward   Z  = X W          X (m, k), W (k, n)        -> Z (m, n)        matmul_nn
    backward  dW = X^T G        X (m, k), G (m, n)        -> dW (k, n)       matmul_tn
              dX = G W^T        G (m, n), W^T (n, k)      -> dX (m, k)       matmul_nn on W^T

Each is written as rows of ``out`` accumulated from scaled rows of the right-hand matrix
(``out[i, :] += a[i, r] * b[r, :]``): the innermost loop then runs over contiguous memory with no
reduction, which LLVM vectorises without reordering any sum (a dot product would vectorise only with
fastmath's reassociation). So every output element is the sum of its terms in index order, the same
bits on any CPU and SIMD width. Four output rows go together: each row of ``b`` is loaded once for
four of them. ``dX`` uses W^T as a contiguous copy (n*k numbers per step, against m*n*k multiply-adds).

scripts/fused_blas.py measures these loops against BLAS (inside Numba and from Python) on the
fused update's shapes; docs/performance.md has the figures and why the loops were chosen.
"""

from __future__ import annotations

from npppo.jit import njit


@njit(inline="always")
def _rows4(a, b, out, first, k, n):
    """out[first + q, :] = sum_r a[first + q, r] * b[r, :] for q < 4 (a (m, k), b (k, n))."""
    z0, z1, z2, z3 = out[first, :n], out[first + 1, :n], out[first + 2, :n], out[first + 3, :n]
    z0[:] = 0.0
    z1[:] = 0.0
    z2[:] = 0.0
    z3[:] = 0.0
    for r in range(k):
        x0, x1, x2, x3 = a[first, r], a[first + 1, r], a[first + 2, r], a[first + 3, r]
        row = b[r, :n]
        for j in range(n):
            z0[j] += x0 * row[j]
            z1[j] += x1 * row[j]
            z2[j] += x2 * row[j]
            z3[j] += x3 * row[j]


@njit
def matmul_nn(a, b, out):
    """out = a @ b: a (m, k), b (k, n), out (m, n), all C-contiguous of one dtype."""
    m, k = a.shape
    n = b.shape[1]
    full = m - m % 4
    for first in range(0, full, 4):
        _rows4(a, b, out, first, k, n)
    for i in range(full, m):
        zi = out[i, :n]
        zi[:] = 0.0
        for r in range(k):
            xr = a[i, r]
            row = b[r, :n]
            for j in range(n):
                zi[j] += xr * row[j]


@njit
def matmul_tn(a, b, out):
    """out = a.T @ b: a (m, k), b (m, n), out (k, n); each element summed over the m rows in order."""
    m, k = a.shape
    n = b.shape[1]
    full = k - k % 4
    for first in range(0, full, 4):
        z0, z1, z2, z3 = out[first, :n], out[first + 1, :n], out[first + 2, :n], out[first + 3, :n]
        z0[:] = 0.0
        z1[:] = 0.0
        z2[:] = 0.0
        z3[:] = 0.0
        for i in range(m):
            x0, x1, x2, x3 = a[i, first], a[i, first + 1], a[i, first + 2], a[i, first + 3]
            row = b[i, :n]
            for j in range(n):
                z0[j] += x0 * row[j]
                z1[j] += x1 * row[j]
                z2[j] += x2 * row[j]
                z3[j] += x3 * row[j]
    for r in range(full, k):
        zr = out[r, :n]
        zr[:] = 0.0
        for i in range(m):
            xr = a[i, r]
            row = b[i, :n]
            for j in range(n):
                zr[j] += xr * row[j]


@njit
def transpose_into(a, out):
    """out = a.T as a contiguous array: a (k, n), out (n, k)."""
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j, r] = a[r, j]
