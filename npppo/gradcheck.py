"""Finite-difference gradient checks, in float64, for anyone's layer or loss.

The numerical derivative of f along coordinate i uses the fourth-order central difference

    f'(x) ≈ [f(x - 2h) - 8 f(x - h) + 8 f(x + h) - f(x + 2h)] / (12 h)

whose truncation error is O(h^4): with h = 1e-4 it is ~1e-16 and the round-off ~1e-12 for f of
order 1, so the comparison is limited by the analytic gradient, not by the check.

Relative error per coordinate: |a_i - n_i| / max(|a_i|, |n_i|, atol); coordinates whose gradient is
below ``atol`` (default 1e-5) in size are compared against ``atol`` instead: their finite
differences carry round-off of ~1e-12 absolute, so a relative error of such tiny numbers measures
noise, not the gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class GradcheckResult:
    """The outcome of :func:`gradcheck`."""

    max_rel_error: float  # the worst relative error over the checked coordinates
    worst_index: int  # the flat index where it occurs
    analytic: np.ndarray  # the analytic gradient at the checked coordinates
    numeric: np.ndarray  # the finite-difference gradient there
    indices: np.ndarray  # the checked coordinates

    def __str__(self) -> str:
        return f"max relative error {self.max_rel_error:.3g} at index {self.worst_index}"


def gradcheck(
    f: Callable[[], float],
    x: np.ndarray,
    analytic_grad: np.ndarray,
    indices: np.ndarray | None = None,
    h: float = 1e-4,
    atol: float = 1e-5,
) -> GradcheckResult:
    """Compare ``analytic_grad`` with finite differences of ``f`` with respect to ``x``.

    ``f()`` evaluates the scalar loss at the current contents of ``x`` (a float64 array that this
    function perturbs in place and restores); ``analytic_grad`` has the shape of ``x``;
    ``indices`` (flat) limits the check to some coordinates (default: all).
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradcheck needs float64 parameters, got {x.dtype}: build the model with dtype=np.float64")
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("gradcheck needs a contiguous array that it can perturb in place")
    analytic_flat = np.asarray(analytic_grad, dtype=np.float64).reshape(-1)
    indices = np.arange(flat.size) if indices is None else np.asarray(indices, dtype=np.int64)
    numeric = np.empty(indices.size)
    for k, i in enumerate(indices):
        original = flat[i]
        values = []
        for step in (-2.0, -1.0, 1.0, 2.0):
            flat[i] = original + step * h
            values.append(float(f()))
        flat[i] = original
        numeric[k] = (values[0] - 8.0 * values[1] + 8.0 * values[2] - values[3]) / (12.0 * h)
    analytic = analytic_flat[indices]
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), atol)
    rel = np.abs(analytic - numeric) / scale
    worst = int(np.argmax(rel)) if rel.size else 0
    return GradcheckResult(float(rel[worst]) if rel.size else 0.0, int(indices[worst]) if rel.size else -1,
                           analytic, numeric, indices)
