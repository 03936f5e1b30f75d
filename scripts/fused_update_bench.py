"""The update phase with the fused update against today's Python loop, in one run.

    python scripts/fused_update_bench.py [--presets pendulum lunarlander] [--iterations 8] [--json out.json]

For each preset, two agents (``fused_update="off"`` and ``"auto"``, same seed, one worker, one BLAS
thread) train side by side, an iteration of one and then of the other, so that both see the same
moments of a shared machine. The first iteration of each (compilation, caches) is left out. Each
iteration's ``update_s`` (targets and advantages, every actor and critic step, metrics) is read from
its metrics; the figures are medians over iterations, with the per-minibatch-step cost (update time
over the iteration's actor and critic steps) and the ratio off / fused. Then one actor step and one
critic step alone, on a batch of the preset's shapes (random inputs, the agent's networks): an epoch
of today's loop (``losses.actor_loss_blocks`` / ``critic_loss_blocks`` and ``passes.optimizer_step`` per
minibatch) against the fused epoch, alternating, medians of ``--repeats``. Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

import numpy as np

from npppo import PPO, fused_update, presets
from npppo.threads import set_num_threads


def critic_steps(config, batch_steps: int) -> int:
    rows = batch_steps if config.batch_size is None else min(config.batch_size, batch_steps)
    return config.critic_epochs * -(-batch_steps // rows)


def step_costs(agent, batch_steps: int, repeats: int) -> dict:
    """µs per actor and per critic minibatch step, today's loop and fused, on one epoch of random rows."""
    from npppo.losses import actor_loss_blocks, critic_loss_blocks
    from npppo.passes import minibatches, optimizer_step

    config, dtype = agent.config.replace(actor_epochs=1, critic_epochs=1), agent.dtype
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(batch_steps, agent.obs_dim)).astype(dtype)
    mu, sigma = agent.policy.distribution(obs)
    actions = (mu + sigma * rng.normal(size=mu.shape)).astype(dtype)
    old_log_prob = rng.normal(-1.0, 0.1, batch_steps).astype(dtype)
    advantages, targets = rng.normal(size=(2, batch_steps)).astype(dtype)
    old_values = agent.critic.value(obs)
    actor_optimizers = {g: agent.optimizers[g] for g in ("mu", "sigma")}
    steps = -(-batch_steps // (config.batch_size or batch_steps))

    def actor_loop():
        for idx in minibatches(batch_steps, config.batch_size, rng):
            info = actor_loss_blocks([agent.policy], obs[idx], actions[idx], old_log_prob[idx], advantages[idx],
                                     config.clip_eps, 0.0)
            optimizer_step(actor_optimizers, agent.policy, info.loss, 1e-6, 0)

    def critic_loop():
        for idx in minibatches(batch_steps, config.batch_size, rng):
            loss = critic_loss_blocks([agent.critic], obs[idx], targets[idx], old_values[idx], config.value_clip)
            optimizer_step({"critic": agent.optimizers["critic"]}, agent.critic, loss, 1e-6, 0)

    runs = {
        "actor_off": actor_loop,
        "actor_fused": lambda: fused_update.actor_passes(agent.policy, actor_optimizers, config, obs, actions,
                                                         old_log_prob, advantages, 0.0, 1e-6, rng, 0),
        "critic_off": critic_loop,
        "critic_fused": lambda: fused_update.critic_passes(agent.critic, agent.optimizers["critic"], config, obs,
                                                           targets, old_values, 1e-6, rng, 0),
    }
    times = {name: [] for name in runs}
    for _ in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / steps * 1e6)
    return {name: statistics.median(values[1:]) for name, values in times.items()}


def measure(preset: str, iterations: int, repeats: int) -> dict:
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
    costs = step_costs(agents["auto"], metrics["batch_steps"], repeats)
    for agent in agents.values():
        agent.close()
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    step_medians = {mode: statistics.median(values) for mode, values in per_step.items()}
    return {
        "env": facts["env"], "batch_steps": metrics["batch_steps"], "batch_size": config.batch_size,
        "actor_steps": metrics["actor_updates"], "critic_steps": critic_steps(config, metrics["batch_steps"]),
        "fallback_reason": fused_update.fallback_reason(config, config.batch_size or metrics["batch_steps"]),
        "update_s": medians, "update_s_all": times, "per_step_us": {m: v * 1e6 for m, v in step_medians.items()},
        "ratio_off_over_fused": medians["off"] / medians["auto"], "step_alone_us": costs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["pendulum", "lunarlander"])
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    # one BLAS thread: NumPy's now, SciPy's (the fused update's) when it loads, from the variable this sets;
    # with two threads, 128-row products on a busy machine take 20x longer
    set_num_threads(1)
    start = time.perf_counter()
    results = {preset: measure(preset, args.iterations, args.repeats) for preset in args.presets}
    print(f"update phase per iteration, medians of {args.iterations} iterations (one worker, 1 BLAS thread; "
          f"load {os.getloadavg()[0]:.1f})")
    print(f"{'preset':14s}{'steps (actor+critic)':>22s}{'off (s)':>10s}{'fused (s)':>11s}{'ratio':>8s}"
          f"{'off µs/step':>13s}{'fused µs/step':>15s}")
    for preset, row in results.items():
        print(f"{preset:14s}{row['actor_steps']:>12d} + {row['critic_steps']:<7d}{row['update_s']['off']:10.4f}"
              f"{row['update_s']['auto']:11.4f}{row['ratio_off_over_fused']:8.2f}{row['per_step_us']['off']:13.1f}"
              f"{row['per_step_us']['auto']:15.1f}" + (f"   (fallback: {row['fallback_reason']})"
                                                         if row["fallback_reason"] else ""))
    print(f"one minibatch step alone, µs (medians of {args.repeats} epochs):")
    print(f"{'preset':14s}{'rows':>6s}{'actor: off':>12s}{'fused':>8s}{'ratio':>7s}{'critic: off':>13s}{'fused':>8s}"
          f"{'ratio':>7s}")
    for preset, row in results.items():
        cost = row["step_alone_us"]
        print(f"{preset:14s}{row['batch_size'] or row['batch_steps']:>6d}{cost['actor_off']:12.1f}"
              f"{cost['actor_fused']:8.1f}{cost['actor_off'] / cost['actor_fused']:7.2f}{cost['critic_off']:13.1f}"
              f"{cost['critic_fused']:8.1f}{cost['critic_off'] / cost['critic_fused']:7.2f}")
    print(f"(whole run {time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"iterations": args.iterations, "presets": results}, handle, indent=2)


if __name__ == "__main__":
    main()
