"""``npppo bench``: how fast npppo itself is, measured from the installed package.

The work is the ``seed`` preset's iteration (SPEC §1) on Pendulum-v1: 40 whole episodes of 200
steps (8,000 samples), then 10 actor and 5 critic full-batch steps. Each figure is a median of
repeats from one run on this machine; figures that are compared come from the same run.

======================  =========================================================================
figure                  what is timed
======================  =========================================================================
act_us                  one batch-1 ``agent.act(obs)`` (deterministic), after warm-up
update_gflops           the update phase's matrix-product FLOPs (2 per multiply-add, forward and
                        backward, counted from the layer tables) per second of its wall time
gemm_gflops             the same products, same shapes and dtype, back to back in ``np.matmul``
train_steps_per_s       env steps per second of whole iterations (rollout + update) driven by
                        :func:`npppo.train.train`, the first (which loads compiled code) left out
rollout_steps_per_s     the same for the rollout phase alone
env_steps_per_s         the same environments stepped round robin with random actions, no learning
conwip_env_steps_per_s  ``npppo/ConwipLine-v0`` alone: one unwrapped env, random actions (null,
                        with the reason in ``conwip_error``, where it cannot be made)
peak_rss_mb             peak resident memory of the training process
rss_growth_mb           its resident memory after the last iteration minus after the first quarter
workers_*               training and rollout env steps/s, and the peak memory summed over all
                        processes (learner, workers and their helpers), with ``--workers N``
                        rollout worker processes (default 2) beside the figures above with one
rollouts                ``agent.collect()`` alone (env steps/s, a median of batches after one untimed
                        one), in this process: the ``seed`` and ``pendulum`` presets' batches on
                        Gymnasium's Pendulum-v1 (the Python rollout) and on ``npppo/Pendulum-v1``
                        (compiled: the fused rollout, :mod:`npppo.fused`), with 1 and N workers;
                        keyed ``{preset}_{gymnasium|compiled}_{workers}w``, each pair measured
                        back to back, with their ratio in ``rollout_speedups``
import_s                ``from npppo import PPO, presets`` in a fresh process (warm cache)
first_iteration_s       making the agent and its first iteration, warm Numba cache
compile_s               the same with an empty Numba cache (a user's very first run)
======================  =========================================================================

The training figures come from fresh Python processes (this module with ``--child``), started in
an empty temporary folder, so that a folder named ``npppo`` in the current one (a clone) cannot
shadow the installed package. The comparison with Stable-Baselines3 is ``scripts/sb3_compare.py``.
"""

from __future__ import annotations

import argparse
import json
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

PRESET = "seed"
CONWIP_ID = "npppo/ConwipLine-v0"


def _median_s(fn, repeats: int) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn`` (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux; elsewhere the peak)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def _summed_peak_rss_mb() -> float:
    """Peak resident memory of this process plus every live process below it (Linux /proc: the
    workers are children of a forkserver, not of this process); elsewhere this process's alone."""
    parents, peaks = {}, {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:  # the process ended meanwhile
            continue
        pid = int(status.parent.name)
        parents[pid] = int(fields["PPid"])
        peaks[pid] = int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
    family = {os.getpid()}
    for pid in sorted(parents):  # a child's pid may be lower than its parent's: walk up instead
        ancestor = pid
        while ancestor in parents and ancestor not in family and ancestor > 1:
            ancestor = parents[ancestor]
        if ancestor in family:
            family.add(pid)
    return sum(peaks.get(pid, 0.0) for pid in family) if peaks else _peak_rss_mb()


def seed_agent(workers: int | str = 1):
    """The seed preset's agent on its environment (its ReLU-mean warning is expected here)."""
    from npppo import PPO, presets

    config, facts = presets.load(PRESET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PPO(facts["env"], config, seed=0, workers=workers)


# ---------------------------------------------------------------------------------------- FLOPs
def _matmul_shapes(agent, n: int, n_end: int) -> list[tuple[str, int, int, int]]:
    """Every matrix product of one update phase, from the layer tables: (kind, rows, fan_in, fan_out).

    kind is ``fwd`` (x W), ``dw`` (x^T dz) or ``dx`` (dz W^T). A step runs forward and backward
    through every layer; a network's first layer (the one reading observations) needs no dx. The
    targets are one critic forward over the batch (n rows) and one over the bootstrapped episode
    ends (n_end rows).
    """

    def forward(layers, rows):
        return [("fwd", rows, layer["fan_in"], layer["fan_out"]) for layer in layers]

    def step(layers, rows):
        backward = []
        for k in range(len(layers) - 1, -1, -1):
            backward.append(("dw", rows, layers[k]["fan_in"], layers[k]["fan_out"]))
            if k > 0:
                backward.append(("dx", rows, layers[k]["fan_in"], layers[k]["fan_out"]))
        return forward(layers, rows) + backward

    actor, critic = agent.policy.layers, agent.critic.layers
    targets = forward(critic, n) + (forward(critic, n_end) if n_end else [])
    return targets + step(actor, n) * agent.config.actor_epochs + step(critic, n) * agent.config.critic_epochs


def _flops(shapes) -> float:
    return float(sum(2 * rows * fan_in * fan_out for _, rows, fan_in, fan_out in shapes))


def gemm_seconds(shapes, dtype, repeats: int) -> float:
    """Median time of the products ``shapes`` done back to back by ``np.matmul`` into preallocated outputs."""
    import numpy as np

    rng = np.random.default_rng(0)
    operands: dict[tuple, tuple] = {}
    for kind, rows, fan_in, fan_out in shapes:
        if (kind, rows, fan_in, fan_out) not in operands:
            x, w, dz = (rng.standard_normal(shape).astype(dtype)
                        for shape in ((rows, fan_in), (fan_in, fan_out), (rows, fan_out)))
            a, b = {"fwd": (x, w), "dw": (x.T, dz), "dx": (dz, w.T)}[kind]
            operands[kind, rows, fan_in, fan_out] = (a, b, np.empty((a.shape[0], b.shape[1]), dtype))
    calls = [operands[shape] for shape in shapes]

    def run():
        for a, b, out in calls:
            np.matmul(a, b, out=out)

    return _median_s(run, repeats)


# ---------------------------------------------------------------------------------------- in this process
def measure_act(agent, calls: int) -> float:
    """Median µs of one batch-1 deterministic ``agent.act(obs)``."""
    import numpy as np

    obs = np.asarray(agent.envs[0].reset(seed=0)[0], dtype=np.float64)
    for _ in range(max(calls // 10, 10)):
        agent.act(obs)
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        agent.act(obs)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e3


def measure_env(envs: list, steps: int, repeats: int, episode_steps: int | None = None) -> float:
    """Env steps per second of ``envs`` stepped round robin with pre-drawn random actions, each
    reset when its episode ends (or after ``episode_steps`` steps, for an env without a time limit)."""
    space = envs[0].action_space
    space.seed(0)
    actions = [space.sample() for _ in range(steps)]
    lengths = [0] * len(envs)
    for i, env in enumerate(envs):
        env.reset(seed=i)

    def run():
        for t in range(steps):
            i = t % len(envs)
            _, _, terminated, truncated, _ = envs[i].step(actions[t])
            lengths[i] += 1
            if terminated or truncated or lengths[i] == episode_steps:
                envs[i].reset()
                lengths[i] = 0

    return steps / _median_s(run, repeats)


def measure_conwip(steps: int, repeats: int) -> tuple[float | None, str | None]:
    """(steps/s, None) of one unwrapped ``npppo/ConwipLine-v0``, or (None, why it cannot be made)."""
    import gymnasium as gym

    import npppo  # noqa: F401  (registers npppo's environments)

    try:
        env = gym.make(CONWIP_ID)
    except Exception as exc:  # whatever the env raises: the figure is then null, with the reason
        return None, f"{type(exc).__name__}: {exc}"
    limit = env.spec.max_episode_steps if env.spec is not None else None
    return measure_env([env.unwrapped], steps, repeats, limit), None


ROLLOUT_PRESETS = ("seed", "pendulum")
ROLLOUT_ENVS = {"gymnasium": "Pendulum-v1", "compiled": "npppo/Pendulum-v1"}


def measure_rollout(env_id: str, preset: str, workers: int | str, repeats: int) -> float:
    """Env steps per second of ``agent.collect()`` alone: one batch of ``preset`` on ``env_id``."""
    from npppo import PPO, presets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the seed preset's ReLU-mean warning
        agent = PPO(env_id, presets.get(preset), seed=0, workers=workers)
    with agent:
        steps = agent.collect().steps  # starts the workers, loads the kernels
        return steps / _median_s(agent.collect, repeats)


def measure_rollouts(workers: int | str, repeats: int, log=print) -> tuple[dict[str, float], dict[str, float]]:
    """(figures, compiled/gymnasium ratios) of :func:`measure_rollout` for every preset, path and
    worker count (1 and ``workers``), each pair back to back so that their ratio shares the load."""
    figures, speedups = {}, {}
    for preset in ROLLOUT_PRESETS:
        for count in dict.fromkeys([1, workers]):
            log(f"rollout alone: {preset} preset, {count} worker(s), Gymnasium and compiled Pendulum ...")
            for path, env_id in ROLLOUT_ENVS.items():
                figures[f"{preset}_{path}_{count}w"] = measure_rollout(env_id, preset, count, repeats)
            compiled, gymnasium = (figures[f"{preset}_{path}_{count}w"] for path in ("compiled", "gymnasium"))
            speedups[f"{preset}_{count}w"] = compiled / gymnasium
    return figures, speedups


# ---------------------------------------------------------------------------------------- a fresh process
def child(iterations: int, workers: int | str) -> dict[str, Any]:
    """A user's seed run in this fresh process, through the one training driver: the import, the
    agent, then ``iterations`` iterations, in two :func:`npppo.train.train` calls so that the
    resident memory can be read after the first quarter and at the end."""
    start = time.perf_counter()
    from npppo import PPO, presets  # noqa: F401  (what a user's script imports)

    import_s = time.perf_counter() - start
    from npppo.threads import get_num_threads
    from npppo.train import RunOptions, train

    start = time.perf_counter()
    agent = seed_agent(workers)
    build_s = time.perf_counter() - start
    total_steps = presets.load(PRESET)[1]["steps"]
    rows, rss = [], []
    with tempfile.TemporaryDirectory(prefix="npppo_bench_run_") as out:
        for stop in sorted({max(iterations // 4, 1), iterations}):
            options = RunOptions(total_steps, max_iterations=stop, eval_episodes=1)
            result = train(agent, Path(out), options, resumed=bool(rows), quiet=True)
            train_s = [0.0] + [row["train_s"] for row in result.rows]  # cumulative within each call
            rows += [{**row, "iteration_s": end - begin} for row, begin, end in
                     zip(result.rows, train_s[:-1], train_s[1:], strict=True)]
            rss.append(_rss_mb())
        summed_peak_rss_mb = _summed_peak_rss_mb()  # while the workers still run
        agent.close()
    return {
        "import_s": import_s,
        "first_iteration_s": build_s + rows[0]["iteration_s"],
        **{key: [row[key] for row in rows] for key in ("iteration_s", "rollout_s", "update_s", "batch_steps",
                                                       "episodes")},
        "rss_growth_mb": rss[-1] - rss[0],
        "peak_rss_mb": _peak_rss_mb(),
        "summed_peak_rss_mb": summed_peak_rss_mb,
        "blas_threads": get_num_threads(),
    }


def run_child(iterations: int, workers: int | str = 1, cache_dir: str | None = None) -> dict[str, Any]:
    """:func:`child` in a fresh interpreter, in an empty folder; ``cache_dir``: an empty Numba cache there."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir  # npppo's kernels honour it (npppo.jit)
    with tempfile.TemporaryDirectory(prefix="npppo_bench_") as folder:
        out = Path(folder) / "child.json"
        cmd = [sys.executable, "-m", "npppo.bench", "--child", str(out), "--iterations", str(iterations),
               "--workers", str(workers)]
        proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"the benchmark's training process failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------- the whole benchmark
def run(quick: bool = False, workers: int | str = 2, log=print) -> dict[str, Any]:
    """Measure every figure; returns the JSON-able result (see the module docstring)."""
    import numba
    import numpy as np

    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "load_avg": os.getloadavg()[0],
                    "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__},
        "quick": quick, "preset": PRESET, "workers": workers,
    }
    iterations, repeats = (3, 3) if quick else (20, 7)
    agent = seed_agent()
    result["env_id"], result["dtype"] = agent.env_id, agent.config.dtype

    log("batch-1 act ...")
    result["act_us"] = measure_act(agent, 200 if quick else 3000)
    log("environments alone, random actions ...")
    result["env_steps_per_s"] = measure_env(agent.envs, 2000 if quick else 8000, repeats)
    result["conwip_env_steps_per_s"], result["conwip_error"] = measure_conwip(2000 if quick else 20000, repeats)

    log(f"{PRESET} run in a fresh process ({iterations} iterations, warm Numba cache) ...")
    warm = run_child(iterations)
    result.update(_speeds(warm))
    result["update_s"] = statistics.median(warm["update_s"][1:])
    # Pendulum never terminates: every episode ends in a time limit, whose last state is bootstrapped
    shapes = _matmul_shapes(agent, warm["batch_steps"][1], warm["episodes"][1])
    result["update_flops"] = _flops(shapes)
    result["update_gflops"] = result["update_flops"] / result["update_s"] / 1e9
    log("the update's matrix products alone ...")
    result["gemm_gflops"] = result["update_flops"] / gemm_seconds(shapes, agent.config.dtype, repeats) / 1e9
    for key in ("peak_rss_mb", "rss_growth_mb", "import_s", "first_iteration_s", "blas_threads"):
        result[key] = warm[key]

    log("first iteration with an empty Numba cache ...")
    with tempfile.TemporaryDirectory(prefix="npppo_numba_cache_") as cache:
        result["compile_s"] = run_child(1, cache_dir=cache)["first_iteration_s"]
    if workers != 1:
        log(f"{PRESET} run with {workers} rollout workers ...")
        parallel = run_child(iterations, workers)
        result.update({f"workers_{key}": value for key, value in _speeds(parallel).items()})
        result["workers_peak_rss_mb"] = parallel["summed_peak_rss_mb"]
    result["rollouts"], result["rollout_speedups"] = measure_rollouts(workers, 2 if quick else 7, log)
    result["machine"]["load_avg_end"] = os.getloadavg()[0]
    result["bench_s"] = time.perf_counter() - started
    return result


def _speeds(run: dict[str, Any]) -> dict[str, float]:
    """Medians over the iterations after the first (which loads the compiled kernels)."""
    steps = run["batch_steps"][1:]
    return {f"{phase}_steps_per_s": statistics.median(s / t for s, t in zip(steps, run[key][1:], strict=True))
            for phase, key in (("train", "iteration_s"), ("rollout", "rollout_s"))}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


ROWS = (  # figure, label, format
    ("act_us", "act, batch 1, deterministic (µs)", ".1f"),
    ("update_gflops", "update phase (GFLOP/s)", ".1f"),
    ("gemm_gflops", "NumPy matmul, same shapes (GFLOP/s)", ".1f"),
    ("update_s", "update phase (s / iteration)", ".3f"),
    ("train_steps_per_s", "training (env steps/s)", ",.0f"),
    ("rollout_steps_per_s", "rollout alone (env steps/s)", ",.0f"),
    ("env_steps_per_s", "environments alone, random (steps/s)", ",.0f"),
    ("conwip_env_steps_per_s", "ConwipLine-v0 alone, random (steps/s)", ",.0f"),
    ("peak_rss_mb", "peak RSS, training process (MB)", ".0f"),
    ("rss_growth_mb", "RSS growth, first quarter to end (MB)", "+.1f"),
    ("import_s", "import, warm cache (s)", ".2f"),
    ("first_iteration_s", "first iteration, warm cache (s)", ".2f"),
    ("compile_s", "first iteration, empty cache (s)", ".2f"),
    ("workers_train_steps_per_s", "training, {workers} workers (env steps/s)", ",.0f"),
    ("workers_rollout_steps_per_s", "rollout alone, {workers} workers (env steps/s)", ",.0f"),
    ("workers_peak_rss_mb", "peak RSS, {workers} workers, all processes (MB)", ".0f"),
)


def format_table(result: dict[str, Any]) -> str:
    """The result as a text table, one figure a line."""
    rows = [(label.format(workers=result["workers"]),
             format(result[key], fmt) if result[key] is not None else f"n/a ({result['conwip_error']})")
            for key, label, fmt in ROWS if key in result]
    width = max(len(label) for label, _ in rows)
    machine = result["machine"]
    lines = [f"npppo bench: {result['preset']} preset on {result['env_id']}, {result['dtype']}, "
             f"{result['blas_threads']} BLAS thread(s); {machine['cpu']}, {machine['cores']} cores, "
             f"load {machine['load_avg']:.1f} -> {machine['load_avg_end']:.1f}"]
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    for key, speedup in result.get("rollout_speedups", {}).items():
        preset, count = key.rsplit("_", 1)
        gymnasium, compiled = (result["rollouts"][f"{preset}_{path}_{count}"] for path in ROLLOUT_ENVS)
        lines.append(f"  rollout alone, {preset} batch, {count[:-1]} worker(s): Pendulum-v1 {gymnasium:,.0f}, "
                     f"npppo/Pendulum-v1 (fused) {compiled:,.0f} env steps/s ({speedup:.1f}x)")
    lines.append(f"  (medians of repeats; whole benchmark {result['bench_s']:.0f} s)")
    return "\n".join(lines)


def _workers(text: str) -> int | str:
    if text == "auto" or (text.isdigit() and int(text) >= 1):
        return text if text == "auto" else int(text)
    raise argparse.ArgumentTypeError(f"expected a positive whole number or 'auto', got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        if "--compare" in message:
            message += " (the SB3 comparison is now scripts/sb3_compare.py in the source tree)"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    """``npppo bench [--quick] [--json PATH] [--workers N]``."""
    parser = _Parser(prog="npppo bench", description="How fast npppo itself is: acting, the update, "
                     "training, the environments, memory, import and compile time.")
    parser.add_argument("--quick", action="store_true", help="a few repeats of everything (for tests)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure here as JSON")
    parser.add_argument("--workers", type=_workers, default=2, metavar="N|auto",
                        help="also train with N rollout worker processes, beside the run in one process "
                             "(default 2; 1: only the run in one process)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:  # the training process of run_child
        args.child.write_text(json.dumps(child(args.iterations, args.workers)))
        return 0
    if args.json is not None:
        folder = args.json.resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            parser.error(f"--json {args.json}: folder {folder} does not exist or is not writable")
    from npppo.threads import apply_default_threads

    apply_default_threads()  # act and matmul here with the BLAS threads that training uses
    result = run(args.quick, args.workers, log=log)
    return report(format_table(result), result, args.json)


def log(message: str) -> None:
    """A progress line on stderr (stdout holds the table)."""
    print(message, file=sys.stderr, flush=True)


def report(table: str, result: dict[str, Any], json_path: Path | None) -> int:
    """Print ``table``, write ``result`` to ``json_path`` (if given); the exit status 0. Shared with
    scripts/sb3_compare.py."""
    print(table)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
