"""``npppo bench``: npppo's performance figures, measured against its own limits and against SB3.

Everything comes from one run on this machine; each figure is a median of repeats, and each ratio
is of two figures measured in the same run (machines are shared and noisy). The work is the seed
preset's iteration (SPEC §1) on Pendulum-v1: 40 whole episodes of 200 steps, so 8,000 samples.

==========================  =====================================================================
figure                      what is timed
==========================  =====================================================================
act_us                      one batch-1 ``agent.act(obs)`` (deterministic), after warm-up
act_sample_value_us         one sampled ``agent.act(obs, deterministic=False)`` plus ``agent.value(obs)``
update_gflops               the update phase (targets, k1 = 10 actor and k2 = 5 critic full-batch
                            steps): matrix-product FLOPs (2 per multiply-add, forward and backward)
                            per second of the phase's wall time
gemm_gflops                 the same matrix products, same shapes and dtype, back to back in NumPy
train_steps_per_s           env steps per second of whole seed iterations (rollout + update),
                            after the JIT warm-up iteration
env_steps_per_s             the same environments stepped with random actions, no learning
peak_rss_mb, rss_growth_mb  peak resident memory of a fresh process running a 20-iteration seed
                            run, and its resident memory at iteration 20 minus at iteration 5
import_s                    ``from npppo import PPO, presets`` in a fresh process (warm cache)
first_iteration_s           building the agent and its first iteration, warm Numba cache
compile_s                   the same with an empty Numba cache (a user's very first run)
sb3_*                       with ``--compare sb3``: Stable-Baselines3 PPO on the same work
==========================  =====================================================================

The training figures (train, update, memory, import, first iteration) come from a fresh Python
process (this module run with ``--worker``), so that what it measures is what a user's run sees.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ENV_ID = "Pendulum-v1"
SB3_PYTHON = "/work/venv-sb3/bin/python"

# targets of the performance issue: (figure, the value it is compared with, factor, direction)
TARGETS = (
    ("update_gflops", "gemm_gflops", 0.5, ">="),
    ("train_steps_per_s", "env_steps_per_s", 0.25, ">="),
    ("act_us", None, 10.0, "<="),
    ("import_s", None, 2.0, "<="),
    ("rss_growth_mb", None, 1.0, "<="),  # "no growth": allow allocator noise below 1 MB
    ("train_vs_sb3", None, 10.0, ">="),
    ("act_vs_sb3", None, 20.0, ">="),
)


# ---------------------------------------------------------------------------------------- helpers
def _median_time(fn, repeats: int) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn`` (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _median_us_per_call(fn, calls: int) -> float:
    """Median of ``calls`` single-call timings in microseconds (after ``calls // 10`` warm-up calls)."""
    for _ in range(max(calls // 10, 10)):
        fn()
    clock = time.perf_counter_ns
    times = []
    for _ in range(calls):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times) / 1e3


def _rss_mb() -> float:
    """Current resident set size of this process, in MB (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "load_avg": list(os.getloadavg()),
            "python": platform.python_version()}


def _seed_agent(dtype: str = "float32", seed: int = 0):
    """The seed preset's agent on Pendulum-v1 (its ReLU-mean warning is expected here)."""
    from npppo import PPO, presets

    config = presets.get("seed").replace(dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PPO(ENV_ID, config, seed=seed)


# ---------------------------------------------------------------------------------------- FLOPs
def _matmul_shapes(agent, n: int, n_end: int) -> list[tuple[str, int, int, int]]:
    """Every matrix product of one update phase, in order: (kind, rows, fan_in, fan_out).

    kind is ``fwd`` (x W), ``dw`` (x^T dz) or ``dx`` (dz W^T); a model's first layer needs no dx.
    """
    policy, critic = agent.policy, agent.critic
    cfg = agent.config
    actor_mlps = [policy.trunk, policy.mu_head] + ([policy.sigma_head] if policy.sigma_head else [])
    critic_layers = critic.mlp.layers

    def forward(layers, rows):
        return [("fwd", rows, layer.fan_in, layer.fan_out) for layer in layers]

    def backward(layers, rows, first):
        shapes = []
        for layer in reversed(layers):
            shapes.append(("dw", rows, layer.fan_in, layer.fan_out))
            if layer is not first:
                shapes.append(("dx", rows, layer.fan_in, layer.fan_out))
        return shapes

    actor_layers = [layer for mlp in actor_mlps for layer in mlp.layers]
    actor_step = forward(actor_layers, n) + backward(actor_layers, n, policy.trunk.layers[0])
    critic_step = forward(critic_layers, n) + backward(critic_layers, n, critic_layers[0])
    targets = forward(critic_layers, n) + (forward(critic_layers, n_end) if n_end else [])
    return targets + actor_step * cfg.actor_epochs + critic_step * cfg.critic_epochs


def _flops(shapes) -> float:
    return float(sum(2 * rows * fan_in * fan_out for _, rows, fan_in, fan_out in shapes))


def gemm_seconds(shapes, dtype: str, repeats: int) -> float:
    """Median time of the products ``shapes`` done back to back by ``np.matmul`` into preallocated outputs."""
    import numpy as np

    rng = np.random.default_rng(0)
    calls = []
    cache: dict[tuple, tuple] = {}
    for kind, rows, fan_in, fan_out in shapes:
        key = (kind, rows, fan_in, fan_out)
        if key not in cache:
            x = rng.standard_normal((rows, fan_in)).astype(dtype)
            w = rng.standard_normal((fan_in, fan_out)).astype(dtype)
            dz = rng.standard_normal((rows, fan_out)).astype(dtype)
            if kind == "fwd":
                cache[key] = (x, w, np.empty((rows, fan_out), dtype))
            elif kind == "dw":
                cache[key] = (x.T, dz, np.empty((fan_in, fan_out), dtype))
            else:
                cache[key] = (dz, w.T, np.empty((rows, fan_in), dtype))
        calls.append(cache[key])

    def run():
        for a, b, out in calls:
            np.matmul(a, b, out=out)

    return _median_time(run, repeats)


# ---------------------------------------------------------------------------------------- in-process figures
def measure_act(calls: int) -> dict[str, float]:
    """Batch-1 acting: deterministic ``act``, and a sampled action plus the value."""
    import numpy as np

    agent = _seed_agent()
    obs = np.asarray(agent.envs[0].reset(seed=0)[0], dtype=np.float64)

    def sample_and_value():
        agent.act(obs, deterministic=False)
        agent.value(obs)

    return {
        "act_us": _median_us_per_call(lambda: agent.act(obs), calls),
        "act_sample_value_us": _median_us_per_call(sample_and_value, calls),
    }


def measure_env(steps: int, repeats: int, num_envs: int) -> float:
    """Env steps per second of ``num_envs`` Pendulum-v1 environments (as the agent makes them) with
    random actions, round robin as the rollout steps them, resetting finished episodes."""
    import numpy as np

    from npppo.envs import make_env

    envs = [make_env(ENV_ID) for _ in range(num_envs)]
    space = envs[0].action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, (steps, space.shape[0]))
    for i, env in enumerate(envs):
        env.reset(seed=i)

    def run():
        for t in range(steps):
            env = envs[t % num_envs]
            _, _, terminated, truncated, _ = env.step(actions[t])
            if terminated or truncated:
                env.reset()

    return steps / _median_time(run, repeats)


# ---------------------------------------------------------------------------------------- worker (fresh process)
def worker(iterations: int, dtype: str) -> dict[str, Any]:
    """A user's seed run in this fresh process: import, first iteration, then ``iterations - 1`` more."""
    start = time.perf_counter()
    from npppo import PPO, presets  # noqa: F401  (what a user's script imports)

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    agent = _seed_agent(dtype)
    total = 10**12  # never reached: the run is driven iteration by iteration
    first = agent.train_iteration(total)
    first_iteration_s = time.perf_counter() - start
    rss = [_rss_mb()]
    iteration_s, update_s, rollout_s, batch_steps = [], [], [], []
    for _ in range(iterations - 1):
        start = time.perf_counter()
        metrics = agent.train_iteration(total)
        iteration_s.append(time.perf_counter() - start)
        update_s.append(metrics["update_s"])
        rollout_s.append(metrics["rollout_s"])
        batch_steps.append(metrics["batch_steps"])
        rss.append(_rss_mb())
    return {
        "import_s": import_s,
        "first_iteration_s": first_iteration_s,
        "batch_steps": first["batch_steps"],
        "n_end": first["episodes"],  # Pendulum never terminates: every episode's end is bootstrapped
        "iteration_s": iteration_s,
        "update_s": update_s,
        "rollout_s": rollout_s,
        "steps": batch_steps,
        "rss_mb": rss,
        "peak_rss_mb": _peak_rss_mb(),
        "blas_threads": _blas_threads(),
    }


def _blas_threads() -> int | None:
    from npppo.threads import get_num_threads

    return get_num_threads()


def run_worker(iterations: int, dtype: str, threads: int, cache_dir: str | None = None) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter; ``cache_dir`` set means an empty Numba cache there."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    with tempfile.TemporaryDirectory(prefix="npppo_bench_") as tmp:
        out = Path(tmp) / "worker.json"
        cmd = [sys.executable, "-m", "npppo.bench", "--worker", str(out), "--iterations", str(iterations),
               "--dtype", dtype]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"benchmark worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def _summarise_run(run: dict[str, Any], flops: float) -> dict[str, float]:
    steps = sum(run["steps"])
    update_s = statistics.median(run["update_s"])
    return {
        "train_steps_per_s": statistics.median(s / t for s, t in zip(run["steps"], run["iteration_s"], strict=True)),
        "rollout_steps_per_s": statistics.median(s / t for s, t in zip(run["steps"], run["rollout_s"], strict=True)),
        "update_s": update_s,
        "update_gflops": flops / update_s / 1e9,
        "timed_steps": steps,
    }


# ---------------------------------------------------------------------------------------- SB3
def _sb3_module():
    path = Path(__file__).resolve().parents[1] / "scripts" / "sb3_compare.py"
    if not path.is_file():
        raise RuntimeError(f"--compare sb3 needs {path} (in the npppo source tree)")
    spec = importlib.util.spec_from_file_location("sb3_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------- the whole benchmark
def run(quick: bool = False, threads: int = 1, dtype: str = "float32", compare: str | None = None,
        sb3_python: str = SB3_PYTHON, sweep: bool = False, log=print) -> dict[str, Any]:
    """Measure every figure; returns the JSON-able result (see the module docstring)."""
    from npppo.threads import set_num_threads

    started = time.perf_counter()
    set_num_threads(threads)
    import numba
    import numpy as np

    result: dict[str, Any] = {"machine": _machine(), "quick": quick, "dtype": dtype, "threads": threads,
                              "numpy": np.__version__, "numba": numba.__version__, "env_id": ENV_ID}
    iterations = 3 if quick else 20
    repeats = 3 if quick else 7

    log("batch-1 act ...")
    result.update(measure_act(200 if quick else 3000))

    log("raw environment steps ...")
    agent = _seed_agent(dtype)
    result["env_steps_per_s"] = measure_env(2000 if quick else 8000, repeats, agent.config.num_envs)

    log(f"seed run in a fresh process ({iterations} iterations, warm Numba cache) ...")
    warm = run_worker(iterations, dtype, threads)
    n = warm["batch_steps"]
    shapes = _matmul_shapes(agent, n, warm["n_end"])
    flops = _flops(shapes)
    result.update(_summarise_run(warm, flops))
    result["update_flops"] = flops
    log("the update's matrix products alone ...")
    result["gemm_gflops"] = flops / gemm_seconds(shapes, dtype, repeats) / 1e9
    result["blas_threads"] = warm["blas_threads"]
    result["import_s"] = warm["import_s"]
    result["first_iteration_s"] = warm["first_iteration_s"]
    result["rss_mb"] = warm["rss_mb"]
    result["peak_rss_mb"] = warm["peak_rss_mb"]
    rss = warm["rss_mb"]
    # rss[k] is after iteration k + 1: growth from iteration 5 to the last (20)
    result["rss_growth_mb"] = rss[-1] - rss[min(4, len(rss) - 1)]

    log("first iteration with an empty Numba cache ...")
    with tempfile.TemporaryDirectory(prefix="npppo_numba_cache_") as cache:
        cold = run_worker(1, dtype, threads, cache_dir=cache)
    result["compile_s"] = cold["first_iteration_s"]
    result["cold_import_s"] = cold["import_s"]

    if sweep:
        result["sweep"] = []
        for sweep_dtype in ("float32", "float64"):
            for sweep_threads in (1, 2):
                log(f"sweep: {sweep_dtype}, {sweep_threads} BLAS thread(s) ...")
                set_num_threads(sweep_threads)
                run_ = run_worker(4 if quick else 6, sweep_dtype, sweep_threads)
                shapes_ = _matmul_shapes(agent, run_["batch_steps"], run_["n_end"])
                flops_ = _flops(shapes_)
                row = {"dtype": sweep_dtype, "threads": sweep_threads, **_summarise_run(run_, flops_),
                       "gemm_gflops": flops_ / gemm_seconds(shapes_, sweep_dtype, repeats) / 1e9}
                result["sweep"].append(row)
        set_num_threads(threads)

    if compare == "sb3":
        log("Stable-Baselines3 on the same work (a separate venv) ...")
        sb3 = _sb3_module().run_in_venv(sb3_python, env_id=ENV_ID, iterations=1 if quick else 3, seed=0,
                                        act_repeats=200 if quick else 2000, threads=threads)
        result["sb3"] = sb3
        result["sb3_train_steps_per_s"] = sb3["train_steps_per_s"]
        result["sb3_update_s"] = sb3["update_s_per_iteration"]
        result["sb3_predict_us"] = sb3["predict_us"]
        result["train_vs_sb3"] = result["train_steps_per_s"] / sb3["train_steps_per_s"]
        result["act_vs_sb3"] = sb3["predict_us"] / result["act_us"]

    result["targets"] = _targets(result)
    result["machine"]["load_avg_end"] = list(os.getloadavg())
    result["bench_s"] = time.perf_counter() - started
    return result


def _targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    targets = {}
    for name, reference, factor, direction in TARGETS:
        if name not in result or (reference is not None and reference not in result):
            continue
        bound = factor * result[reference] if reference else factor
        value = result[name]
        met = value >= bound if direction == ">=" else value <= bound
        targets[name] = {"value": value, "target": f"{direction} {bound:.4g}", "met": bool(met)}
    return targets


def format_table(result: dict[str, Any]) -> str:
    """The result as a text table: figure, value, and the target where there is one."""
    targets = result.get("targets", {})

    def row(name: str, label: str, fmt: str) -> tuple[str, str, str] | None:
        if name not in result:
            return None
        target = targets.get(name)
        status = f"{target['target']}  {'met' if target['met'] else 'MISSED'}" if target else ""
        return label, format(result[name], fmt), status

    rows = [
        row("act_us", "act, batch 1, deterministic (µs)", ".1f"),
        row("act_sample_value_us", "act sampled + value, batch 1 (µs)", ".1f"),
        row("update_gflops", "update phase (GFLOP/s)", ".1f"),
        row("gemm_gflops", "NumPy matmul, same shapes (GFLOP/s)", ".1f"),
        row("update_s", "update phase (s / iteration)", ".3f"),
        row("train_steps_per_s", "training (env steps/s)", ",.0f"),
        row("rollout_steps_per_s", "rollout alone (env steps/s)", ",.0f"),
        row("env_steps_per_s", "environments alone, random (steps/s)", ",.0f"),
        row("peak_rss_mb", "peak RSS, seed run (MB)", ".0f"),
        row("rss_growth_mb", "RSS growth, iteration 5 to 20 (MB)", "+.1f"),
        row("import_s", "import, warm cache (s)", ".2f"),
        row("first_iteration_s", "first iteration, warm cache (s)", ".2f"),
        row("compile_s", "first iteration, empty cache (s)", ".2f"),
        row("sb3_train_steps_per_s", "SB3 training (env steps/s)", ",.0f"),
        row("sb3_update_s", "SB3 update phase (s / iteration)", ".3f"),
        row("sb3_predict_us", "SB3 predict, batch 1 (µs)", ".1f"),
        row("train_vs_sb3", "training speed, npppo / SB3", ".1f"),
        row("act_vs_sb3", "batch-1 inference, SB3 time / npppo time", ".1f"),
    ]
    rows = [r for r in rows if r is not None]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    machine = result["machine"]
    lines = [
        f"npppo bench: seed preset on {result['env_id']}, {result['dtype']}, {result['blas_threads']} BLAS "
        f"thread(s); {machine['cpu']}, {machine['cores']} cores, load {machine['load_avg'][0]:.1f} -> "
        f"{machine['load_avg_end'][0]:.1f}",
    ]
    lines += [f"  {label:<{width}}  {value:>{value_width}}  {status}".rstrip() for label, value, status in rows]
    for entry in result.get("sweep", []):
        lines.append(
            f"  sweep {entry['dtype']}, {entry['threads']} thread(s): {entry['train_steps_per_s']:,.0f} steps/s, "
            f"update {entry['update_s']:.3f} s ({entry['update_gflops']:.1f} of {entry['gemm_gflops']:.1f} GFLOP/s)"
        )
    lines.append(f"  (medians of repeats; whole benchmark {result['bench_s']:.0f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``npppo bench [--quick] [--json PATH] [--compare sb3] [--threads N] [--dtype D] [--sweep]``."""
    parser = argparse.ArgumentParser(prog="npppo bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few repeats of everything (seconds; for tests)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure here as JSON")
    parser.add_argument("--compare", choices=["sb3"], help="also measure Stable-Baselines3 on the same work")
    parser.add_argument("--sb3-python", default=SB3_PYTHON, metavar="EXE",
                        help=f"an interpreter with torch and stable-baselines3 (default {SB3_PYTHON})")
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="BLAS threads (default 1)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="training precision (default float32, npppo's default)")
    parser.add_argument("--sweep", action="store_true", help="also compare float32/float64 and 1/2 threads")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.worker is not None:
        args.worker.write_text(json.dumps(worker(args.iterations, args.dtype)))
        return 0
    result = run(args.quick, args.threads, args.dtype, args.compare, args.sb3_python, args.sweep,
                 log=lambda message: print(message, file=sys.stderr, flush=True))
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(math.isfinite(v) for v in (result["act_us"], result["train_steps_per_s"])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
