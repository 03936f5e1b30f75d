"""Rollout workers: the same bits for any worker count, and no worker outliving its run (close,
`with`, a CLI run, Ctrl-C, a failed run), a killed worker replaced without changing the result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import envs_for_tests
import numpy as np
import pytest

import npppo.losses
from npppo import PPO, ConfigError, EnvError, TrainingError, WorkerError
from npppo.checkpoint import snapshot
from npppo.envs import EnvFactory

HERE = Path(__file__).parent


def processes_tagged(tag: str) -> list[int]:
    """The live processes that inherited the environment variable NPPPO_TEST_TAG=tag."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"NPPPO_TEST_TAG={tag}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def worker_pids(agent: PPO) -> list[int]:
    return [process.pid for process, _ in agent.rollout.running.workers]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def train(config, workers: int, steps: int, env=None, callback=None) -> PPO:
    agent = PPO(env or EnvFactory("Pendulum-v1", max_episode_steps=50), config, seed=5, workers=workers)
    with agent:
        agent.learn(steps, callback=callback)
    return agent


@pytest.mark.parametrize("changes", [
    {},  # whole episodes, full batch, n-step returns (the seed's shape)
    {"episodes_per_batch": None, "steps_per_batch": 300, "num_envs": 3, "batch_size": 64, "advantage": "gae",
     "normalize_obs": True, "optimizer": "adam"},  # fixed-step batches, minibatches, observation statistics
    {"episodes_per_batch": None, "steps_per_batch": 300, "num_envs": 3, "normalize_rewards": True,
     "action_squash": "tanh", "mu_activation": "identity"},  # reward statistics from rows in stored order; squash
])
@pytest.mark.parametrize("small_steps_min_rows", [0, 10**9], ids=["update-on-threads", "critic-in-a-worker"])
def test_one_two_and_three_workers_give_identical_runs(tiny_config, changes, small_steps_min_rows, monkeypatch):
    # with workers, these small update steps run on two threads, or with the critic's in worker 0
    monkeypatch.setattr("npppo.passes.THREADED_MIN_ROWS", small_steps_min_rows)
    config = tiny_config(**{"num_envs": 3, "episodes_per_batch": 5, **changes})
    runs = [train(config, workers, 900) for workers in (1, 2, 3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.policy.params, runs[0].policy.params)
        np.testing.assert_array_equal(other.critic.params, runs[0].critic.params)
        assert [m["return_mean"] for m in other.history] == [m["return_mean"] for m in runs[0].history]
        assert other.episodes_started == runs[0].episodes_started
        # and all that a checkpoint holds: every optimizer's buffers, the observation and reward statistics
        (arrays, meta), (expected, expected_meta) = snapshot(other), snapshot(runs[0])
        assert sorted(arrays) == sorted(expected) and meta == expected_meta
        for name, array in expected.items():
            np.testing.assert_array_equal(arrays[name], array, err_msg=name)


def test_a_full_batch_longer_than_a_row_block_gives_the_same_bits_with_the_critic_in_a_worker(tiny_config,
                                                                                             monkeypatch):
    # worker 0 computes a critic step of more than BLOCK_ROWS rows in row blocks on its own twins, as the
    # learner does (a batch this long takes the threads unless the threshold is raised)
    monkeypatch.setattr("npppo.passes.THREADED_MIN_ROWS", 10**9)
    config = tiny_config(num_envs=2, episodes_per_batch=83, actor_epochs=1, critic_epochs=1)
    one, two = (train(config, workers, 1, env=EnvFactory("Pendulum-v1", max_episode_steps=50)) for workers in (1, 2))
    assert one.history[0]["batch_steps"] > npppo.losses.BLOCK_ROWS
    np.testing.assert_array_equal(two.critic.params, one.critic.params)
    np.testing.assert_array_equal(two.policy.params, one.policy.params)


def test_workers_start_at_learn_and_end_at_close(tiny_config):
    agent = PPO(EnvFactory("Pendulum-v1", max_episode_steps=50), tiny_config(), seed=0, workers=2)
    assert agent.rollout.running is None  # nothing started by the constructor
    agent.learn(100)
    pids = worker_pids(agent)
    assert len(pids) == 2 and all(map(alive, pids))
    agent.learn(200)
    assert worker_pids(agent) == pids  # started once per run, not per iteration
    agent.close()
    assert not any(map(alive, pids))
    with PPO("Pendulum-v1", tiny_config(), seed=0, workers=2) as agent:
        agent.learn(400)
        pids = worker_pids(agent)
    assert not any(map(alive, pids))


def test_a_killed_worker_is_replaced_and_the_result_does_not_change(tiny_config, capsys):
    config = tiny_config(num_envs=2, episodes_per_batch=4)
    straight = train(config, 2, 800)

    def kill_once(agent, metrics):
        if metrics["iteration"] == 2:
            os.kill(worker_pids(agent)[1], signal.SIGKILL)

    killed = train(config, 2, 800, callback=kill_once)
    np.testing.assert_array_equal(killed.policy.params, straight.policy.params)
    np.testing.assert_array_equal(killed.critic.params, straight.critic.params)
    assert "worker 1" in capsys.readouterr().err


def test_a_worker_lost_during_the_critics_passes_is_replaced_and_the_result_does_not_change(tiny_config,
                                                                                            monkeypatch, capsys):
    from npppo.backends.local import WorkerCriticPasses

    config = tiny_config(num_envs=2, episodes_per_batch=4, batch_size=32)  # small steps: the critic's in worker 0
    straight = train(config, 2, 800)
    start_critic, killed = WorkerCriticPasses.start_critic, []

    def start_and_kill(passes, *job):
        start_critic(passes, *job)
        if not killed:
            killed.append(passes.workers.workers[0][0].pid)
            os.kill(killed[0], signal.SIGKILL)

    monkeypatch.setattr(WorkerCriticPasses, "start_critic", start_and_kill)
    again = train(config, 2, 800)
    np.testing.assert_array_equal(again.policy.params, straight.policy.params)
    np.testing.assert_array_equal(again.critic.params, straight.critic.params)
    assert killed and f"worker 0 (pid {killed[0]}) died" in capsys.readouterr().err


def test_a_failure_in_the_critics_passes_in_a_worker_is_not_blamed_on_the_environment(tiny_config, monkeypatch):
    from npppo.backends.local import CriticJob, WorkerCriticPasses

    def broken(passes, twins, optimizer, data, lr_scale, seed, iteration):
        passes.job = CriticJob(twins.models[0].params, {}, data, lr_scale, seed, iteration)  # no optimizer state
        passes.critic, passes.optimizer = twins.models[0], optimizer
        passes.workers._send(0, passes.job)

    monkeypatch.setattr(WorkerCriticPasses, "start_critic", broken)
    config = tiny_config(num_envs=2, episodes_per_batch=4, batch_size=32)  # small steps: the critic's in worker 0
    env = EnvFactory("Pendulum-v1", max_episode_steps=50)
    with PPO(env, config, seed=0, workers=2, max_worker_failures=2) as agent:
        with pytest.raises(WorkerError, match=r"the critic's passes in worker 0 raised KeyError"):
            agent.learn(800)


def test_a_critic_that_diverges_in_a_worker_raises_training_error(tiny_config):
    config = tiny_config(batch_size=32, optimizer="sgd", critic_lr=1e30, max_grad_norm=None)
    with PPO(EnvFactory("Pendulum-v1", max_episode_steps=50), config, seed=0, workers=2) as agent:
        with pytest.raises(TrainingError, match=r"the critic loss .* became non-finite"):
            agent.learn(2_000)
        assert agent.rollout.running is None  # the workers were stopped with the failed update


def test_an_environment_that_keeps_raising_stops_the_run_with_its_traceback(tiny_config):
    tag = uuid.uuid4().hex
    os.environ["NPPPO_TEST_TAG"] = tag
    try:
        agent = PPO("envs_for_tests:FailingPendulum-v0", tiny_config(), seed=0, workers=2, max_worker_failures=2)
        with pytest.raises(WorkerError, match=r"failed 2 times.*RuntimeError: the simulator fell over(.|\n)*Traceback"):
            agent.learn(100)
    finally:
        del os.environ["NPPPO_TEST_TAG"]
    time.sleep(0.5)
    assert processes_tagged(tag) == []


def test_a_non_finite_reward_in_a_worker_stops_the_run_at_once_with_npppos_own_message(tiny_config):
    """npppo's own check fails the same way on every retry: an EnvError, not a replaced worker."""
    with PPO("envs_for_tests:NanRewardPendulum-v0", tiny_config(), seed=0, workers=2, max_worker_failures=5) as agent:
        with pytest.raises(EnvError, match=r"returned a non-finite reward nan at step 3 of its episode"):
            agent.learn(100)


def test_the_forkserver_preloads_the_worker_module(tiny_config, monkeypatch):
    """Each worker forks from a server that has imported npppo (and NumPy, Numba) once already."""
    import multiprocessing

    from npppo.backends import local

    if local.START_METHOD != "forkserver":
        pytest.skip("no forkserver on this platform")
    preloaded = []
    monkeypatch.setattr(multiprocessing.get_context("forkserver"), "set_forkserver_preload", preloaded.append)
    monkeypatch.setattr(local.LocalWorkers, "_start", lambda self, w, **roles: None)  # no processes
    monkeypatch.setattr(local.LocalWorkers, "_receive", lambda self, w, message: None)
    local.LocalWorkers(None, tiny_config(num_envs=2, episodes_per_batch=2), None, 0, [[0], [1]], [0, 0])
    assert preloaded == [["npppo.backends.local"]]


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("recompute", [False, True])
def test_with_an_empty_cache_every_worker_starts_with_the_learners_compile_and_the_others_wait(
        tiny_config, monkeypatch, cached, recompute):
    """Worker 0 compiles the rollout's kernels and then the critic's update kernels while the learner
    compiles the actor's (the critic's too with recompute_advantages, whose critic passes never run in
    a worker); the others start at once too (off the first run's critical path) but wait for worker
    0's kernels."""
    import npppo.warmup
    from npppo.backends import local

    events = []
    monkeypatch.setattr(npppo.warmup, "rollout_kernels_cached", lambda: cached)
    monkeypatch.setattr(local.LocalWorkers, "_start", lambda self, w, first_sampler=None, compile_critic=False:
                        events.append((w, first_sampler and first_sampler[0], compile_critic)))
    monkeypatch.setattr(local.LocalWorkers, "_receive", lambda self, w, message: events.append(("ready", w)))
    config = tiny_config(num_envs=3, episodes_per_batch=3, recompute_advantages=recompute)
    local.LocalWorkers(None, config, None, 0, [[0], [1], [2]], [0, 0, 0],
                       while_first_starts=lambda critic: events.append(("learner compiles", critic)))
    worker_compiles_critic = not cached and not recompute
    first, wait = (None, None) if cached else ("built", "wait")
    assert events == [(0, first, worker_compiles_critic), (1, wait, False), (2, wait, False),
                      ("learner compiles", not worker_compiles_critic), ("ready", 0), ("ready", 1), ("ready", 2)]


def test_a_waiting_worker_starts_once_the_first_has_built_its_sampler_stops_when_told_and_after_the_timeout():
    import multiprocessing
    import threading
    import time

    from npppo.warmup import wait_for_first_sampler

    learner_end, worker_end = multiprocessing.Pipe()
    built_read, built_write = multiprocessing.Pipe(duplex=False)
    threading.Timer(0.2, built_write.close).start()  # the first worker, done building
    started = time.monotonic()
    assert wait_for_first_sampler(built_read, worker_end, poll_s=0.01) is True
    assert 0.2 <= time.monotonic() - started < 2
    built_read, built_write = multiprocessing.Pipe(duplex=False)
    learner_end.send(None)  # the learner's stop
    assert wait_for_first_sampler(built_read, worker_end, poll_s=0.01) is False and not worker_end.poll()
    started = time.monotonic()
    assert wait_for_first_sampler(built_read, worker_end, timeout=0.2, poll_s=0.01) is True  # then it compiles itself
    assert 0.2 <= time.monotonic() - started < 2


def test_environments_workers_cannot_copy_get_one_line_errors(tiny_config):
    with pytest.raises(EnvError, match="not an instance"):
        PPO(envs_for_tests.short_pendulum(), tiny_config(), workers=2)
    with pytest.raises(EnvError, match="must be picklable"):
        PPO(lambda: envs_for_tests.short_pendulum(), tiny_config(), workers=2)


@pytest.mark.parametrize("workers", [0, -2, True, 1.5, "two"])
def test_a_worker_count_that_is_not_a_positive_integer_or_auto_is_refused(tiny_config, workers):
    with pytest.raises(ConfigError, match=r"workers must be a positive integer or 'auto', got"):
        PPO("Pendulum-v1", tiny_config(), workers=workers)


def test_workers_exit_on_their_own_when_closed_not_killed(tiny_config):
    agent = PPO(EnvFactory("Pendulum-v1", max_episode_steps=50), tiny_config(), seed=0, workers=2)
    agent.learn(100)
    processes = [process for process, _ in agent.rollout.running.workers]
    agent.close()
    assert [process.exitcode for process in processes] == [0, 0]


def test_choosing_other_workers_stops_the_running_ones(tiny_config):
    with PPO(EnvFactory("Pendulum-v1", max_episode_steps=50), tiny_config(), seed=0, workers=2) as agent:
        agent.learn(100)
        processes = [process for process, _ in agent.rollout.running.workers]
        agent.set_workers(1)
        assert agent.rollout.running is None and [process.exitcode for process in processes] == [0, 0]
        agent.learn(300)  # on in process
        assert agent.workers == 1 and not any(process.is_alive() for process in processes)


def test_auto_workers_is_the_usable_cores_at_most_the_environments(tiny_config):
    agent = PPO("Pendulum-v1", tiny_config(num_envs=1, episodes_per_batch=1), workers="auto")
    assert agent.workers == 1
    agent = PPO("Pendulum-v1", tiny_config(num_envs=64, episodes_per_batch=64), workers="auto")
    assert agent.workers == min(len(os.sched_getaffinity(0)), 64)


def _cli(tag: str, *args: str, sleep: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "NPPPO_TEST_TAG": tag, "NPPPO_TEST_SLEEP": str(sleep)}
    return subprocess.Popen([sys.executable, "-m", "npppo.cli", "train", *args], cwd=HERE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_no_worker_outlives_a_cli_run_a_failed_run_or_ctrl_c(tmp_path):
    common = ["--preset", "pendulum", "--workers", "2", "--steps", "400"]
    tag = uuid.uuid4().hex
    done = _cli(tag, "--env", "envs_for_tests:SlowPendulum-v0", "--out", str(tmp_path / "a"), *common)
    assert done.wait(timeout=120) == 0, done.communicate()
    failed = _cli(tag, "--env", "envs_for_tests:FailingPendulum-v0", "--out", str(tmp_path / "b"), *common)
    assert failed.wait(timeout=120) == 1
    assert "the simulator fell over" in failed.communicate()[1]
    slow = _cli(tag, "--env", "envs_for_tests:SlowPendulum-v0", "--out", str(tmp_path / "c"), *common[:-1],
                "100000", sleep=0.002)
    deadline = time.monotonic() + 60
    while not (tmp_path / "c" / "progress.csv").exists():
        assert slow.poll() is None and time.monotonic() < deadline, slow.communicate()
        time.sleep(0.05)
    slow.send_signal(signal.SIGINT)
    assert slow.wait(timeout=60) == 130
    assert "saved iteration" in slow.communicate()[1]
    time.sleep(0.5)
    assert processes_tagged(tag) == []


def test_the_ray_backend_gets_the_run_and_the_address(tiny_config, monkeypatch):
    import npppo.backends.ray as ray_backend

    made = []

    class Recorder:
        def __init__(self, *args):
            made.append(args)

        def collect(self, *args):
            raise KeyboardInterrupt  # enough: the backend was built

        def close(self):
            pass

    monkeypatch.setattr(ray_backend, "RayWorkers", Recorder)
    monkeypatch.setattr(ray_backend, "import_ray", lambda: None)
    env = EnvFactory("Pendulum-v1", max_episode_steps=50)
    agent = PPO(env, tiny_config(num_envs=3, episodes_per_batch=3), seed=4, workers=2, backend="ray",
                max_worker_failures=5, ray_address="ray://head:10001", ray_connect_timeout=12)
    assert (agent.workers, agent.backend, agent.ray_address) == (2, "ray", "ray://head:10001")
    with pytest.raises(KeyboardInterrupt):
        agent.learn(100)
    (spec, config, spaces, seed, slices, started, failures, address, timeout, step_limit), = made
    assert spec == env and config is agent.config and (spaces.obs_dim, spaces.action_dim) == (3, 1)
    assert seed == 4 and step_limit == 100_000
    assert slices == [[0, 1], [2]] and list(started) == [0, 0, 0] and failures == 5
    assert address == "ray://head:10001" and timeout == 12


def test_a_resumed_fixed_step_run_continues_each_environments_episode_count_with_workers(tiny_config, tmp_path):
    config = tiny_config(num_envs=3, episodes_per_batch=None, steps_per_batch=150)
    first = train(config, 1, 450)  # 3 x 50 steps an environment, episodes of 50: each has begun 4
    path = first.save(tmp_path / "c.npz")
    counts = {}
    for workers in (1, 2):
        with PPO.load(path, env=EnvFactory("Pendulum-v1", max_episode_steps=50)) as agent:
            agent.set_workers(workers)
            agent.learn(600)
            counts[workers] = (list(agent.episodes_started), agent.policy.params.copy())
    # resumed: each environment starts a fresh episode (its 5th seed), then a 6th after 50 steps
    assert first.episodes_started == [4, 4, 4] and counts[1][0] == counts[2][0] == [6, 6, 6]
    np.testing.assert_array_equal(counts[1][1], counts[2][1])


def test_workers_that_cannot_start_are_all_stopped_and_say_why(tiny_config):
    import gymnasium as gym

    if "OnlyHerePendulum-v0" not in gym.registry:  # registered in this process only: workers cannot make it
        gym.register("OnlyHerePendulum-v0", entry_point="gymnasium.envs.classic_control:PendulumEnv",
                     max_episode_steps=20)
    tag = uuid.uuid4().hex
    os.environ["NPPPO_TEST_TAG"] = tag
    try:
        agent = PPO("OnlyHerePendulum-v0", tiny_config(), seed=0, workers=2)
        with pytest.raises(EnvError, match=r"worker process cannot make the environment.*module:Id"):
            agent.learn(100)
    finally:
        del os.environ["NPPPO_TEST_TAG"]
    time.sleep(0.5)
    # this process's own helpers (the fork server, the resource tracker) may have started with the tag: no
    # worker (their children) may be left
    workers = [pid for pid in processes_tagged(tag)
               if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid()]
    assert workers == []


def test_a_script_without_a_main_guard_stops_with_a_hint_instead_of_restarting_workers_forever(tmp_path):
    # workers start by importing the main module: a script that trains at import time starts training
    # again in each worker, which then dies while starting; the learner gives up after max_worker_failures
    script = tmp_path / "unguarded.py"
    script.write_text("from npppo import PPO, presets\n"
                      "PPO('Pendulum-v1', presets.get('pendulum'), workers=2).learn(1000)\n")
    tag = uuid.uuid4().hex
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**os.environ, "NPPPO_TEST_TAG": tag},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert "WorkerError" in last and "failed 3 times in a row" in last and "if __name__ ==" in last, last
    time.sleep(0.5)
    assert processes_tagged(tag) == []


def test_a_script_that_ends_without_close_exits_and_stops_its_workers(tmp_path):
    # workers ignore SIGTERM and wait for the next job: multiprocessing's own exit handler, which
    # terminates and then joins them, waited for them forever before npppo stopped them at exit itself
    script = tmp_path / "no_close.py"
    script.write_text("from npppo import PPO, presets\n"
                      "if __name__ == '__main__':\n"
                      "    agent = PPO('Pendulum-v1', presets.get('pendulum'), workers=2)\n"
                      "    agent.learn(2000)\n"
                      "    print(len(agent.rollout.running.workers), 'workers running at the end')\n")
    tag = uuid.uuid4().hex
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**os.environ, "NPPPO_TEST_TAG": tag},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2 workers running at the end"
    time.sleep(0.5)
    assert processes_tagged(tag) == []


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), "30", True])
def test_a_ray_connect_timeout_that_is_not_a_positive_number_of_seconds_is_refused(tiny_config, timeout):
    with pytest.raises(ConfigError, match="ray_connect_timeout must be a positive number of seconds"):
        PPO("Pendulum-v1", tiny_config(), ray_connect_timeout=timeout)


def test_workers_leave_sigterm_to_the_learner(tiny_config, capsys):
    """SIGTERM to a whole job (a batch scheduler's stop) reaches the workers too: they go on until the
    learner, which saves its last iteration, stops them."""
    terminated = []

    def terminate_workers(agent, metrics):
        if metrics["iteration"] == 1:
            terminated.extend(worker_pids(agent))
            for pid in terminated:
                os.kill(pid, signal.SIGTERM)
            time.sleep(0.5)

    train(tiny_config(num_envs=2, episodes_per_batch=2), 2, 200, callback=terminate_workers)
    assert len(terminated) == 2
    assert "restarting it" not in capsys.readouterr().err


def test_a_script_read_from_stdin_with_workers_is_told_why_they_cannot_start():
    # spawn and forkserver workers import the main script from its file; `python - < script.py` has none
    script = "from npppo import PPO, presets\nPPO('Pendulum-v1', presets.get('pendulum'), workers=2).learn(2000)\n"
    proc = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("npppo.errors.ConfigError: rollout workers start by importing the main script")
    assert "'<stdin>'" in last and "save the script to a file" in last
    assert "__main__" not in proc.stderr and "restarting it" not in proc.stderr
