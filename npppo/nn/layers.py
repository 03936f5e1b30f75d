"""Dense layers and MLPs whose parameters are views into one flat vector.

A :class:`Dense` layer computes ``y = f(x W + b)`` with ``x (batch, fan_in)``, ``W (fan_in, fan_out)``,
``b (fan_out,)``. Its backward, from ``g = dL/dy (batch, fan_out)``:

    dL/dz = g * f'(z)                    (element-wise; the activation kernel)
    dL/dW = x^T dL/dz                    (fan_in, fan_out)
    dL/db = sum over rows of dL/dz       (fan_out,)
    dL/dx = dL/dz W^T                    (batch, fan_in)

The matrix products go to BLAS; the bias add with the activation, and the derivative with the bias
gradient's sum, are one fused Numba kernel each (:mod:`npppo.nn.activations`). Forward outputs live
in buffers that the layer keeps per batch size, so the hot path allocates nothing: an output is
valid until the next forward of the same layer with the same batch size.

A network's *layer table* (:data:`LAYER_DTYPE`, one row per dense layer) is its only description:
:class:`FlatModel` builds it, the compiled row-by-row forward and :mod:`npppo.inference` read it,
and checkpoints store it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np

from npppo.jit import njit
from npppo.nn.activations import CODES, activate_vector, activation_backward, bias_activation_forward

LAYER_DTYPE = np.dtype([("part", "U16"), ("offset", "i8"), ("fan_in", "i8"), ("fan_out", "i8"),
                        ("activation", "U16"), ("alpha", "f8")])
# up to this many rows the compiled row-by-row forward beats BLAS (its per-layer calls cost more
# than the arithmetic); above it, BLAS
ROWS_FORWARD_MAX = 16


def init_weight(shape: tuple[int, int], scheme: str, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """A weight matrix drawn by ``scheme`` and multiplied by ``gain``; biases start at zero.

    glorot_normal: N(0, 2 / (fan_in + fan_out)); glorot_uniform: U(±sqrt(6 / (fan_in + fan_out)));
    he_normal: N(0, 2 / fan_in); orthogonal: the Q of a QR of a Gaussian matrix (Saxe et al. 2013).
    """
    fan_in, fan_out = shape
    if scheme == "glorot_normal":
        w = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    elif scheme == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=shape)
    elif scheme == "he_normal":
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    else:  # orthogonal
        a = rng.normal(size=(max(shape), min(shape)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # makes the draw uniform over orthogonal matrices
        w = q if fan_in >= fan_out else q.T
    return gain * w


class Dense:
    """``y = f(x W + b)``; ``W`` and ``b`` (and their gradients) are views set by :meth:`bind`."""

    def __init__(self, fan_in: int, fan_out: int, activation: str, alpha: float, name: str) -> None:
        self.fan_in, self.fan_out, self.name = fan_in, fan_out, name
        self.activation, self.code, self.alpha = activation, CODES[activation], alpha
        self.size = fan_in * fan_out + fan_out
        self._buffers: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._x: np.ndarray | None = None

    def bind(self, params: np.ndarray, grad: np.ndarray, offset: int) -> int:
        """Make ``weight``, ``bias`` and their gradients views at ``offset``; return the next offset."""
        w_end = offset + self.fan_in * self.fan_out
        self.offset = offset
        self.weight = params[offset:w_end].reshape(self.fan_in, self.fan_out)
        self.bias = params[w_end : w_end + self.fan_out]
        self.grad_weight = grad[offset:w_end].reshape(self.fan_in, self.fan_out)
        self.grad_bias = grad[w_end : w_end + self.fan_out]
        self._buffers.clear()
        return w_end + self.fan_out

    def _buffer(self, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        buffers = self._buffers.get(rows)
        if buffers is None:
            dtype = self.weight.dtype
            buffers = (
                np.empty((rows, self.fan_out), dtype),  # z, the pre-activation
                np.empty((rows, self.fan_out), dtype),  # y
                np.empty((rows, self.fan_out), dtype),  # dL/dz
                np.empty((rows, self.fan_in), dtype),  # dL/dx
            )
            self._buffers[rows] = buffers
        return buffers

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (batch, fan_in) -> y (batch, fan_out), keeping x and z for the backward pass."""
        pre, out, _, _ = self._buffer(x.shape[0])
        np.matmul(x, self.weight, out=pre)
        bias_activation_forward(pre, self.bias, self.code, self.alpha, out)
        self._x = x
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (batch, fan_out) -> dL/dx (batch, fan_in); writes dL/dW and dL/db into the grad views."""
        x = self._x
        pre, out, grad_pre, grad_x = self._buffer(x.shape[0])
        activation_backward(pre, out, grad_out, self.code, self.alpha, grad_pre, self.grad_bias)
        if self.fan_out == 1:  # one column: NumPy's pairwise sum, more accurate than a running sum
            np.sum(grad_pre, axis=0, out=self.grad_bias)
        np.matmul(x.T, grad_pre, out=self.grad_weight)
        if not need_input_grad:
            return None
        if self.fan_out == 1:
            # an outer product: gemm with an inner dimension of 1 is ~10x slower than this broadcast
            # multiply, which computes the very same products
            np.multiply(grad_pre, self.weight.T, out=grad_x)
        else:
            np.matmul(grad_pre, self.weight.T, out=grad_x)
        return grad_x


class MLP:
    """A chain of :class:`Dense` layers: ``sizes = [in, h1, ..., out]``, one activation name per layer."""

    def __init__(self, sizes: Sequence[int], activations: Sequence[str], name: str, alpha: float = 1.0) -> None:
        self.name = name
        self.layers = [Dense(sizes[i], sizes[i + 1], activations[i], alpha, f"{name}.{i}")
                       for i in range(len(sizes) - 1)]
        self.size = sum(layer.size for layer in self.layers)

    def bind(self, params: np.ndarray, grad: np.ndarray, offset: int) -> int:
        for layer in self.layers:
            offset = layer.bind(params, grad, offset)
        return offset

    def init(self, rng: np.random.Generator, scheme: str, output_gain: float = 1.0) -> None:
        """Weights by ``scheme`` (the last layer's times ``output_gain``), biases zero."""
        for i, layer in enumerate(self.layers):
            gain = output_gain if i == len(self.layers) - 1 else 1.0
            layer.weight[...] = init_weight(layer.weight.shape, scheme, rng, gain)
            layer.bias[...] = 0.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        for i in range(len(self.layers) - 1, -1, -1):
            grad_out = self.layers[i].backward(grad_out, need_input_grad or i > 0)
        return grad_out


class FlatModel:
    """Owner of one flat parameter vector ``params`` and its gradient ``grad``, shared by named MLPs.

    Subclasses list their MLPs (and any loose parameter vectors) in forward order; every weight and
    bias is then a view into ``params`` and every gradient a view into ``grad``, so optimizers,
    norm clipping, checkpoints and gradient checks all work on one array. ``layers`` is the layer
    table (:data:`LAYER_DTYPE`).
    """

    def __init__(self, parts: Sequence[MLP], extra: Sequence[tuple[str, int]], dtype) -> None:
        self.parts = list(parts)
        size = sum(p.size for p in self.parts) + sum(n for _, n in extra)
        self.params = np.zeros(size, dtype=dtype)
        self.grad = np.zeros(size, dtype=dtype)
        offset = 0
        self.part_ranges: dict[str, tuple[int, int]] = {}
        for name, n in [(part.name, part.size) for part in self.parts] + list(extra):
            self.part_ranges[name] = (offset, offset + n)
            offset += n
        for part in self.parts:
            part.bind(self.params, self.grad, self.part_ranges[part.name][0])
        self.extra = {name: (self.params[slice(*self.part_ranges[name])], self.grad[slice(*self.part_ranges[name])])
                      for name, _ in extra}
        self.layers = np.array([(part.name, layer.offset, layer.fan_in, layer.fan_out, layer.activation, layer.alpha)
                                for part in self.parts for layer in part.layers], LAYER_DTYPE)
        self.kernel_layout = (np.stack([self.layers[key] for key in ("offset", "fan_in", "fan_out")]
                                       + [np.array([CODES[name] for name in self.layers["activation"]])], axis=1),
                              self.layers["alpha"].copy())

    @property
    def dtype(self) -> np.dtype:
        return self.params.dtype

    def named_params(self) -> dict[str, np.ndarray]:
        """Ordered name -> view into ``params``, in forward order (weight ``(fan_in, fan_out)``, then bias)."""
        named = {}
        for part in self.parts:
            for layer in part.layers:
                named[f"{layer.name}.weight"], named[f"{layer.name}.bias"] = layer.weight, layer.bias
        named.update({name: view for name, (view, _) in self.extra.items()})
        return named

    def twin(self) -> FlatModel:
        """A copy that shares ``params`` but has its own gradient and layer buffers, so that two blocks
        of rows can go forward and backward at the same time (their gradients summed afterwards)."""
        twin = copy.deepcopy(self)
        twin.params = self.params
        for part in twin.parts:
            part.bind(self.params, twin.grad, twin.part_ranges[part.name][0])
        twin.extra = {name: (self.params[slice(*self.part_ranges[name])], twin.grad[slice(*self.part_ranges[name])])
                      for name in self.extra}
        return twin

    def set_params(self, values: np.ndarray) -> None:
        """Copy ``values`` into the flat vector (in place, so every view stays valid)."""
        values = np.asarray(values)
        if values.shape != self.params.shape:
            raise ValueError(f"expected a parameter vector of shape {self.params.shape}, got {values.shape}")
        self.params[...] = values


@njit(error_model="numpy")  # no zero-division branch in tanh's formula: it vectorises
def forward_rows(params, layout, alphas, x, out):
    """Compiled forward of one MLP, row by row: ``out[i] = mlp(x[i])``; for small batches (acting, rollouts).

    Same math as :meth:`MLP.forward`, but one call for the whole network: at batch 1 the per-layer
    Python and BLAS call overhead would cost more than the arithmetic. Each row's result is the same
    bits whatever the batch size: rows go four at a time (each weight row loaded once for four inputs,
    1.5x faster), and a group of four does for each row exactly the operations of one row alone.
    layout (layers, 4): offset, fan_in, fan_out, activation code; x (batch, in); out (batch, out).
    """
    width = 0
    for k in range(layout.shape[0]):
        width = max(width, layout[k, 1], layout[k, 2])
    a = np.empty((4, width), params.dtype)  # each row's layer input
    z = np.empty((4, width), params.dtype)  # ... and pre-activation
    for first in range(0, x.shape[0], 4):
        rows = min(4, x.shape[0] - first)
        for i in range(rows):
            for j in range(x.shape[1]):
                a[i, j] = x[first + i, j]
        for k in range(layout.shape[0]):
            offset, fan_in, fan_out, code = layout[k, 0], layout[k, 1], layout[k, 2], layout[k, 3]
            # slices rather than computed indices: Numba then knows every index is in range and
            # non-negative, and LLVM vectorises the row updates (2.5x faster than params[row + j])
            weight = params[offset : offset + fan_in * fan_out]
            bias = params[offset + fan_in * fan_out : offset + fan_in * fan_out + fan_out]
            for i in range(rows):  # a loop, not z[i, :fan_out] = bias: that compiles Numba's shape-mismatch message
                for j in range(fan_out):
                    z[i, j] = bias[j]
            if rows == 4:
                z0, z1, z2, z3 = z[0, :fan_out], z[1, :fan_out], z[2, :fan_out], z[3, :fan_out]
                for r in range(fan_in):
                    x0, x1, x2, x3 = a[0, r], a[1, r], a[2, r], a[3, r]
                    row = weight[r * fan_out : (r + 1) * fan_out]
                    for j in range(fan_out):
                        z0[j] += x0 * row[j]
                        z1[j] += x1 * row[j]
                        z2[j] += x2 * row[j]
                        z3[j] += x3 * row[j]
            else:
                for i in range(rows):
                    zi = z[i, :fan_out]
                    for r in range(fan_in):
                        xr = a[i, r]
                        row = weight[r * fan_out : (r + 1) * fan_out]
                        for j in range(fan_out):
                            zi[j] += xr * row[j]
            for i in range(rows):
                activate_vector(code, z[i, :fan_out], alphas[k], a[i, :fan_out])
        for i in range(rows):
            for j in range(out.shape[1]):
                out[first + i, j] = a[i, j]
