"""Which route for the matrix products of a fused (compiled) minibatch step: measured on this machine.

    python scripts/fused_blas.py [--repeats 9] [--json fused_blas.json]

For each network shape of the presets' updates, the matrix products of one forward and backward
step (per layer: Z = X W, dW = X^T G, and dX = G W^T except at the first layer) are timed three ways:

    numba_dot   np.dot inside one compiled function (Numba calls SciPy's BLAS: SciPy would become a
                runtime dependency of npppo)
    loops       compiled loops (below) inside one compiled function (no BLAS): each product written as
                rows of the output accumulated from scaled rows of the right-hand matrix
                (out[i, :] += a[i, r] * b[r, :]), four output rows at a time, so that the inner loop
                runs over contiguous memory without a reduction (LLVM vectorises it without reordering
                a sum); G W^T from a contiguous copy of W^T
    python_blas one np.matmul(..., out=) call per product from Python (the per-layer BLAS route: the
                rest of the step fused, but a Python call per product)

Each figure is the median over ``--repeats`` rounds of one step's time (each round times a burst of
steps); the three routes alternate within every round, so their ratios come from the same moments
of a shared machine. Prints a table and writes JSON. Needs SciPy for the first route (`pip install
scipy`); without it that column is left out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import time

import numba
import numpy as np

from npppo.jit import njit

# ---------------------------------------------------------------- the compiled-loops route

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


# name -> (rows, layer widths [in, h1, ..., out])
SHAPES = {
    "lunarlander actor (64 rows)": (64, [8, 64, 64, 2]),
    "pendulum actor (128 rows)": (128, [3, 64, 64, 1]),
    "rltools/conwip critic (256 rows)": (256, [3, 64, 64, 1]),
    "seed actor trunk+mu (8,000 rows)": (8000, [3, 100, 80, 70, 60, 50, 1]),
    "seed critic (8,000 rows)": (8000, [3, 100, 100, 100, 80, 40, 1]),
}


def network(rows: int, widths: list[int], dtype, rng):
    """Per layer (x, w, wt, z, g, gw, gx) arrays of the right shapes, random values."""
    layers = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers.append((
            rng.standard_normal((rows, fan_in)).astype(dtype), rng.standard_normal((fan_in, fan_out)).astype(dtype),
            np.empty((fan_out, fan_in), dtype), np.empty((rows, fan_out), dtype),
            rng.standard_normal((rows, fan_out)).astype(dtype), np.empty((fan_in, fan_out), dtype),
            np.empty((rows, fan_in), dtype),
        ))
    return layers


@njit
def loops_step(layers, steps):
    for _ in range(steps):
        for index in range(len(layers)):
            x, w, wt, z, g, gw, gx = layers[index]
            matmul_nn(x, w, z)
            matmul_tn(x, g, gw)
            if index > 0:
                transpose_into(w, wt)
                matmul_nn(g, wt, gx)


def _numba_dot_step():
    @numba.njit(cache=False, nogil=True)
    def numba_dot_step(layers, steps):
        for _ in range(steps):
            for index in range(len(layers)):
                x, w, _wt, z, g, gw, gx = layers[index]
                np.dot(x, w, z)
                np.dot(x.T, g, gw)
                if index > 0:
                    np.dot(g, w.T, gx)

    return numba_dot_step


def python_blas_step(layers, steps):
    for _ in range(steps):
        for index, (x, w, _wt, z, g, gw, gx) in enumerate(layers):
            np.matmul(x, w, out=z)
            np.matmul(x.T, g, out=gw)
            if index > 0:
                np.matmul(g, w.T, out=gx)


def flops(rows: int, widths: list[int]) -> float:
    """2 FLOPs per multiply-add, over the step's products."""
    total = 0
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        total += (3 if index > 0 else 2) * rows * fan_in * fan_out
    return 2.0 * total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    try:
        import scipy  # noqa: F401  (Numba's np.dot needs it)

        numba_dot = _numba_dot_step()
    except ImportError:
        numba_dot = None
    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    routes = {"loops": loops_step, "python_blas": python_blas_step}
    if numba_dot is not None:
        routes = {"numba_dot": numba_dot, **routes}
    results = {}
    for name, (rows, widths) in SHAPES.items():
        layers = numba.typed.List(network(rows, widths, dtype, rng))
        python_layers = list(layers)
        # agreement (and compilation) first: the loops' products against NumPy's
        python_blas_step(python_layers, 1)
        reference = [(layer[3].copy(), layer[5].copy()) for layer in python_layers]
        loops_step(layers, 1)
        error = max(float(np.max(np.abs(expected - layer[index]) / (1.0 + np.abs(expected))))
                    for products, layer in zip(reference, python_layers, strict=True)
                    for expected, index in zip(products, (3, 5), strict=True))
        if numba_dot is not None:
            numba_dot(layers, 1)
        steps = max(1, int(2e6 / flops(rows, widths) * 50))  # bursts of ~a few ms
        times = {route: [] for route in routes}
        for _ in range(args.repeats):
            for route, step in routes.items():
                start = time.perf_counter()
                step(layers if route != "python_blas" else python_layers, steps)
                times[route].append((time.perf_counter() - start) / steps)
        medians = {route: statistics.median(values) for route, values in times.items()}
        base = medians.get("numba_dot", medians["python_blas"])
        results[name] = {
            "rows": rows, "widths": widths, "steps_per_burst": steps, "loops_vs_blas_rel_error": error,
            **{f"{route}_us": medians[route] * 1e6 for route in routes},
            **{f"{route}_gflops": flops(rows, widths) / medians[route] / 1e9 for route in routes},
            **{f"{route}_ratio": medians[route] / base for route in routes},
        }
    header = f"{'shape':36s}" + "".join(f"{route + ' µs':>16s}" for route in routes) + "   ratios to " + (
        "numba_dot" if numba_dot is not None else "python_blas")
    print(f"matrix products of one minibatch step, {args.dtype}, medians of {args.repeats} rounds "
          f"({platform.processor() or platform.machine()}, NumPy {np.__version__}, Numba {numba.__version__})")
    print(header)
    for name, row in results.items():
        print(f"{name:36s}" + "".join(f"{row[route + '_us']:16.1f}" for route in routes) + "   " +
              ", ".join(f"{row[route + '_ratio']:.2f}" for route in routes) +
              "   (" + ", ".join(f"{row[route + '_gflops']:.1f}" for route in routes) + " GFLOP/s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"dtype": args.dtype, "repeats": args.repeats, "numpy": np.__version__,
                       "numba": numba.__version__, "shapes": results}, handle, indent=2)


if __name__ == "__main__":
    main()
