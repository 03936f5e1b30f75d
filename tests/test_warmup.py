"""The first run (issue 22, point 1): the "compiling kernels" line shows whenever kernels are compiled,
and the learner compiles the actor's update kernels while one worker compiles the rollout's and the
critic's, each once."""

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

# `npppo train` with every process (the workers import the main module) noting each kernel it compiles,
# and the learner each batch it asks for
COMPILE_LOGGING_TRAIN = """
import os, sys
from numba.core import event

class Log(event.Listener):
    def on_start(self, ev):
        with open(os.environ["COMPILE_LOG"], "a") as log:
            print(os.getpid(), ev.data["dispatcher"].py_func.__name__, file=log)

    def on_end(self, ev):
        pass

event.register("numba:compile", Log())
if __name__ == "__main__":
    from npppo.backends.local import LocalWorkers
    from npppo.cli import main

    collect = LocalWorkers.collect

    def noted_collect(self, *args):  # the learner asks for a batch only once every worker is ready
        with open(os.environ["COMPILE_LOG"], "a") as log:
            print(os.getpid(), "collect", file=log)
        return collect(self, *args)

    LocalWorkers.collect = noted_collect
    sys.exit(main(sys.argv[1:]))
"""


def test_with_an_empty_cache_the_first_run_says_it_compiles_and_each_kernel_is_compiled_once(tmp_path):
    # the one test that pays for an empty kernel cache; the README's default (the pendulum preset,
    # whose critic's passes run in worker 0) with 2 workers, so the staggered start runs too
    log = tmp_path / "compiled.txt"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1", "COMPILE_LOG": str(log)}
    env.pop("NUMBA_CACHE_DIR", None)
    script = tmp_path / "train.py"
    script.write_text(COMPILE_LOGGING_TRAIN)
    proc = subprocess.run([sys.executable, str(script), "train", "--steps", "4000", "--workers", "2",
                           "--eval-episodes", "1", "--out", str(tmp_path / "run")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert COMPILING_LINE in lines, proc.stdout
    first_iteration = next(i for i, line in enumerate(lines) if line.startswith("iter"))
    assert lines.index(COMPILING_LINE) < first_iteration
    # the update's and the rollout's kernels are each compiled once in all: the actor's by the learner,
    # the rollout's and then the critic's by worker 0; the other worker, and the learner's first real
    # update, load them from the cache (a real batch whose types differ from the warm-up's made-up one
    # would compile them again)
    compiled = [tuple(line.split()) for line in log.read_text().splitlines()]
    where = {name: [pid for pid, kernel in compiled if kernel == name]
             for name in ("actor_epochs", "critic_epochs", "_policy_rows", "sample_actions")}
    assert all(len(pids) == 1 for pids in where.values()), where
    learner = where["actor_epochs"][0]
    assert where["critic_epochs"] == where["_policy_rows"] == where["sample_actions"] != [learner], where
    # both while the workers started (the learner's warm-up, worker 0's before it was ready), not at
    # the first update
    first_batch = compiled.index((learner, "collect"))
    assert compiled.index((learner, "actor_epochs")) < first_batch
    assert compiled.index((where["critic_epochs"][0], "critic_epochs")) < first_batch


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


def test_without_the_critic_the_warm_up_runs_the_actors_passes_alone(monkeypatch):
    import npppo.passes

    agent = PPO("Pendulum-v1", presets.get("pendulum").replace(num_envs=2, episodes_per_batch=2), seed=0)
    critic_runs = []
    critic_passes = npppo.passes.critic_passes
    monkeypatch.setattr(npppo.passes, "critic_passes", lambda *job: critic_runs.append(1) or critic_passes(*job))
    compile_update_kernels(agent, critic=False)
    assert critic_runs == []
    compile_update_kernels(agent)
    assert critic_runs == [1]
