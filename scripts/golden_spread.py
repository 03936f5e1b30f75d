"""How far the golden runs move on other CPUs, measured on this one.

Runs every golden case (tests/golden_cases.py) in a fresh process under each setting below and
prints the largest difference per case (absolute for parameters, scaled by max(1, |golden|)
for metrics: tests/golden_cases.py's measure), for the parameters and for the metrics, beside the
tolerance tests/golden_cases.py allows:

- ``OPENBLAS_CORETYPE``: each GEMM kernel this OpenBLAS accepts (another CPU picks another one);
- ``NPY_DISABLE_CPU_FEATURES``: NumPy's SIMD dispatch capped at AVX2 (``X86_V3``) and at its baseline;
- ``NUMBA_CPU_NAME``: Numba's kernels compiled for a generic x86-64 and for a Haswell (AVX2) CPU;
- all the AVX2 ones together: what a machine without AVX-512 runs.

A setting this CPU cannot run (a kernel with instructions it lacks: SkylakeX without AVX-512 dies
of SIGILL) is reported as such and left out. For measuring only: tests and CI never set these
variables (older OpenBLAS builds misbehave on some processors with a forced kernel). Writes the
table as JSON too::

    python scripts/golden_spread.py --json runs/golden_spread.json

``--suite`` runs the whole test suite (``python -m pytest -q``) under each setting instead, one
after another (about 4 minutes each on 2 cores), and prints which pass (issue 19: the suite must
pass under each)::

    python scripts/golden_spread.py --suite --json runs/suite_sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from golden_cases import CASES, GOLDEN, PARAMETERS, difference, tolerance  # noqa: E402

CORETYPES = ("Katmai", "Nehalem", "Sandybridge", "Haswell", "SkylakeX", "Zen")


def numpy_caps() -> dict[str, str]:
    """NPY_DISABLE_CPU_FEATURES values that cap NumPy's dispatch at AVX2 and at its baseline."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__ as dispatch
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__ as dispatch
    above_avx2 = [name for name in dispatch if name.startswith(("X86_V4", "AVX512"))]
    return {"avx2": " ".join(above_avx2), "baseline": " ".join(dispatch)}


def settings() -> dict[str, dict[str, str]]:
    caps = numpy_caps()
    out = {"default": {}}
    out.update({f"OPENBLAS_CORETYPE={name}": {"OPENBLAS_CORETYPE": name} for name in CORETYPES})
    out["NumPy SIMD <= AVX2"] = {"NPY_DISABLE_CPU_FEATURES": caps["avx2"]}
    out["NumPy SIMD baseline"] = {"NPY_DISABLE_CPU_FEATURES": caps["baseline"]}
    out["NUMBA_CPU_NAME=generic"] = {"NUMBA_CPU_NAME": "generic"}
    out["NUMBA_CPU_NAME=haswell"] = {"NUMBA_CPU_NAME": "haswell"}
    out["AVX2 machine (all three)"] = {"OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": caps["avx2"],
                                       "NUMBA_CPU_NAME": "haswell"}
    return out


RUNNER = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from golden_cases import run_case
try:
    from threadpoolctl import threadpool_info
    kernel = ",".join(i.get("architecture") or "?" for i in threadpool_info() if i["internal_api"] == "openblas")
except ImportError:
    kernel = "unknown (pip install threadpoolctl)"
print(kernel)
for name in {names!r}:
    np.savez({out!r} + "/" + name + ".npz", **run_case(name))
"""


class NotOnThisCpu(Exception):
    """The setting asks for instructions this CPU lacks."""


def illegal_instruction(returncode: int) -> bool:
    return returncode in (-signal.SIGILL, 128 + signal.SIGILL)


def run_setting(env_changes: dict[str, str], names: list[str]) -> tuple[str, dict[str, dict[str, float]]]:
    """(OpenBLAS kernel in use, case -> array -> max |golden - run|) for one setting."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, **env_changes, "OPENBLAS_NUM_THREADS": "1"}
        code = RUNNER.format(tests=str(ROOT / "tests"), names=names, out=out)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
        if illegal_instruction(done.returncode):
            raise NotOnThisCpu(done.stderr[-300:])
        if done.returncode != 0:
            raise RuntimeError(f"setting {env_changes} failed:\n{done.stderr[-2000:]}")
        spread = {}
        for name in names:
            with np.load(GOLDEN / f"{name}.npz") as golden, np.load(f"{out}/{name}.npz") as run:
                spread[name] = {key: difference(key, golden[key], run[key]) if golden[key].shape == run[key].shape
                                else float("inf") for key in golden.files}
        return done.stdout.strip().splitlines()[0], spread


def run_suite(chosen: dict[str, dict[str, str]], json_path: Path | None) -> None:
    """The whole test suite under each setting: pass, fail, or not runnable on this CPU."""
    rows = {}
    for label, changes in chosen.items():
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                              env={**os.environ, **changes}, capture_output=True, text=True, cwd=ROOT)
        lines = done.stdout.strip().splitlines()
        outcome = ("not on this CPU (SIGILL)" if illegal_instruction(done.returncode)
                   else "passed" if done.returncode == 0 else "FAILED")
        rows[label] = {"env": changes, "outcome": outcome, "summary": lines[-1] if lines else done.stderr[-300:],
                       "failed": [line for line in lines if line.startswith("FAILED")],
                       "seconds": round(time.perf_counter() - start, 1)}
        print(f"{label:<28} {outcome:<26} {rows[label]['summary']}", flush=True)
        for line in rows[label]["failed"]:
            print(f"    {line}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(rows, indent=1))
        print(f"wrote {json_path}")
    if any(row["outcome"] == "FAILED" for row in rows.values()):
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=sorted(CASES), choices=sorted(CASES))
    parser.add_argument("--suite", action="store_true", help="run the whole test suite under each setting instead")
    known = settings()
    parser.add_argument("--settings", nargs="+", default=list(known), choices=list(known),
                        metavar="LABEL", help=f"the settings to run (default: all of {list(known)})")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    chosen = {label: known[label] for label in args.settings}
    if args.suite:
        run_suite(chosen, args.json)
        return

    table = {}
    for label, changes in chosen.items():
        try:
            kernel, spread = run_setting(changes, args.cases)
        except NotOnThisCpu:
            print(f"{label:<28} not runnable on this CPU (SIGILL): left out", flush=True)
            continue
        table[label] = {"env": changes, "openblas_kernel": kernel, "spread": spread}
        print(f"{label:<28} (OpenBLAS kernel {kernel}) done", flush=True)

    print(f"\n{'case':<16} {'setting':<28} {'params':>9} {'tol':>8} {'metrics':>9} {'worst metric':<20}")
    worst = {}
    for name in args.cases:
        for label, row in table.items():
            spread = row["spread"][name]
            params = max(spread[key] for key in PARAMETERS)
            metrics = {key: value for key, value in spread.items() if key not in PARAMETERS}
            key = max(metrics, key=lambda k: metrics[k])
            allowed = tolerance(name, "policy")
            print(f"{name:<16} {label:<28} {params:9.2g} {allowed:8.1g} {metrics[key]:9.2g} {key:<20}")
            bound = worst.setdefault(name, {})
            for array, value in spread.items():
                bound[array] = max(bound.get(array, 0.0), value)
    print("\nworst over all settings (array: max |Δ| / tolerance):")
    for name, arrays in worst.items():
        cells = []
        for array, value in arrays.items():
            allowed = tolerance(name, array)
            cells.append(f"{array} {value:.2g}/" + ("-" if allowed is None else f"{allowed:.1g}"))
        print(f"  {name}: " + ", ".join(cells))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": table, "worst": worst}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
