"""Learning curves of a preset: train it for several seeds, evaluate, plot, summarise.

    python scripts/learning_curves.py --preset pendulum --seeds 0 1 2
    python scripts/learning_curves.py --preset lunarlander --env LunarLanderContinuous-v3 --steps 1000000
    python scripts/learning_curves.py --preset pendulum --steps 2000 --seeds 0 --workers 1   # smoke test

Each seed trains in its own process (``--workers`` at a time, default 2: one per core) with
OMP_NUM_THREADS=1 so that runs do not fight over the cores. For each seed, ``OUT/seed_S/`` gets

* ``progress.csv``: every metric of :meth:`npppo.PPO.learn`'s history, one row per iteration, plus
  ``train_s`` (wall-clock training time so far, evaluations excluded) and, on the iterations where
  the deterministic policy was evaluated (every ``--eval-every`` steps), ``eval_mean``/``eval_std``;
* ``model.npz``: the final checkpoint.

The final deterministic policy is evaluated over ``--eval-episodes`` episodes (default 10).
"Steps / minutes to threshold" is the first periodic deterministic evaluation at or above the
threshold (so it is measured with the granularity of ``--eval-every``); the first iteration whose
mean training-episode return (stochastic policy) reaches it is reported too.

``OUT/summary.json`` holds the per-seed figures and their mean ± std over seeds, and
``OUT/curve.png`` (needs matplotlib) the training return against env steps: the mean over seeds, the
band between the lowest and highest seed, and the deterministic evaluations as points.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy loads BLAS: one thread per training process

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

# the return at which a task counts as solved (Gymnasium's reward_threshold where it has one)
THRESHOLDS = {"Pendulum-v1": -200.0, "LunarLanderContinuous-v3": 200.0, "LunarLanderContinuous-v2": 200.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="pendulum", help="preset name (npppo.presets.names())")
    parser.add_argument("--env", default=None, help="environment id (default: the preset's own)")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per run (default: the preset's 'steps', else 100000)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="also stop after this many iterations (the schedules still span --steps)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (default 2; 1 = in this process)")
    parser.add_argument("--out", default=None, help="output folder (default runs/curves/PRESET_ENV)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="return that counts as solved (default: -200 Pendulum, 200 LunarLander)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes of each deterministic evaluation")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="env steps between deterministic evaluations during training (default steps/20; 0 = off)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw OUT/curve.png from the progress.csv files already in --out, no training")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON",
                        help="config overrides, e.g. --set gamma=0.99 batch_size=128")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


def overrides(pairs: list[str]) -> dict[str, Any]:
    """``["gamma=0.99", "trunk_sizes=[64,64]", "optimizer=adam"]`` -> a dict (JSON values, else strings)."""
    result = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected FIELD=VALUE")
        try:
            result[name] = json.loads(text)
        except json.JSONDecodeError:
            result[name] = text
    return result


def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one seed (in a worker process); writes its progress.csv and model.npz; returns its figures."""
    from npppo import PPO, presets

    config = presets.get(job["preset"]).replace(**job["overrides"])
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    agent = PPO(job["env"], config, seed=job["seed"])
    threshold, eval_every, episodes = job["threshold"], job["eval_every"], job["eval_episodes"]
    rows: list[dict[str, Any]] = []
    clock = {"train_s": 0.0, "last": time.perf_counter(), "next_eval": eval_every}

    def record(agent: PPO, metrics: dict[str, Any]) -> bool:
        now = time.perf_counter()
        clock["train_s"] += now - clock["last"]
        row = {**metrics, "train_s": clock["train_s"], "eval_mean": math.nan, "eval_std": math.nan}
        last = agent.num_timesteps >= job["steps"] or agent.iteration == job["iterations"]
        if eval_every and agent.num_timesteps >= clock["next_eval"] and not last:
            row["eval_mean"], row["eval_std"] = agent.evaluate(episodes)
            while clock["next_eval"] <= agent.num_timesteps:
                clock["next_eval"] += eval_every
        rows.append(row)
        clock["last"] = time.perf_counter()  # evaluation time is not training time
        return job["iterations"] is None or agent.iteration < job["iterations"]

    agent.learn(job["steps"], callback=record)
    final_mean, final_std = agent.evaluate(episodes)
    rows[-1]["eval_mean"], rows[-1]["eval_std"] = final_mean, final_std
    agent.save(out / "model.npz")
    with open(out / "progress.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    def first(column: str) -> dict[str, Any] | None:
        return next((r for r in rows if not math.isnan(r[column]) and r[column] >= threshold), None)

    solved_eval, solved_train = first("eval_mean"), first("return_mean")
    return {
        "seed": job["seed"],
        "final_eval_mean": final_mean,
        "final_eval_std": final_std,
        "solved": final_mean >= threshold,
        "steps": agent.num_timesteps,
        "iterations": agent.iteration,
        "train_minutes": clock["train_s"] / 60,
        "steps_per_s": agent.num_timesteps / clock["train_s"],
        "steps_to_threshold": solved_eval["steps"] if solved_eval else None,
        "minutes_to_threshold": solved_eval["train_s"] / 60 if solved_eval else None,
        "steps_to_threshold_train_return": solved_train["steps"] if solved_train else None,
        "minutes_to_threshold_train_return": solved_train["train_s"] / 60 if solved_train else None,
    }


def mean_std(values: list[float | None]) -> dict[str, float | int | None]:
    """Mean and std over the seeds that have a value; ``n`` says how many."""
    present = [v for v in values if v is not None]
    if not present:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(present)), "std": float(np.std(present)), "n": len(present)}


def plot(runs: list[tuple[int, list[dict[str, str]]]], title: str, threshold: float, path: Path) -> bool:
    """Training return vs env steps: mean over seeds, min-max band, evaluations as points. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return False
    curves = [(np.array([float(r["steps"]) for r in rows]), np.array([float(r["return_mean"]) for r in rows]))
              for _, rows in runs]
    grid = np.linspace(max(c[0][0] for c in curves), min(c[0][-1] for c in curves), 200)
    # iterations that finished no episode have no return: interpolate over the ones that did
    on_grid = np.array([np.interp(grid, s[~np.isnan(r)], r[~np.isnan(r)]) for s, r in curves])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.fill_between(grid, on_grid.min(axis=0), on_grid.max(axis=0), alpha=0.25, label="min-max over seeds")
    ax.plot(grid, on_grid.mean(axis=0), lw=2, label=f"training return, mean of {len(runs)} seeds")
    for k, (seed, rows) in enumerate(runs):
        evals = [(float(r["steps"]), float(r["eval_mean"])) for r in rows if r["eval_mean"] not in ("", "nan")]
        if evals:
            xs, ys = np.array(evals).T
            ax.plot(xs, ys, "o", ms=3.5, color=f"C{2 + k}", label=f"deterministic eval, seed {seed}")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_folder(out: Path) -> bool:
    """Draw ``out/curve.png`` from ``out/summary.json`` and each seed's progress.csv."""
    summary = json.loads((out / "summary.json").read_text())
    runs = []
    for seed in summary["seeds"]:
        with open(out / f"seed_{seed}" / "progress.csv", newline="") as handle:
            runs.append((seed, list(csv.DictReader(handle))))
    return plot(runs, f"{summary['preset']} on {summary['env']}", summary["threshold"], out / "curve.png")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.plot_only:
        out = Path(args.out) if args.out else None
        if out is None or not (out / "summary.json").is_file():
            raise SystemExit("--plot-only needs --out pointing at a folder this script wrote (with summary.json)")
        plot_folder(out)
        return json.loads((out / "summary.json").read_text())
    from npppo import presets

    preset = presets.get_dict(args.preset)  # unknown preset: a clear error before any work
    env = args.env or preset["env"]
    steps = args.steps or preset.get("steps") or 100_000
    threshold = args.threshold if args.threshold is not None else THRESHOLDS.get(env)
    if threshold is None:
        raise SystemExit(f"no known threshold for {env!r}: pass --threshold")
    eval_every = args.eval_every if args.eval_every is not None else max(steps // 20, 1)
    changes = overrides(args.set)
    presets.get(args.preset).replace(**changes)  # validate the overrides up front
    out = Path(args.out or f"runs/curves/{args.preset}_{env}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [{"preset": args.preset, "overrides": changes, "env": env, "seed": seed, "steps": steps,
             "iterations": args.iterations, "threshold": threshold, "eval_every": eval_every,
             "eval_episodes": args.eval_episodes, "out": str(out / f"seed_{seed}")} for seed in args.seeds]
    start = time.perf_counter()
    if args.workers == 1:
        results = [train_one(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs))) as pool:
            results = list(pool.map(train_one, jobs))
    for r in results:
        to_threshold = (f"{r['steps_to_threshold']} steps, {r['minutes_to_threshold']:.2f} min"
                        if r["steps_to_threshold"] is not None else "not reached")
        print(f"seed {r['seed']}: final eval {r['final_eval_mean']:.1f} ± {r['final_eval_std']:.1f} "
              f"({r['steps']} steps, {r['train_minutes']:.2f} min, {r['steps_per_s']:.0f} steps/s); "
              f"threshold {threshold:g}: {to_threshold}")
    summary = {
        "preset": args.preset,
        "env": env,
        "config": presets.get(args.preset).replace(**changes).to_dict(),
        "overrides": changes,
        "steps": steps,
        "max_iterations": args.iterations,
        "seeds": args.seeds,
        "threshold": threshold,
        "eval_episodes": args.eval_episodes,
        "eval_every": eval_every,
        "workers": args.workers,
        "command": "python scripts/learning_curves.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "wall_minutes_total": (time.perf_counter() - start) / 60,
        "solved_seeds": sum(r["solved"] for r in results),
        "final_eval": mean_std([r["final_eval_mean"] for r in results]),
        "steps_to_threshold": mean_std([r["steps_to_threshold"] for r in results]),
        "minutes_to_threshold": mean_std([r["minutes_to_threshold"] for r in results]),
        "train_minutes": mean_std([r["train_minutes"] for r in results]),
        "runs": results,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_folder(out)
    final = summary["final_eval"]
    print(f"{args.preset} on {env}: final eval {final['mean']:.1f} ± {final['std']:.1f} over {len(results)} seeds, "
          f"{summary['solved_seeds']}/{len(results)} at or above {threshold:g}; written to {out}")
    return summary


if __name__ == "__main__":
    main()
