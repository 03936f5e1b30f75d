"""Making environments: ids (and ``module:Id`` from the current folder), instances, factories, the
time-limit check for whole-episode batches, and loaded agents that need ``env=``."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

from npppo import PPO, EnvError
from npppo.envs import EnvFactory, check_spaces, check_time_limit, env_name, make_env

MODULE = textwrap.dedent("""
    import gymnasium as gym

    gym.register("MyPendulum-v0", entry_point="gymnasium.envs.classic_control:PendulumEnv", max_episode_steps=30)
""")


class Endless(gym.Env):
    """A valid continuous environment that never ends an episode by itself."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_ids_instances_and_factories_make_environments():
    instance = gym.make("Pendulum-v1")
    assert make_env(instance) is instance
    assert make_env("Pendulum-v1", g=5.0).unwrapped.g == 5.0
    assert isinstance(make_env(lambda: gym.make("Pendulum-v1")), gym.Env)
    assert env_name(instance) == "Pendulum-v1" and env_name("Hopper-v5") == "Hopper-v5"
    assert check_spaces(instance)[:2] == (3, 1)


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


def test_whole_episode_batches_refuse_an_environment_without_a_time_limit(tiny_config):
    with pytest.raises(EnvError, match=r"no time limit.*--max-episode-steps"):
        PPO(Endless(), tiny_config())
    check_time_limit(gym.wrappers.TimeLimit(Endless(), 10))  # a wrapper is enough
    PPO(Endless(), tiny_config(episodes_per_batch=None, steps_per_batch=64))  # fixed-step batches need none


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


def test_mujoco_warnings_go_to_the_run_folder_not_the_current_one(tmp_path, monkeypatch):
    import mujoco

    from npppo.envs.mujoco_log import LOG_NAME, warnings_into

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><joint type='hinge'/><geom size='0.1'/></body></worldbody></mujoco>")
    data = mujoco.MjData(model)
    previous = mujoco.get_mju_user_warning()
    try:
        with warnings_into(run):
            make_env("InvertedPendulum-v5").close()  # a MuJoCo environment, made as the run makes them
            data.qvel[:] = np.nan
            mujoco.mj_step(model, data)  # MuJoCo warns: an unstable simulation
    finally:
        mujoco.set_mju_user_warning(previous)
    assert not (tmp_path / LOG_NAME).exists()
    assert "WARNING: Nan, Inf or huge value in QVEL" in (run / LOG_NAME).read_text()
