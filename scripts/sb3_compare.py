"""npppo against Stable-Baselines3: training env steps per second on the same work, in one run.

Usage, with npppo installed in the interpreter that runs this script::

    python scripts/sb3_compare.py --sb3-python PATH [--json out.json] [--quick] [--workers N]

PATH is the interpreter of a separate venv with torch and stable-baselines3 (npppo's own venv has
no torch). Make one once, beside the clone for example::

    python3 -m venv .venv-sb3 && .venv-sb3/bin/pip install torch==2.13.0 stable-baselines3 'gymnasium[box2d]'

(``torch==2.13.0`` installs the CPU build here) and pass ``--sb3-python .venv-sb3/bin/python``.
Before any work the script checks that PATH can import torch, stable_baselines3 and Box2D, and
that this interpreter has npppo and Box2D.

The two tasks, each measured npppo first, then SB3:

* ``seed``: npppo's ``seed`` preset on Pendulum-v1 (40 whole episodes = 8,000 steps an iteration,
  10 actor and 5 critic full-batch steps) against SB3 doing as near the same work as it allows
  (below); 4 iterations (2 with ``--quick``).
* ``lunarlander``: npppo's ``lunarlander`` preset against SB3 with the RL Zoo's settings for
  LunarLanderContinuous-v3 (16 envs, n_steps 1024, batch 64, 4 epochs, gamma 0.999, GAE λ 0.98,
  entropy 0.01; otherwise SB3's defaults: 64-64 tanh networks, Adam 3e-4, clip 0.2); 131,072 env
  steps (32,768 with ``--quick``).

Each side runs in a fresh process, started in an empty temporary folder. Training env-steps/s is
the env steps of every iteration after the first divided by their wall time (rollout and update);
the first iteration loads npppo's compiled kernels and warms torch up. The ratio is npppo / SB3.
SB3 runs as its users run it: DummyVecEnv, torch's default thread count, on the CPU. npppo runs as
``npppo train`` does, through :func:`npppo.train.train`, with ``--workers N`` passed to
``PPO(..., workers=N)`` (1, the default: everything in one process).

SB3's model for the seed's work
-------------------------------
``PPO("MlpPolicy")`` on one environment with ``n_steps=8000``, ``batch_size=8000`` (one full-batch
step per epoch), ``n_epochs=10``, ``gamma=0.99``, ``clip_range=0.2``, ``max_grad_norm=1.0``,
``ent_coef=0``, ``torch.optim.SGD(lr=1e-4, momentum=0.9)`` and separate ELU networks
``pi=[100, 80, 70, 60, 50]``, ``vf=[100, 100, 100, 80, 40]`` with SB3's linear heads. The widths,
batch, epochs, optimizer and clip are the seed's, so the FLOPs of an update are close; the rest is
SB3's: one mean chain instead of a trunk with two heads (σ is SB3's state-independent ``log_std``,
so SB3 does slightly less work), ELU in the critic too, one joint loss and optimizer for actor and
critic (the seed updates them apart, 10 and 5 epochs), GAE(0.95) instead of 20-step returns, SB3's
orthogonal initialisation, torch float32. Throughput is what this compares; the learning curves
are not comparable one to one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SETUP = ("python3 -m venv .venv-sb3 && .venv-sb3/bin/pip install torch==2.13.0 stable-baselines3 "
         "'gymnasium[box2d]', then pass --sb3-python .venv-sb3/bin/python")
TASKS = {  # task: (npppo preset, env id, env steps in all: full, --quick)
    "seed": ("seed", "Pendulum-v1", (32_000, 16_000)),
    "lunarlander": ("lunarlander", "LunarLanderContinuous-v3", (131_072, 32_768)),
}


# ---------------------------------------------------------------------------------------- the two sides
def npppo_side(task: str, steps: int, workers: int | str) -> dict[str, Any]:
    """Train npppo's preset for ``steps`` env steps in this process; per-iteration steps and times."""
    import warnings

    from npppo import PPO, presets
    from npppo.threads import get_num_threads
    from npppo.train import RunOptions, train

    preset, env_id, _ = TASKS[task]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the seed's ReLU mean head warns on Pendulum, as designed
        agent = PPO(env_id, presets.get(preset), seed=0, workers=workers)
    with agent, tempfile.TemporaryDirectory(prefix="sb3_compare_npppo_") as out:
        rows = train(agent, Path(out), RunOptions(steps, eval_episodes=1), quiet=True).rows
    ends = [row["train_s"] for row in rows]
    return {"steps": [row["batch_steps"] for row in rows], "iteration_s": _differences(ends),
            "rollout_s": [row["rollout_s"] for row in rows], "workers": workers,
            "blas_threads": get_num_threads()}


def sb3_side(task: str, steps: int) -> dict[str, Any]:
    """Train SB3's PPO for ``steps`` env steps in this process (needs torch and SB3)."""
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    _, env_id, _ = TASKS[task]
    if task == "seed":
        env = make_vec_env(env_id, n_envs=1, seed=0)
        model = PPO("MlpPolicy", env, n_steps=8000, batch_size=8000, n_epochs=10, learning_rate=1e-4, gamma=0.99,
                    clip_range=0.2, ent_coef=0.0, max_grad_norm=1.0, seed=0, device="cpu", verbose=0,
                    policy_kwargs={"net_arch": {"pi": [100, 80, 70, 60, 50], "vf": [100, 100, 100, 80, 40]},
                                   "activation_fn": torch.nn.ELU, "optimizer_class": torch.optim.SGD,
                                   "optimizer_kwargs": {"momentum": 0.9}})
    else:  # the RL Zoo's hyperparams/ppo.yml for LunarLanderContinuous-v3
        env = make_vec_env(env_id, n_envs=16, seed=0)
        model = PPO("MlpPolicy", env, n_steps=1024, batch_size=64, n_epochs=4, gamma=0.999, gae_lambda=0.98,
                    ent_coef=0.01, seed=0, device="cpu", verbose=0)
    starts, ends = [], []

    class Clock(BaseCallback):
        def _on_rollout_start(self) -> None:
            starts.append(time.perf_counter())

        def _on_rollout_end(self) -> None:
            ends.append(time.perf_counter())

        def _on_step(self) -> bool:
            return True

    model.learn(steps, callback=Clock())
    finished = time.perf_counter()
    per_iteration = model.n_steps * env.num_envs
    return {"steps": [per_iteration] * len(starts), "iteration_s": _differences([*starts[1:], finished], starts[0]),
            "rollout_s": [end - start for start, end in zip(starts, ends, strict=True)],
            "torch_threads": torch.get_num_threads(), "sb3": stable_baselines3.__version__, "torch": torch.__version__}


def _differences(ends: list[float], start: float = 0.0) -> list[float]:
    return [end - begin for begin, end in zip([start, *ends[:-1]], ends, strict=True)]


# ---------------------------------------------------------------------------------------- the comparison
def run_side(python: str, side: str, task: str, steps: int, workers: int | str) -> dict[str, Any]:
    """One side of one task in a fresh ``python`` process, in an empty folder; its figures."""
    with tempfile.TemporaryDirectory(prefix="sb3_compare_") as folder:
        out = Path(folder) / "side.json"
        cmd = [python, str(Path(__file__).resolve()), "--side", side, "--task", task, "--steps", str(steps),
               "--workers", str(workers), "--out", str(out)]
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{side} on {task} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        figures = json.loads(out.read_text())
    timed = slice(1, None)  # the first iteration loads compiled code / warms torch up
    figures["train_steps_per_s"] = sum(figures["steps"][timed]) / sum(figures["iteration_s"][timed])
    figures["rollout_steps_per_s"] = sum(figures["steps"][timed]) / sum(figures["rollout_s"][timed])
    return figures


def compare(sb3_python: str, quick: bool, workers: int | str, log=print) -> dict[str, Any]:
    """Both tasks, both sides; returns the JSON-able result with the ratios npppo / SB3."""
    result: dict[str, Any] = {"quick": quick, "workers": workers, "cores": os.cpu_count(),
                              "python": platform.python_version(), "load_avg": os.getloadavg()[0]}
    for task, (preset, env_id, plan) in TASKS.items():
        steps = plan[1] if quick else plan[0]
        log(f"{task}: npppo's {preset} preset on {env_id}, {steps:,} env steps ...")
        npppo = run_side(sys.executable, "npppo", task, steps, workers)
        log(f"{task}: Stable-Baselines3 on {env_id}, {steps:,} env steps ...")
        sb3 = run_side(sb3_python, "sb3", task, steps, workers)
        result[task] = {"env_id": env_id, "steps": steps, "npppo": npppo, "sb3": sb3,
                        "ratio": npppo["train_steps_per_s"] / sb3["train_steps_per_s"]}
    result["load_avg_end"] = os.getloadavg()[0]
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"training env steps/s (iterations after the first; {result['cores']} cores, load "
             f"{result['load_avg']:.1f} -> {result['load_avg_end']:.1f})",
             f"  {'task':<12} {'npppo':>9} {'SB3':>9} {'npppo/SB3':>10}   rollout alone: npppo, SB3"]
    for task in TASKS:
        entry = result[task]
        npppo, sb3 = entry["npppo"], entry["sb3"]
        lines.append(f"  {task:<12} {npppo['train_steps_per_s']:>9,.0f} {sb3['train_steps_per_s']:>9,.0f} "
                     f"{entry['ratio']:>9.1f}x   {npppo['rollout_steps_per_s']:,.0f}, "
                     f"{sb3['rollout_steps_per_s']:,.0f}")
    sb3 = result["seed"]["sb3"]
    lines.append(f"  (npppo: {result['workers']} worker(s), {result['seed']['npppo']['blas_threads']} BLAS thread(s); "
                 f"SB3 {sb3['sb3']}, torch {sb3['torch']} with {sb3['torch_threads']} thread(s))")
    return "\n".join(lines)


def _problem(sb3_python: str | None) -> str | None:
    """What stops the comparison before it starts, as one line, or None."""
    if sb3_python is None:
        return f"--sb3-python PATH is required: an interpreter with torch and stable-baselines3; make one with: {SETUP}"
    if not Path(sb3_python).is_file():
        return f"--sb3-python {sb3_python} does not exist; make a venv with torch and stable-baselines3: {SETUP}"
    probe = subprocess.run([sb3_python, "-c", "import torch, stable_baselines3, Box2D"], capture_output=True,
                           text=True, check=False)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no error output"])[-1]
        return f"--sb3-python {sb3_python} cannot import torch, stable_baselines3 and Box2D ({last}); {SETUP}"
    missing = [name for name in ("npppo", "Box2D") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{sys.executable} cannot import {' and '.join(missing)}: run this in npppo's venv with the box2d extra"
    return None


def _workers(text: str) -> int | str:
    if text == "auto" or (text.isdigit() and int(text) >= 1):
        return text if text == "auto" else int(text)
    raise argparse.ArgumentTypeError(f"expected a positive whole number or 'auto', got {text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sb3-python", metavar="PATH",
                        help="interpreter of a venv with torch and stable-baselines3 (required)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure here")
    parser.add_argument("--quick", action="store_true", help="fewer steps (a check that it runs, not a measurement)")
    parser.add_argument("--workers", type=_workers, default=1, metavar="N|auto",
                        help="npppo's rollout worker processes, PPO(..., workers=N) (default 1: in process)")
    parser.add_argument("--side", choices=["npppo", "sb3"], help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=list(TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side is not None:  # one side, in its own process
        figures = (npppo_side(args.task, args.steps, args.workers) if args.side == "npppo"
                   else sb3_side(args.task, args.steps))
        args.out.write_text(json.dumps(figures))
        return 0
    problem = _problem(args.sb3_python)
    if problem is None and args.json is not None and not os.access(args.json.resolve().parent, os.W_OK):
        problem = f"--json {args.json}: its folder does not exist or is not writable"
    if problem is not None:
        print(f"sb3_compare: error: {problem}", file=sys.stderr)
        return 1
    from npppo.bench import log, report

    result = compare(os.path.abspath(args.sb3_python), args.quick, args.workers, log=log)
    return report(format_table(result), result, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
