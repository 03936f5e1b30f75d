"""The Ray backend: the same bits as local workers, a lost actor replaced without changing the result,
a failing environment stopping the run, and a one-line error without the extra; an unreachable
cluster given up after the timeout, and no Ray process left behind by a learner killed with SIGKILL.
Ray starts once per test session (about 10 s here), and once more in the SIGKILL test's learner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from npppo import PPO, WorkerError
from npppo.backends.ray import runtime_env
from npppo.backends.ray_watchdog import descendants, running
from npppo.envs import EnvFactory

HERE = Path(__file__).parent
ENV = EnvFactory("Pendulum-v1", max_episode_steps=50)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")  # the test extra installs it; CI runs these tests
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env={"working_dir": str(HERE), "excludes": ["golden/", "__pycache__/"]})
    yield ray
    ray.shutdown()


def run(config, backend: str, steps: int, env=ENV, callback=None) -> PPO:
    with PPO(env, config, seed=9, workers=2, backend=backend) as agent:
        agent.learn(steps, callback=callback)
    return agent


@pytest.mark.parametrize("changes", [
    {"num_envs": 3, "episodes_per_batch": 5},
    {"num_envs": 3, "episodes_per_batch": None, "steps_per_batch": 240, "batch_size": 64, "normalize_obs": True,
     "normalize_rewards": True, "action_squash": "tanh"},
])
def test_ray_and_local_workers_give_identical_runs(ray_session, tiny_config, changes):
    config = tiny_config(**changes)
    local, remote = run(config, "local", 720), run(config, "ray", 720)
    np.testing.assert_array_equal(remote.policy.params, local.policy.params)
    np.testing.assert_array_equal(remote.critic.params, local.critic.params)
    assert remote.episodes_started == local.episodes_started


def test_a_killed_actor_costs_one_recollected_part_and_no_change(ray_session, tiny_config, capsys):
    config = tiny_config(num_envs=2, episodes_per_batch=4)
    straight = run(config, "ray", 800)

    def kill_actor(agent, metrics):
        if metrics["iteration"] == 2:
            ray_session.kill(agent.rollout.running.actors[0], no_restart=True)

    killed = run(config, "ray", 800, callback=kill_actor)
    np.testing.assert_array_equal(killed.policy.params, straight.policy.params)
    assert "worker 0 (a Ray actor) was lost" in capsys.readouterr().err


def test_an_environment_that_keeps_raising_stops_the_run(ray_session, tiny_config):
    agent = PPO("envs_for_tests:FailingPendulum-v0", tiny_config(), workers=2, backend="ray", max_worker_failures=2)
    with pytest.raises(WorkerError, match=r"failed 2 times.*the simulator fell over"), agent:
        agent.learn(100)


def test_a_module_environment_is_shipped_with_its_folder():
    assert runtime_env("envs_for_tests:SlowPendulum-v0")["working_dir"] == str(HERE)
    assert runtime_env("Pendulum-v1") == {}
    assert runtime_env(EnvFactory("gymnasium:Pendulum-v1")) == {}  # an installed package: nothing to ship


def test_without_ray_the_backend_is_one_line_and_exit_status_1(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from npppo.cli import main\n"
            "sys.exit(main(['train', '--backend', 'ray', '--workers', '2', '--steps', '10', '--out', sys.argv[1]]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == "npppo: error: the ray backend needs Ray, an optional extra: pip install 'npppo[ray]'"
    assert not (tmp_path / "run").exists()


def test_an_unreachable_ray_address_is_given_up_after_the_timeout_with_one_line(tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "npppo.cli", "train", "--backend", "ray", "--workers", "2",
                           "--ray-address", address, "--ray-connect-timeout", "2", "--steps", "100", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"npppo: error: cannot reach the Ray cluster at --ray-address {address} within 2 s")
    assert not out.exists()  # nothing that blocks the same --out again


LEARNER = textwrap.dedent("""
    from npppo import PPO, presets
    from npppo.envs import EnvFactory

    config = presets.get("seed").replace(num_envs=2, episodes_per_batch=2, trunk_sizes=[8], head_sizes=[],
                                         critic_sizes=[8], mu_activation="identity")
    agent = PPO(EnvFactory("Pendulum-v1", max_episode_steps=50), config, workers=2, backend="ray")
    agent.learn(10**9, callback=lambda agent, metrics: print("iteration", flush=True))
""")


def test_no_ray_process_outlives_a_learner_killed_with_sigkill_by_10_s():
    pytest.importorskip("ray")
    learner = subprocess.Popen([sys.executable, "-c", LEARNER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        assert learner.stdout.readline() == "iteration\n"
        time.sleep(1)  # Ray's agents are up by now
        ray_processes = descendants(learner.pid)
        assert len(ray_processes) >= 5  # gcs, raylet, agents, the two actors (and the watchdog)
    finally:
        learner.kill()
        learner.wait()
    killed = time.monotonic()
    while running(ray_processes) and time.monotonic() - killed < 10:
        time.sleep(0.1)
    assert running(ray_processes) == []


def command_lines(pids) -> list[str]:
    """The command lines (Ray's process titles) of ``pids`` that are still there."""
    lines = []
    for pid in pids:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return lines


def wait_for_title(root: int, title: str, timeout: float = 120.0) -> None:
    """Until a process below ``root`` has ``title`` in its command line."""
    end = time.monotonic() + timeout
    while not any(title in line for line in command_lines(descendants(root))):
        assert time.monotonic() < end, f"no process titled {title!r} below the learner after {timeout} s"
        time.sleep(0.02)


# the moments of start-up at which the SIGTERM comes: inside ray.init (which puts Ray's own SIGTERM
# handler in place), and while the learner waits in ray.get for the actors being built (ray.get
# turned the SIGTERM into a bare KeyboardInterrupt: the run ended as Ctrl-C, 130, "interrupted")
@pytest.mark.parametrize("moment", ["ray.init", "core worker connects", "actors starting"])
def test_sigterm_while_ray_starts_ends_the_run_with_143_and_stops_ray(tmp_path, moment):
    out = tmp_path / "run"
    learner = subprocess.Popen([sys.executable, "-u", "-m", "npppo.cli", "train", "--backend", "ray", "--workers", "2",
                                "--steps", "100000", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert learner.stdout.readline().startswith("npppo: training")
    if moment == "ray.init":
        time.sleep(1)  # ray.init takes 3-10 s here
    elif moment == "core worker connects":  # Ray's SIGTERM handler then arms a 3 s abort (npppo.interrupts)
        wait_for_title(learner.pid, "ray::IDLE")
    else:
        wait_for_title(learner.pid, "_SamplerActor")
    ray_processes = descendants(learner.pid)
    learner.terminate()
    _, stderr = learner.communicate(timeout=60)
    assert learner.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == ("npppo: interrupted by SIGTERM before the first iteration completed; "
                                               "nothing saved")
    stopped = time.monotonic()
    while running(ray_processes) and time.monotonic() - stopped < 10:
        time.sleep(0.1)
    assert running(ray_processes) == []


def test_an_interrupted_ray_start_kills_only_the_processes_it_started():
    # what is below the learner after an interrupted start is Ray's head node, except processes that
    # were there before it (another agent's workers or fork server): those are spared
    from npppo.backends.ray import _kill_descendants

    before = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        spare = frozenset(descendants(os.getpid()))
        after = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        _kill_descendants(spare=spare)
        assert after.wait(timeout=10) == -9
        assert before.poll() is None
    finally:
        before.kill()
        before.wait()
