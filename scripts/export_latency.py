"""Batch-1 latency of a policy's deterministic action, each way it can leave npppo (docs/embedding.md).

    python scripts/export_latency.py [--json export_latency.json] [--calls 100000]

For the seed policy (preset ``seed``, the seed's spaces: 8 observations, 1 action, ConwipLine-v0's)
and the ``lunarlander`` policy (8 observations, 2 actions), with the presets' own initial weights:

* C: ``npppo export --format c``, compiled with gcc (and clang, where installed) at -O2 and at
  -O3 -march=native; the median per call over ``--calls`` calls of ``NAME_act``, timed inside C in
  1,000 blocks (the median block / its calls), cycling through 64 observations; and the seconds the
  compiler takes for ``NAME.c`` alone (median of 3);
* onnxruntime: ``session.run`` on one observation (one intra-op thread), median of 20,000 calls;
* inference.py: ``Policy.act(obs)``, median of 20,000 calls;
* ``PPO.act(obs, deterministic=True)``, median of 20,000 calls.

The figures print as a table and go to the JSON file. The onnxruntime, inference.py and PPO.act
figures include Python's call overhead, as a Python caller sees them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

POLICIES = {"seed": (8, 1, [0.0], [100.0]), "lunarlander": (8, 2, [-1.0, -1.0], [1.0, 1.0])}
# (compiler, flags) of each C build; clang's only where it is installed
BUILDS = {f"{compiler} {' '.join(flags)}": (compiler, flags) for compiler in ("gcc", "clang") if shutil.which(compiler)
          for flags in (["-O2"], ["-O3", "-march=native"])}
PYTHON_CALLS = 20_000
BENCH_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "NAME.h"

#define BLOCKS 1000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* prints the median seconds per NAME_act call over BLOCKS blocks of argv[1] / BLOCKS calls */
int main(int argc, char **argv)
{
    static float obs[64][UPPER_OBS_DIM];
    static double seconds[BLOCKS];
    float action[UPPER_ACTION_DIM];
    volatile float sink = 0.0f;
    long calls = argc > 1 ? atol(argv[1]) / BLOCKS : 100, c;
    int b, k;
    srand(1);
    for (b = 0; b < 64; ++b)
        for (k = 0; k < UPPER_OBS_DIM; ++k) obs[b][k] = 2.0f * (float)rand() / (float)RAND_MAX - 1.0f;
    for (c = 0; c < 1000; ++c) NAME_act(obs[c & 63], action); /* warm-up */
    for (b = 0; b < BLOCKS; ++b) {
        const double start = now();
        for (c = 0; c < calls; ++c) {
            NAME_act(obs[(b * calls + c) & 63], action);
            sink += action[0];
        }
        seconds[b] = (now() - start) / (double)calls;
    }
    qsort(seconds, BLOCKS, sizeof seconds[0], compare);
    printf("%.6e\n", seconds[BLOCKS / 2]);
    return 0;
}
"""


def _median_call_us(fn, calls: int) -> float:
    from npppo.bench import _median_s

    for _ in range(200):  # warm-up: caches, and onnxruntime's first runs
        fn()
    return _median_s(fn, calls) * 1e6


def _c_figures(folder: Path, name: str, calls: int) -> dict[str, float]:
    bench = folder / f"bench_{name}.c"
    bench.write_text(BENCH_C.replace("UPPER", name.upper()).replace("NAME", name))
    figures = {}
    for label, (cc, flags) in BUILDS.items():
        binary = folder / f"bench_{name}_{cc}_{len(flags)}"
        subprocess.run([cc, "-std=c99", *flags, "-I", str(folder), str(bench), str(folder / f"{name}.c"), "-lm",
                        "-o", str(binary)], check=True)
        figures[f"{label} act_us"] = float(subprocess.run([str(binary), str(calls)], check=True, capture_output=True,
                                                          text=True).stdout) * 1e6
        compile_times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([cc, "-std=c99", *flags, "-c", str(folder / f"{name}.c"), "-o", str(folder / "x.o")],
                           check=True)
            compile_times.append(time.perf_counter() - start)
        figures[f"{label} compile_s"] = statistics.median(compile_times)
    return figures


def measure(name: str, folder: Path, calls: int) -> dict:
    import onnxruntime

    from npppo import PPO, presets
    from npppo.export import export, load_model
    from npppo.inference import Policy

    obs_dim, action_dim, low, high = POLICIES[name]
    agent = PPO.from_spaces((obs_dim, action_dim, np.array(low), np.array(high)), presets.get(name), seed=0)
    source = agent.save(folder / f"{name}.npz")
    export(source, "c", folder, name=name, force=True)
    export(source, "onnx", folder / f"{name}.onnx", force=True)
    model = load_model(source)
    figures = {"multiply_adds": model.multiply_adds(), **_c_figures(folder, name, calls)}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(0).uniform(-1, 1, (1, obs_dim)).astype(np.float32)
    feed = {"obs": obs}
    figures["onnxruntime act_us"] = _median_call_us(lambda: session.run(["action"], feed), PYTHON_CALLS)
    policy = Policy.load(source)
    figures["inference.py act_us"] = _median_call_us(lambda: policy.act(obs[0]), PYTHON_CALLS)
    figures["PPO.act act_us"] = _median_call_us(lambda: agent.act(obs[0], deterministic=True), PYTHON_CALLS)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("export_latency.json"), help="where to write the figures")
    parser.add_argument("--calls", type=int, default=100_000, help="C calls timed per policy and flag set")
    args = parser.parse_args(argv)
    import onnxruntime

    with tempfile.TemporaryDirectory() as tmp:
        results = {name: measure(name, Path(tmp), args.calls) for name in POLICIES}
    compilers = {cc: subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
                 for cc, _ in BUILDS.values()}
    report = {
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                    "compilers": compilers},
        "policies": results,
    }
    rows = [*BUILDS, "onnxruntime", "inference.py", "PPO.act"]
    print(f"{'batch-1 deterministic act (µs)':44s}" + "".join(f"{name:>14s}" for name in POLICIES))
    for row in rows:
        print(f"{row:44s}" + "".join(f"{results[name][f'{row} act_us']:14.2f}" for name in POLICIES))
    for build in BUILDS:
        print(f"{'compile NAME.c, ' + build + ' (s)':44s}"
              + "".join(f"{results[name][f'{build} compile_s']:14.2f}" for name in POLICIES))
    print(f"{'multiply-adds (deterministic)':44s}" + "".join(f"{results[name]['multiply_adds']:14,d}"
                                                            for name in POLICIES))
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json} (load average {report['machine']['load_average'][0]:.1f} on "
          f"{report['machine']['cores']} cores)")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
