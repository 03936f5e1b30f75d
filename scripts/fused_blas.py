"""Which route for the matrix products of a fused (compiled) minibatch step: measured on this machine.

    python scripts/fused_blas.py [--repeats 9] [--json fused_blas.json]

For each network shape of the presets' updates, the matrix products of one forward and backward
step (per layer: Z = X W, dW = X^T G, and dX = G W^T except at the first layer) are timed three ways:

    numba_dot   np.dot inside one compiled function (Numba calls SciPy's BLAS: SciPy would become a
                runtime dependency of npppo)
    loops       npppo.nn.gemm's compiled loops inside one compiled function (no BLAS)
    python_blas one np.matmul(..., out=) call per product from Python (the per-layer BLAS route: the
                rest of the step fused, but a Python call per product)

Each figure is the median over ``--repeats`` rounds of one step's time (each round times a burst of
steps); the three routes alternate within every round, so their ratios come from the same moments
of a shared machine. Prints a table and writes JSON. Needs SciPy for the first route (`pip install
scipy`); without it that column is left out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numba
import numpy as np

from npppo.jit import njit
from npppo.nn.gemm import matmul_nn, matmul_tn, transpose_into

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
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
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
                x, w, wt, z, g, gw, gx = layers[index]
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
    for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
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
        # agreement (and compilation) first
        reference = [layer[6].copy() for layer in python_layers]
        python_blas_step(python_layers, 1)
        reference = [(layer[3].copy(), layer[5].copy(), layer[6].copy()) for layer in python_layers]
        loops_step(layers, 1)
        error = max(float(np.max(np.abs(a - b) / (1.0 + np.abs(a)))) for ref, layer in zip(reference, python_layers)
                    for a, b in zip(ref[:2], (layer[3], layer[5])))
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
