"""npppo beside RLtools' PPO Pendulum-v1 benchmark: the same work, one core each, in one run.

Usage::

    python scripts/rltools_compare.py RLTOOLS_DIR [--runs 5] [--seed 0] [--eval-episodes 100] [--env ID]
        [--openblas-coretype Haswell] [--json out.json]

RLTOOLS_DIR holds RLtools' benchmark source (``training.cpp``, ``config.h``) and its headers
(``include/``): a clone of rl-tools (``src/rl/environments/pendulum/ppo/cpu/``), or this project's
``../shared/anchors/rltools/`` (source, headers, license and build lines). PyPI's ``rltools`` wheel
ships headers too old for it. The script builds the benchmark with ``g++ -std=c++17 -O3
-march=native`` against the system OpenBLAS (Debian: ``apt-get install -y g++ libopenblas-dev``)
into a temporary folder, then alternates the two sides ``--runs`` times, each with one BLAS thread,
and prints the medians and their ratio (npppo / RLtools). It is not part of the test suite.

What is timed: RLtools' training loop (its ``Time:`` line) against npppo's ``learn()`` for the
same 307,200 env steps (on the compiled ``npppo/Pendulum-v1`` unless ``--env`` says otherwise;
evaluated on Gymnasium's Pendulum-v1), after a short warm-up ``learn()`` so that npppo's compiled kernels are
loaded (a warm cache) and not counted.

npppo's configuration is RLtools' (config.h): 4 envs x 1,024 steps per iteration, 75 iterations,
2 epochs of minibatch 256, gamma 0.9, GAE lambda 0.95, clip 0.2, no entropy bonus, actor and critic
obs -> 64 -> 64 ReLU with a state-independent sigma, Adam 1e-3 (0.9, 0.999, 1e-8), constant
learning rate, observation normalisation, float32. Where the two differ, npppo keeps its own:
- RLtools acts in [-1, 1] and scales by 2 with an initial std of 2.0, that is 4.0 in Pendulum's
  units: npppo acts in Pendulum's [-2, 2] with log_std_init = ln 4;
- RLtools normalises advantages per minibatch, npppo over the whole batch;
- RLtools sets the observation statistics once from an extra 4,096-step rollout, npppo keeps
  running statistics updated after each iteration;
- npppo scales each optimizer's gradient to norm 0.5 (its pendulum preset's setting) and
  initialises orthogonally, RLtools uses its own defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TOTAL_STEPS = 307_200  # 75 iterations of 4 x 1,024

NPPPO_SIDE = f"""
import json, math, sys, time, warnings
from npppo import PPO, presets
from npppo.threads import set_num_threads
set_num_threads(1)
config = presets.get("pendulum").replace(
    num_envs=4, episodes_per_batch=None, steps_per_batch=4096, gamma=0.9, gae_lambda=0.95, clip_eps=0.2,
    actor_epochs=2, critic_epochs=2, batch_size=256, ent_coef_start=0.0, ent_coef_end=0.0,
    trunk_sizes=[64, 64], head_sizes=[], actor_activation="relu", critic_sizes=[64, 64], critic_activation="relu",
    sigma_mode="state_independent", log_std_init=math.log(4.0), optimizer="adam", mu_lr=1e-3, sigma_lr=1e-3,
    critic_lr=1e-3, lr_schedule="constant", normalize_obs=True, reward_scale=1.0, dtype="float32")
seed, episodes, env = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
PPO(env, config, seed=seed).learn(4096)  # loads the compiled kernels: not timed
agent = PPO(env, config, seed=seed)
start = time.perf_counter()
agent.learn({TOTAL_STEPS})
seconds = time.perf_counter() - start
mean = agent.evaluate(episodes=episodes, env="Pendulum-v1")[0] if episodes else float("nan")
try:
    from threadpoolctl import threadpool_info
    kernel = ",".join(i.get("architecture") or "?" for i in threadpool_info() if i["internal_api"] == "openblas")
except ImportError:
    kernel = "unknown (pip install threadpoolctl)"
print(json.dumps({{"seconds": seconds, "return": mean, "kernel": kernel}}))
"""


def build(source: Path, out: Path) -> Path:
    """Compile RLtools' benchmark against OpenBLAS; returns the binary."""
    for name in ("training.cpp", "config.h", "include"):
        if not (source / name).exists():
            sys.exit(f"rltools_compare: {source} has no {name}: pass the folder of RLtools' PPO Pendulum benchmark "
                     "(its training.cpp, config.h and include/)")
    if shutil.which("g++") is None:
        sys.exit("rltools_compare: no g++ on PATH (Debian: apt-get install -y g++ libopenblas-dev)")
    binary = out / "ppo_openblas"
    command = ["g++", "-std=c++17", "-O3", "-march=native", "-I", str(source / "include"), str(source / "training.cpp"),
               "-DBENCHMARK", "-DRL_TOOLS_BACKEND_ENABLE_OPENBLAS", "-o", str(binary), "-lopenblas"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"rltools_compare: the build failed (is OpenBLAS installed? Debian: apt-get install -y "
                 f"libopenblas-dev):\n{done.stderr[-3000:]}")
    return binary


def run_rltools(binary: Path, folder: Path, coretype: dict) -> dict:
    env = {**os.environ, **ONE_THREAD, **coretype, "OPENBLAS_VERBOSE": "2"}
    done = subprocess.run([str(binary)], capture_output=True, text=True, cwd=folder, env=env, check=True)
    text = done.stdout + done.stderr
    seconds = re.search(r"Time:\s*([0-9.]+)\s*s", text)
    final = re.search(r"Final return:\s*(-?[0-9.]+)", text)
    kernel = re.search(r"Core:\s*(\S+)", text)
    if seconds is None:
        raise RuntimeError(f"RLtools printed no 'Time:' line:\n{text[-2000:]}")
    return {"seconds": float(seconds.group(1)), "return": float(final.group(1)) if final else math.nan,
            "kernel": kernel.group(1) if kernel else "unknown"}


def run_npppo(seed: int, episodes: int, env_id: str, folder: Path, coretype: dict) -> dict:
    env = {**os.environ, **ONE_THREAD, **coretype}
    done = subprocess.run([sys.executable, "-c", NPPPO_SIDE, str(seed), str(episodes), env_id], capture_output=True,
                          text=True, cwd=folder, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"npppo's side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rltools", type=Path, help="folder of RLtools' PPO Pendulum benchmark (training.cpp, include/)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each side, alternated (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="npppo's seed (RLtools' benchmark fixes its own)")
    parser.add_argument("--eval-episodes", type=int, default=100,
                        help="deterministic evaluation episodes after each npppo run, not timed (0: none)")
    parser.add_argument("--env", default="npppo/Pendulum-v1",
                        help="npppo's training environment: the compiled npppo/Pendulum-v1 (default; the fused "
                             "rollout) or Gymnasium's Pendulum-v1; the evaluation is always on Gymnasium's")
    parser.add_argument("--openblas-coretype", metavar="NAME",
                        help="OPENBLAS_CORETYPE for both sides (Haswell, SkylakeX, ...): each OpenBLAS otherwise picks "
                             "its own kernels, and an older system OpenBLAS may not know a newer CPU (Prescott)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    coretype = {"OPENBLAS_CORETYPE": args.openblas_coretype} if args.openblas_coretype else {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        started = time.perf_counter()
        binary = build(args.rltools.resolve(), folder)
        build_s = time.perf_counter() - started
        print(f"built RLtools' benchmark in {build_s:.1f} s", flush=True)
        sides: dict[str, list[dict]] = {"rltools": [], "npppo": []}
        for run in range(args.runs):
            sides["rltools"].append(run_rltools(binary, folder, coretype))
            sides["npppo"].append(run_npppo(args.seed, args.eval_episodes, args.env, folder, coretype))
            print(f"run {run + 1}: RLtools {sides['rltools'][-1]['seconds']:.3f} s, "
                  f"npppo {sides['npppo'][-1]['seconds']:.3f} s", flush=True)

    summary = {}
    for name, runs in sides.items():
        seconds = [run["seconds"] for run in runs]
        summary[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
                         "final_return_median": statistics.median(run["return"] for run in runs),
                         "openblas_kernel": runs[0]["kernel"], "runs": runs}
    ratio = summary["npppo"]["median_s"] / summary["rltools"]["median_s"]
    print(f"\n{'':10} {'median':>9} {'min-max':>17} {'final return':>13} OpenBLAS kernel")
    for name, row in summary.items():
        print(f"{name:10} {row['median_s']:8.3f}s {row['min_s']:7.3f}-{row['max_s']:.3f} s "
              f"{row['final_return_median']:13.1f} {row['openblas_kernel']}")
    print(f"npppo / RLtools: {ratio:.2f}x the time for the same {TOTAL_STEPS:,} env steps (one core each)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {"build_s": build_s, "ratio": ratio, "npppo_env": args.env,
                   "openblas_coretype": args.openblas_coretype, **summary}
        args.json.write_text(json.dumps(figures, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
