"""Fixed-cap baselines of ConwipLine-v0: every cap 1..100 on the evaluation episodes.

    python scripts/conwip_baselines.py --out docs
    python scripts/conwip_baselines.py --out runs/twin --env-kwargs '{"reward": "twin", "twin_cap": 100}'

The evaluation episodes are the ones ``PPO.evaluate(episodes=20, seed=10_000)`` runs: reset seeds
10000 + k, k = 0..19. For each cap the script records the mean episode reward (and its std over the
episodes), the throughput (parts per time unit over the 99 decisions), the time-average WIP and the
mean flow and lead times; it writes ``OUT/conwip_baselines.json`` and ``OUT/conwip_baselines.png``
(reward, throughput and WIP against the cap; needs matplotlib) and prints the best fixed cap.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import npppo  # noqa: F401  (registers npppo/ConwipLine-v0)

ENV_ID = "npppo/ConwipLine-v0"
CAPS = range(1, 101)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/conwip_baselines"), help="output folder")
    parser.add_argument("--env-kwargs", type=json.loads, default={},
                        help='keyword arguments of the environment as JSON, e.g. \'{"wip_cost": 0.05}\'')
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes (default 20)")
    parser.add_argument("--seed", type=int, default=10_000, help="reset seed of the first episode (default 10000)")
    return parser.parse_args(argv)


def run_fixed_cap(env: gym.Env, cap: int, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Per-episode measures of the fixed ``cap``: arrays (episodes,) by name."""
    action = np.array([cap], dtype=np.float32)
    names = ("reward", "throughput", "wip", "flow_time", "lead_time")
    out = {name: np.zeros(episodes) for name in names}
    for k in range(episodes):
        env.reset(seed=seed + k)
        total, wip_sum, steps, done = 0.0, 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, info = env.step(action)
            total += reward
            wip_sum += info["wip"]
            steps += 1
            done = terminated or truncated
        out["reward"][k] = total
        out["wip"][k] = wip_sum / steps
        for name in ("throughput", "flow_time", "lead_time"):
            out[name][k] = info[name]
    return out


def fixed_cap_table(env_kwargs: dict, episodes: int = 20, seed: int = 10_000) -> dict:
    """Every cap's mean measures over the episodes, and the best cap by mean reward."""
    env = gym.make(ENV_ID, **env_kwargs)
    rows = []
    for cap in CAPS:
        measures = run_fixed_cap(env, cap, episodes, seed)
        row = {"cap": cap, "reward_std": float(measures["reward"].std())}
        row.update({name: float(values.mean()) for name, values in measures.items()})
        rows.append(row)
    best = max(rows, key=lambda row: row["reward"])
    return {"env": ENV_ID, "env_kwargs": env_kwargs, "episodes": episodes, "seeds": [seed, seed + episodes - 1],
            "best_cap": best["cap"], "best_reward": best["reward"], "best_reward_std": best["reward_std"],
            "rows": rows}


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    caps = [row["cap"] for row in table["rows"]]
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    for ax, name, label in zip(axes, ("reward", "throughput", "wip"),
                               ("mean episode reward", "throughput (parts / time unit)", "time-average WIP"),
                               strict=True):
        ax.plot(caps, [row[name] for row in table["rows"]], marker=".", lw=1)
        ax.set_ylabel(label)
        ax.axvline(table["best_cap"], color="tab:red", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    reward = np.array([row["reward"] for row in table["rows"]])
    std = np.array([row["reward_std"] for row in table["rows"]])
    axes[0].fill_between(caps, reward - std, reward + std, alpha=0.2)
    kwargs = f" {json.dumps(table['env_kwargs'])}" if table["env_kwargs"] else ""
    axes[0].set_title(f"ConwipLine-v0{kwargs}: fixed caps over {table['episodes']} "
                      f"episodes; best cap {table['best_cap']} ({table['best_reward']:.1f})", fontsize=9)
    axes[2].set_xscale("log")
    axes[2].set_xlabel("cap")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    table = fixed_cap_table(args.env_kwargs, args.episodes, args.seed)
    (args.out / "conwip_baselines.json").write_text(json.dumps(table, indent=1) + "\n")
    plot(table, args.out / "conwip_baselines.png")
    best = table["best_reward"]
    within = [row["cap"] for row in table["rows"] if row["reward"] >= best - 0.01 * abs(best)]
    print(f"best fixed cap {table['best_cap']}: mean reward {best:.2f} ± {table['best_reward_std']:.2f} "
          f"over {table['episodes']} episodes (caps within 1%: {within})")
    print(f"wrote {args.out / 'conwip_baselines.json'} and {args.out / 'conwip_baselines.png'}")
    return 0


def benchmark_steps_per_second(seconds: float = 2.0, repeats: int = 5, env_kwargs: dict | None = None) -> float:
    """Median decision steps per second of one unwrapped ConwipLine (cap 8, random seeds), over ``repeats``.

    Each repeat steps whole episodes (reset time included) for ``seconds / repeats`` seconds.
    """
    from npppo.envs.conwip_line import ConwipLineEnv

    env = ConwipLineEnv(**(env_kwargs or {}))
    action = np.array([8.0], dtype=np.float32)
    env.reset(seed=0)
    env.step(action)  # compile, or load the cached kernel, before timing
    rates = []
    for repeat in range(repeats):
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / repeats:
            env.reset(seed=repeat * 1_000_003 + steps)
            truncated = False
            while not truncated:
                truncated = env.step(action)[3]
                steps += 1
        rates.append(steps / (time.perf_counter() - start))
    return float(np.median(rates))


if __name__ == "__main__":
    raise SystemExit(main())
