"""Making environments: ids (and ``module:Id`` from the current folder), instances, factories, the
episode-step bound of whole-episode batches and evaluations, tanh bounds, and loaded agents that need ``env=``."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from envs_for_tests import Endless, SelfEnding

from npppo import PPO, ConfigError, EnvError
from npppo.envs import EnvFactory, check_spaces, env_name, make_env
from npppo.evaluation import evaluate

MODULE = textwrap.dedent("""
    import gymnasium as gym

    gym.register("MyPendulum-v0", entry_point="gymnasium.envs.classic_control:PendulumEnv", max_episode_steps=30)
""")


def test_ids_instances_and_factories_make_environments():
    instance = gym.make("Pendulum-v1")
    assert make_env(instance) is instance
    assert make_env("Pendulum-v1", g=5.0).unwrapped.g == 5.0
    assert isinstance(make_env(lambda: gym.make("Pendulum-v1")), gym.Env)
    assert env_name(instance) == "Pendulum-v1" and env_name("Hopper-v5") == "Hopper-v5"
    spaces = check_spaces(instance)
    assert (spaces.obs_dim, spaces.action_dim) == (3, 1)


def test_a_factory_of_id_kwargs_and_time_limit_is_picklable_and_applies_them():
    factory = pickle.loads(pickle.dumps(EnvFactory("Pendulum-v1", {"g": 3.0}, max_episode_steps=7)))
    env = factory()
    assert env.unwrapped.g == 3.0 and env_name(factory) == "Pendulum-v1"
    env.reset(seed=0)
    steps = 0
    while not any(env.step(env.action_space.sample())[2:4]):
        steps += 1
    assert steps + 1 == 7


def test_unknown_id_and_bad_kwargs_say_what_to_do():
    with pytest.raises(EnvError, match=r"unknown environment id 'Nope-v0'.*'module:Id'"):
        make_env("Nope-v0")
    with pytest.raises(EnvError, match="does not take the keyword arguments"):
        make_env("Pendulum-v1", colour="red")
    with pytest.raises(EnvError, match="cannot import module 'not_a_module'"):
        make_env("not_a_module:Thing-v0")


def test_module_id_imports_the_module_from_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "my_envs_for_npppo.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    env = make_env("my_envs_for_npppo:MyPendulum-v0")
    assert env.spec.max_episode_steps == 30


def test_cli_trains_and_evaluates_a_module_environment_from_the_current_folder(tmp_path):
    (tmp_path / "my_envs_for_npppo.py").write_text(MODULE)
    run = [sys.executable, "-m", "npppo.cli"]
    trained = subprocess.run([*run, "train", "--env", "my_envs_for_npppo:MyPendulum-v0", "--steps", "600",
                              "--out", "r", "--workers", "2"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
    assert trained.returncode == 0, trained.stderr
    evaluated = subprocess.run([*run, "eval", "r", "--episodes", "2"], cwd=tmp_path, capture_output=True, text=True,
                               timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "on my_envs_for_npppo:MyPendulum-v0: return" in evaluated.stdout


def test_an_environment_that_ends_its_own_episodes_trains_without_a_time_limit(tiny_config):
    """No TimeLimit and no registered max_episode_steps, but episodes end by themselves: it trains."""
    env = gym.make("envs_for_tests:SelfEndingForTests-v0")
    assert env.spec.max_episode_steps is None
    agent = PPO("envs_for_tests:SelfEndingForTests-v0", tiny_config())
    history = agent.learn(60)
    assert history and all(m["episodes"] == 2 and 1 <= m["length_mean"] <= 15 for m in history)
    PPO(SelfEnding(), tiny_config()).learn(30)  # an instance too


@pytest.mark.parametrize("workers", [1, 2])
def test_an_episode_past_the_step_limit_stops_whole_episode_batches_with_the_fix(tiny_config, workers):
    agent = PPO("envs_for_tests:EndlessForTests-v0", tiny_config(), workers=workers, episode_step_limit=50)
    with agent, pytest.raises(EnvError, match=r"'EndlessForTests-v0'.*ran 50 steps without terminating or "
                                              r"truncating.*--max-episode-steps.*--episode-step-limit"):
        agent.learn(1000)


def test_every_evaluation_stops_at_the_step_limit(tiny_config):
    agent = PPO(Endless(), tiny_config(episodes_per_batch=None, steps_per_batch=64), episode_step_limit=30)
    history = agent.learn(128)  # fixed-step batches cut episodes: training goes on, with no episode finished
    assert [m["episodes"] for m in history] == [0, 0]
    with pytest.raises(EnvError, match=r"ran 30 steps .*episode_step_limit"):
        agent.evaluate(episodes=1)
    with pytest.raises(EnvError, match=r"ran 7 steps"):
        evaluate(lambda obs: np.zeros(1), Endless(), 1, episode_step_limit=7)
    assert evaluate(lambda obs: np.zeros(1), gym.wrappers.TimeLimit(Endless(), 40), 2, episode_step_limit=40)[0] == 0


def test_the_step_limit_is_a_positive_integer(tiny_config):
    with pytest.raises(ConfigError, match="episode_step_limit must be a positive integer"):
        PPO(Endless(), tiny_config(), episode_step_limit=0)
    assert PPO(Endless(), tiny_config()).episode_step_limit == 100_000


class Unbounded(Endless):
    action_space = gym.spaces.Box(np.array([-1.0, -np.inf]), np.array([1.0, np.inf]), dtype=np.float64)


class Empty(Endless):
    action_space = gym.spaces.Box(np.array([1.0]), np.array([1.0]), dtype=np.float64)


@pytest.mark.parametrize("env", [Unbounded, Empty])
def test_tanh_squash_refuses_infinite_or_empty_bounds_at_construction(tiny_config, env):
    with pytest.raises(EnvError, match=r"action_squash='tanh' needs finite bounds.*use action_squash='clip'.*rescale"):
        PPO(env(), tiny_config(action_squash="tanh"))
    clipped = PPO(env(), tiny_config(episodes_per_batch=None, steps_per_batch=32))  # clip mode handles them
    clipped.learn(32)


def test_an_agent_trained_on_an_instance_and_loaded_without_env_says_to_pass_env(tiny_config, tmp_path):
    agent = PPO(gym.make("Pendulum-v1", max_episode_steps=20), tiny_config())
    agent.learn(40)
    loaded = PPO.load(agent.save(tmp_path / "m.npz"))
    assert loaded.act(np.zeros(3)).shape == (1,)  # acting needs no environment
    for call in (lambda: loaded.evaluate(1), lambda: loaded.learn(80)):
        with pytest.raises(EnvError, match=r"PPO.load\(path, env=...\)"):
            call()
    again = PPO.load(tmp_path / "m.npz", env=lambda: gym.make("Pendulum-v1", max_episode_steps=20))
    assert again.evaluate(1)[0] < 0


@pytest.mark.parametrize(("env_id", "extra"), [("Hopper-v5", "mujoco"), ("LunarLanderContinuous-v3", "box2d")])
def test_a_missing_package_hint_names_the_extra_of_the_environments_family(monkeypatch, env_id, extra):
    def missing(*args, **kwargs):
        raise gym.error.DependencyNotInstalled("the simulator is not installed")

    monkeypatch.setattr(gym, "make", missing)
    with pytest.raises(EnvError) as caught:
        make_env(env_id)
    assert str(caught.value).endswith(f"run: pip install 'npppo[{extra}]'")
    assert "box2d" not in str(caught.value) or extra == "box2d"


def unstable_mujoco_step() -> None:
    """One step of a MuJoCo simulation with NaN velocities: MuJoCo warns."""
    import mujoco

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><joint type='hinge'/><geom size='0.1'/></body></worldbody></mujoco>")
    data = mujoco.MjData(model)
    data.qvel[:] = np.nan
    mujoco.mj_step(model, data)


@pytest.fixture
def mujoco_default_handler(monkeypatch):
    """MuJoCo's own warning handler (which writes MUJOCO_LOG.TXT into the current folder), as in a
    fresh process; the handler before the test is put back after it."""
    import mujoco

    import npppo.envs.mujoco_log

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(None)
    monkeypatch.setattr(npppo.envs.mujoco_log, "_installed", [])
    monkeypatch.delenv(npppo.envs.mujoco_log.RUN_DIR_VARIABLE, raising=False)
    yield
    mujoco.set_mju_user_warning(previous)


@pytest.mark.parametrize("how", ["warnings_into", "train"])
def test_mujoco_warnings_go_to_the_run_folder_not_the_current_one(how, tmp_path, monkeypatch, tiny_config,
                                                                   mujoco_default_handler):
    from npppo.envs.mujoco_log import LOG_NAME, warnings_into
    from npppo.train import RunOptions, train

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    if how == "warnings_into":
        with warnings_into(run):
            make_env("InvertedPendulum-v5").close()  # a MuJoCo environment, made as the run makes them
            unstable_mujoco_step()
    else:  # the training driver (scripts/learning_curves.py trains through it, not through the CLI)
        agent = PPO("InvertedPendulum-v5", tiny_config(episodes_per_batch=None, steps_per_batch=64), seed=0)
        collect = agent.collect
        monkeypatch.setattr(agent, "collect", lambda: (unstable_mujoco_step(), collect())[1])  # warns mid-run
        train(agent, run, RunOptions(64, eval_episodes=1), quiet=True)
    assert not (tmp_path / LOG_NAME).exists()
    assert "WARNING: Nan, Inf or huge value in QVEL" in (run / LOG_NAME).read_text()


def test_a_mujoco_environment_made_outside_a_run_warns_on_stderr_not_into_the_current_folder(
        tmp_path, monkeypatch, capfd, mujoco_default_handler):
    from npppo.envs.mujoco_log import LOG_NAME

    monkeypatch.chdir(tmp_path)
    make_env("HalfCheetah-v5").close()  # MuJoCo 3.3 warns while compiling the model ("settotalmass")
    unstable_mujoco_step()
    assert not (tmp_path / LOG_NAME).exists()
    assert "npppo: MuJoCo warning: Nan, Inf or huge value in QVEL" in capfd.readouterr().err
