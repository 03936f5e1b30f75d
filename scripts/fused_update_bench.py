"""The update phase with the fused update against today's Python loop, in one run.

    python scripts/fused_update_bench.py [--presets pendulum lunarlander] [--iterations 8] [--json out.json]

For each preset, two agents (``fused_update="off"`` and ``"auto"``, same seed, one worker, one BLAS
thread) train side by side, an iteration of one and then of the other, so that both see the same
moments of a shared machine. The first iteration of each (compilation, caches) is left out. Each
iteration's ``update_s`` (targets and advantages, every actor and critic step, metrics) is read from
its metrics; the figures are medians over iterations, with the per-minibatch-step cost (update time
over the iteration's actor and critic steps) and the ratio off / fused. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from npppo import PPO, fused_update, presets  # after the BLAS thread count: SciPy's OpenBLAS reads it when it loads


def critic_steps(config, batch_steps: int) -> int:
    rows = batch_steps if config.batch_size is None else min(config.batch_size, batch_steps)
    return config.critic_epochs * -(-batch_steps // rows)


def measure(preset: str, iterations: int) -> dict:
    config, facts = presets.load(preset)
    agents = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mode in ("off", "auto"):
            agents[mode] = PPO(facts["env"], config.replace(fused_update=mode), seed=0)
    times = {mode: [] for mode in agents}
    per_step = {mode: [] for mode in agents}
    total = 10**9
    for iteration in range(iterations + 1):
        for mode, agent in agents.items():
            metrics = agent.train_iteration(total)
            if iteration == 0:
                continue
            steps = metrics["actor_updates"] + critic_steps(agent.config, metrics["batch_steps"])
            times[mode].append(metrics["update_s"])
            per_step[mode].append(metrics["update_s"] / steps)
    for agent in agents.values():
        agent.close()
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    step_medians = {mode: statistics.median(values) for mode, values in per_step.items()}
    return {
        "env": facts["env"], "batch_steps": metrics["batch_steps"], "batch_size": config.batch_size,
        "actor_steps": metrics["actor_updates"], "critic_steps": critic_steps(config, metrics["batch_steps"]),
        "fallback_reason": fused_update.fallback_reason(config, config.batch_size or metrics["batch_steps"]),
        "update_s": medians, "update_s_all": times, "per_step_us": {m: v * 1e6 for m, v in step_medians.items()},
        "ratio_off_over_fused": medians["off"] / medians["auto"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["pendulum", "lunarlander"])
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    results = {preset: measure(preset, args.iterations) for preset in args.presets}
    print(f"update phase per iteration, medians of {args.iterations} iterations (one worker, 1 BLAS thread; "
          f"load {os.getloadavg()[0]:.1f})")
    print(f"{'preset':14s}{'steps (actor+critic)':>22s}{'off (s)':>10s}{'fused (s)':>11s}{'ratio':>8s}"
          f"{'off µs/step':>13s}{'fused µs/step':>15s}")
    for preset, row in results.items():
        print(f"{preset:14s}{row['actor_steps']:>12d} + {row['critic_steps']:<7d}{row['update_s']['off']:10.4f}"
              f"{row['update_s']['auto']:11.4f}{row['ratio_off_over_fused']:8.2f}{row['per_step_us']['off']:13.1f}"
              f"{row['per_step_us']['auto']:15.1f}" + (f"   (fallback: {row['fallback_reason']})"
                                                         if row["fallback_reason"] else ""))
    print(f"(whole run {time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"iterations": args.iterations, "presets": results}, handle, indent=2)


if __name__ == "__main__":
    main()
