"""Measure Stable-Baselines3 PPO doing (as near as SB3 allows) the work of npppo's "seed" preset.

This module is standalone: it never imports npppo, and it imports torch and SB3 only inside
:func:`measure_sb3`, so the main venv (which has no torch) can import it and call
:func:`run_in_venv`, which runs this file in a venv that has them. Set that venv up once with::

    python3 -m venv /work/venv-sb3
    /work/venv-sb3/bin/pip install torch==2.13.0 stable-baselines3 gymnasium numpy

Usage, from the SB3 venv::

    /work/venv-sb3/bin/python scripts/sb3_compare.py --json out.json [--threads 1] [--iterations 3]

or from any interpreter (e.g. ``scripts/bench.py`` in the main venv)::

    from sb3_compare import run_in_venv
    figures = run_in_venv("/work/venv-sb3/bin/python", iterations=3, threads=1)

The SB3 model
-------------
``PPO("MlpPolicy")`` on one environment (``DummyVecEnv`` of one ``Monitor``-wrapped env), on the
CPU, with ``n_steps=8000``, ``batch_size=8000`` (one full-batch gradient step per epoch),
``n_epochs=10``, ``gamma=0.99``, ``clip_range=0.2``, ``max_grad_norm=1.0``, ``ent_coef=0``,
optimizer ``torch.optim.SGD(lr=1e-4, momentum=0.9)``, and separate (unshared) MLPs::

    net_arch = dict(pi=[100, 80, 70, 60, 50], vf=[100, 100, 100, 80, 40]), activation_fn = ELU

followed by SB3's linear heads (50 -> act_dim for the mean, 40 -> 1 for the value).

How this differs from npppo's seed preset
-----------------------------------------
The layer widths, batch size, epoch count, optimizer and clip are the seed's, so the FLOPs per
update are close; the algorithm around them is SB3's, not the seed's:

* Actor shape: the seed's actor is a 100-80-70 trunk feeding a mean head 70-60-50-act_dim (and a
  separate head for the spread); SB3 cannot express a two-head actor, so the mean path is one
  chain 100-80-70-60-50 and the standard deviation is SB3's state-independent ``log_std``
  parameter vector (no spread head is computed at all, so SB3 does slightly less work).
* Activations: SB3 applies one ``activation_fn`` to both nets, so the critic is ELU too, whatever
  the seed's critic uses.
* Joint update: SB3 minimises one loss, ``policy_loss + 0.5 * value_loss`` (entropy coefficient
  0), with one optimizer over actor, critic and ``log_std`` together, for ``n_epochs`` epochs;
  gradient-norm clipping (1.0) is over the joint parameter vector. The seed updates the actor
  and the critic as separate groups (own optimizer state, own norm scaling, own epoch loop).
* Value loss: SB3's is plain MSE against the returns (``clip_range_vf=None``).
* Advantages: SB3 uses GAE with ``gae_lambda=0.95`` (its default) and normalises advantages per
  minibatch (here: the whole 8000-step batch); returns are ``advantages + values``. At each
  time-limit cut (every 200 steps on Pendulum) SB3 adds ``gamma * V(terminal_obs)`` to the
  reward, one extra batch-1 critic forward per episode.
* Initialisation: SB3's orthogonal init (gains sqrt(2), 0.01 for the mean head, 1 for the
  value head), not the seed's scheme.
* Numerics: torch float32 throughout (npppo computes in float64 where it says so).
* Observations and rewards are not normalised on either side (no ``VecNormalize``).

Throughput figures are what this module is for; learning curves are not comparable one to one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "python3 -m venv /work/venv-sb3 && "
    "/work/venv-sb3/bin/pip install torch==2.13.0 stable-baselines3 gymnasium numpy"
)

N_STEPS = 8000
BATCH_SIZE = 8000
N_EPOCHS = 10
LEARNING_RATE = 1e-4
MOMENTUM = 0.9
GAMMA = 0.99
CLIP_RANGE = 0.2
MAX_GRAD_NORM = 1.0
PI_ARCH = [100, 80, 70, 60, 50]
VF_ARCH = [100, 100, 100, 80, 40]


def build_model(env_id: str = "Pendulum-v1", seed: int = 0) -> Any:
    """Return an SB3 ``PPO`` configured as described in the module docstring (imports torch/SB3)."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([lambda: Monitor(gym.make(env_id))])
    policy_kwargs = {
        "net_arch": {"pi": list(PI_ARCH), "vf": list(VF_ARCH)},
        "activation_fn": torch.nn.ELU,
        "share_features_extractor": False,
        "optimizer_class": torch.optim.SGD,
        "optimizer_kwargs": {"momentum": MOMENTUM},
    }
    return PPO(
        "MlpPolicy",
        env,
        learning_rate=LEARNING_RATE,
        n_steps=N_STEPS,
        batch_size=BATCH_SIZE,
        n_epochs=N_EPOCHS,
        gamma=GAMMA,
        clip_range=CLIP_RANGE,
        ent_coef=0.0,
        max_grad_norm=MAX_GRAD_NORM,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device="cpu",
        verbose=0,
    )


def _make_timer_callback(sink: list[float]) -> Any:
    """Return an SB3 callback appending each rollout's wall time (seconds) to ``sink``."""
    from stable_baselines3.common.callbacks import BaseCallback

    class RolloutTimer(BaseCallback):
        """Times ``collect_rollouts`` from its start to its end (GAE included)."""

        def __init__(self) -> None:
            super().__init__(verbose=0)
            self._t0 = 0.0

        def _on_rollout_start(self) -> None:
            self._t0 = time.perf_counter()

        def _on_rollout_end(self) -> None:
            sink.append(time.perf_counter() - self._t0)

        def _on_step(self) -> bool:
            return True

    return RolloutTimer()


def measure_sb3(
    env_id: str = "Pendulum-v1",
    iterations: int = 3,
    seed: int = 0,
    act_repeats: int = 2000,
    threads: int | None = None,
) -> dict[str, Any]:
    """Time SB3 PPO training and batch-1 inference; needs torch and stable-baselines3 importable.

    One warm-up iteration (rollout of ``N_STEPS`` env steps plus update) is run and discarded,
    then ``iterations`` timed ``model.learn(N_STEPS)`` calls. Each update (``model.train``) is
    timed by wrapping it; each rollout by a callback.

    Args:
        env_id: Gymnasium environment id.
        iterations: timed PPO iterations after the warm-up.
        seed: seed handed to SB3 (torch, NumPy and the env).
        act_repeats: timed ``model.predict`` calls (after ``act_repeats // 10`` warm-up calls).
        threads: if given, ``torch.set_num_threads(threads)`` first.

    Returns:
        ``sb3_version``, ``torch_version``, ``train_steps_per_s`` (env steps per second of the
        whole ``learn`` call, median), ``rollout_steps_per_s`` (median), ``update_s_per_iteration``
        (median), ``predict_us`` (median of single calls), ``torch_threads``, plus the per-iteration
        lists and the configuration used.
    """
    import numpy as np
    import stable_baselines3
    import torch

    if threads is not None:
        torch.set_num_threads(int(threads))
    if iterations < 1:
        raise ValueError("iterations must be >= 1")

    model = build_model(env_id, seed)
    update_times: list[float] = []
    rollout_times: list[float] = []
    original_train = model.train

    def timed_train() -> None:
        t0 = time.perf_counter()
        original_train()
        update_times.append(time.perf_counter() - t0)

    model.train = timed_train  # instance attribute shadows the method; learn() calls self.train()
    callback = _make_timer_callback(rollout_times)

    model.learn(total_timesteps=N_STEPS, callback=callback)  # warm-up
    update_times.clear()
    rollout_times.clear()
    learn_times: list[float] = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        model.learn(total_timesteps=N_STEPS, callback=callback, reset_num_timesteps=False)
        learn_times.append(time.perf_counter() - t0)
    if len(update_times) != iterations or len(rollout_times) != iterations:
        raise RuntimeError(
            f"expected {iterations} rollouts and updates, got {len(rollout_times)} and {len(update_times)}"
        )

    env = model.get_env()
    obs = env.reset()[0].astype(np.float32)
    for _ in range(max(1, act_repeats // 10)):
        model.predict(obs, deterministic=True)
    predict_times: list[float] = []
    for _ in range(act_repeats):
        t0 = time.perf_counter_ns()
        model.predict(obs, deterministic=True)
        predict_times.append((time.perf_counter_ns() - t0) / 1e3)

    return {
        "sb3_version": stable_baselines3.__version__,
        "torch_version": torch.__version__,
        "train_steps_per_s": N_STEPS / statistics.median(learn_times),
        "rollout_steps_per_s": N_STEPS / statistics.median(rollout_times),
        "update_s_per_iteration": statistics.median(update_times),
        "predict_us": statistics.median(predict_times) if predict_times else float("nan"),
        "torch_threads": torch.get_num_threads(),
        "env_id": env_id,
        "iterations": iterations,
        "seed": seed,
        "act_repeats": act_repeats,
        "n_steps": N_STEPS,
        "batch_size": BATCH_SIZE,
        "n_epochs": N_EPOCHS,
        "learn_s": learn_times,
        "rollout_s": rollout_times,
        "update_s": update_times,
        "python": sys.version.split()[0],
    }


def _check_interpreter(python_exe: str) -> None:
    """Raise RuntimeError, with install instructions, unless ``python_exe`` can import torch and SB3."""
    probe = "import torch, stable_baselines3, gymnasium"
    try:
        proc = subprocess.run(
            [python_exe, "-c", probe], capture_output=True, text=True, timeout=300, check=False
        )
    except FileNotFoundError as exc:
        msg = f"SB3 interpreter {python_exe!r} not found; create it with: {INSTALL_HINT}"
        raise RuntimeError(msg) from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no error output)"])[-1]
        raise RuntimeError(
            f"{python_exe} cannot import torch/stable_baselines3/gymnasium ({last}); "
            f"install them with: {INSTALL_HINT}"
        )


def run_in_venv(
    python_exe: str,
    *,
    env_id: str = "Pendulum-v1",
    iterations: int = 3,
    seed: int = 0,
    act_repeats: int = 2000,
    threads: int = 1,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run :func:`measure_sb3` under ``python_exe`` (a venv with torch and SB3) and return its dict.

    Works from an interpreter without torch. Raises RuntimeError if ``python_exe`` lacks SB3 (with
    the command to install it) or if the measurement fails.
    """
    _check_interpreter(python_exe)
    with tempfile.TemporaryDirectory(prefix="sb3_compare_") as tmp:
        out = Path(tmp) / "sb3.json"
        cmd = [
            python_exe,
            str(Path(__file__).resolve()),
            "--json", str(out),
            "--env-id", env_id,
            "--iterations", str(iterations),
            "--seed", str(seed),
            "--act-repeats", str(act_repeats),
            "--threads", str(threads),
            "--quiet",
        ]  # fmt: skip
        env = dict(os.environ)
        # Keep OpenMP/MKL pools in step with torch's intra-op thread count.
        env.setdefault("OMP_NUM_THREADS", str(threads))
        env.setdefault("MKL_NUM_THREADS", str(threads))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"SB3 measurement failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}"
            )
        return json.loads(out.read_text())


def format_table(result: dict[str, Any]) -> str:
    """Return the headline figures of a :func:`measure_sb3` result as a small text table."""
    rows = [
        ("stable-baselines3", str(result["sb3_version"])),
        ("torch", f"{result['torch_version']} ({result['torch_threads']} threads)"),
        ("env", f"{result['env_id']}, {result['n_steps']} steps/iter, {result['iterations']} iters"),
        ("train steps/s", f"{result['train_steps_per_s']:,.0f}"),
        ("rollout steps/s", f"{result['rollout_steps_per_s']:,.0f}"),
        ("update s/iter", f"{result['update_s_per_iteration']:.3f}"),
        ("predict (batch 1) µs", f"{result['predict_us']:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, print a table, optionally write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the result dict here")
    parser.add_argument("--env-id", default="Pendulum-v1")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--act-repeats", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--quiet", action="store_true", help="do not print the table")
    args = parser.parse_args(argv)
    result = measure_sb3(
        env_id=args.env_id,
        iterations=args.iterations,
        seed=args.seed,
        act_repeats=args.act_repeats,
        threads=args.threads,
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.quiet:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
