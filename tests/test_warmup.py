"""The first run (issue 22, point 1): the "compiling kernels" line shows whenever kernels are compiled,
and the learner compiles the update's kernels while one worker compiles the rollout's."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numba
import numpy as np

from npppo import PPO, presets
from npppo.checkpoint import snapshot
from npppo.warmup import COMPILING_LINE, announce_compiling, compile_update_kernels, is_cached, rollout_kernels


def test_with_an_empty_cache_the_first_run_says_it_compiles_before_its_first_iteration(tmp_path):
    # the one test that pays for an empty kernel cache; with 2 workers, so the staggered start runs too
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "npppo", "train", "--steps", "4000", "--workers", "2",
                           "--eval-episodes", "1", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert COMPILING_LINE in lines, proc.stdout
    first_iteration = next(i for i, line in enumerate(lines) if line.startswith("iter"))
    assert lines.index(COMPILING_LINE) < first_iteration
    # the workers loaded what the learner and worker 0 compiled: the cache holds one index per kernel
    indexes = [name for _, _, files in os.walk(tmp_path / "cache" / "npppo") for name in files if name.endswith(".nbi")]
    assert any(name.startswith("policy._policy_rows") for name in indexes), indexes


def test_with_the_kernels_in_the_cache_nothing_is_announced():
    agent = PPO("Pendulum-v1", presets.get("pendulum").replace(num_envs=2, episodes_per_batch=2), seed=0)
    agent.learn(400)  # everything the run needs is compiled or loaded now
    assert all(is_cached(kernel) for kernel in rollout_kernels())
    shown = io.StringIO()
    with announce_compiling(shown):
        agent.learn(800)
    assert shown.getvalue() == ""


def test_a_kernel_compiled_inside_is_announced_once():
    @numba.njit  # a new function: nothing cached, so Numba compiles it
    def twice(x):
        return 2 * x

    @numba.njit
    def thrice(x):
        return 3 * x

    shown = io.StringIO()
    with announce_compiling(shown, line="compiling"):
        twice(1.0)
        thrice(1.0)
    twice(2)  # outside: not announced
    assert shown.getvalue() == "compiling\n"


def test_compiling_the_update_kernels_leaves_the_agent_untouched():
    agent = PPO("Pendulum-v1", presets.get("pendulum").replace(num_envs=2, episodes_per_batch=2), seed=3)
    agent.learn(400)
    arrays, meta = snapshot(agent)
    compile_update_kernels(agent)
    after_arrays, after_meta = snapshot(agent)
    assert meta == after_meta
    assert arrays.keys() == after_arrays.keys()
    for name, value in arrays.items():
        assert np.array_equal(value, after_arrays[name]), name


def test_a_config_that_diverges_at_once_is_left_to_the_real_update_to_report():
    # the warm-up's made-up batch diverges too: that must not stop the workers' start (the real
    # update, in the learner or in worker 0, reports it with the run's iteration)
    config = presets.get("pendulum").replace(optimizer="sgd", critic_lr=1e30, max_grad_norm=None)
    compile_update_kernels(PPO("Pendulum-v1", config, seed=0))
