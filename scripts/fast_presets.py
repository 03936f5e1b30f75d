"""The presets made for the compiled environments, timed and scored over seeds, one core each.

    python scripts/fast_presets.py [--presets pendulum_compiled conwip mountaincar] [--seeds 10] [--json out.json]

For each preset and seed: ``PPO(preset's env, preset, seed, workers=1)`` with one BLAS thread and a warm
kernel cache (one short ``learn()`` first, not timed), then ``learn(preset's steps)`` timed, then the
final deterministic evaluation: on Gymnasium's own environment for the compiled twins of Gymnasium's
(``npppo/Pendulum-v1`` is scored on ``Pendulum-v1``, 100 episodes), on the preset's environment
otherwise (ConwipLine-v0: its 20 evaluation episodes). Seeds run one after another in this process,
so each run has a core to itself on a 2-core machine with nothing else running.

The bars (issue 24): ``pendulum_compiled`` trains in <= 1.0 s and scores >= -200 on 9 of 10 seeds;
``conwip`` trains in <= 3 s and scores >= the best fixed cap's 266.42 minus 1 % (263.76) on 20 of 20;
``mountaincar`` has no bar (a hard-exploration task): the goal's +100 reached or not. Prints a table
per preset and writes the figures as JSON. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from npppo.threads import set_num_threads

# preset -> (evaluation environment or None for the preset's own, evaluation episodes, bar on the return,
# bar on learn()'s seconds)
BARS = {
    "pendulum_compiled": ("Pendulum-v1", 100, -200.0, 1.0),
    "conwip": (None, 20, 263.76, 3.0),
    "mountaincar": ("MountainCarContinuous-v0", 20, None, None),
}
NO_BARS = (None, 20, None, None)  # another preset: its own environment, 20 episodes, no bar


def run(preset: str, seed: int) -> dict:
    from npppo import PPO, presets

    config, facts = presets.load(preset)
    eval_env, episodes, _, _ = BARS.get(preset, NO_BARS)
    PPO(facts["env"], config, seed=seed, workers=1).learn(1)  # loads the compiled kernels: not timed
    agent = PPO(facts["env"], config, seed=seed, workers=1)
    started = time.perf_counter()
    agent.learn(facts["steps"])
    seconds = time.perf_counter() - started
    mean, std = agent.evaluate(episodes=episodes, env=eval_env)
    return {"seed": seed, "learn_s": seconds, "return": mean, "return_std": std, "steps": agent.num_timesteps}


def summary(preset: str, runs: list[dict]) -> dict:
    _, episodes, return_bar, seconds_bar = BARS.get(preset, NO_BARS)
    seconds = [r["learn_s"] for r in runs]
    returns = [r["return"] for r in runs]
    row = {"runs": runs, "learn_s_median": statistics.median(seconds), "learn_s_max": max(seconds),
           "return_min": min(returns), "return_median": statistics.median(returns), "eval_episodes": episodes}
    if return_bar is not None:
        row["seeds_at_or_above"] = sum(r >= return_bar for r in returns)
        row["return_bar"] = return_bar
    if seconds_bar is not None:
        row["seeds_within_time"] = sum(s <= seconds_bar for s in seconds)
        row["seconds_bar"] = seconds_bar
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(BARS))
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: 10 for pendulum_compiled, "
                                                                 "20 for the others)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    set_num_threads(1)
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (the fused update's BLAS: loaded, so that it is listed)
        from threadpoolctl import threadpool_info
        kernels = sorted({i.get("architecture") or "?" for i in threadpool_info() if i["internal_api"] == "openblas"})
    except ImportError:
        kernels = ["unknown (pip install threadpoolctl scipy)"]
    result = {"openblas_kernels": kernels, "load_avg": os.getloadavg()[0], "presets": {}}
    for preset in args.presets:
        seeds = args.seeds or (10 if preset == "pendulum_compiled" else 20)
        runs = []
        for seed in range(seeds):
            runs.append(run(preset, seed))
            print(f"{preset} seed {seed}: learn {runs[-1]['learn_s']:.3f} s, return {runs[-1]['return']:.1f}",
                  flush=True)
        result["presets"][preset] = summary(preset, runs)
    print(f"\nOpenBLAS kernels: {', '.join(kernels)}; one BLAS thread, workers=1, warm cache")
    print(f"{'preset':18} {'seeds':>5} {'learn median':>12} {'max':>7} {'return median':>13} {'min':>8}  bars")
    for preset, row in result["presets"].items():
        bars = []
        if "return_bar" in row:
            bars.append(f"{row['seeds_at_or_above']}/{len(row['runs'])} >= {row['return_bar']:g}")
        if "seconds_bar" in row:
            bars.append(f"{row['seeds_within_time']}/{len(row['runs'])} <= {row['seconds_bar']:g} s")
        print(f"{preset:18} {len(row['runs']):5} {row['learn_s_median']:11.3f}s {row['learn_s_max']:6.3f}s "
              f"{row['return_median']:13.1f} {row['return_min']:8.1f}  {', '.join(bars)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
