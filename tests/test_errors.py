"""Bad input gets a clear error (SPEC §6): a specific exception in Python, one line from the CLI."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from configs_for_tests import SMALL

from npppo import PPO, ConfigError, EnvError, PPOConfig, TrainingError, presets
from npppo.cli import main
from npppo.progress import read_progress

TINY = {**SMALL, "mu_activation": "identity", "sigma_mode": "state_independent"}
EPISODE = 20  # steps per episode of the short Pendulum used here: 40 env steps per iteration


class ImageEnv(gym.Env):
    """Continuous actions, but (4, 4, 3) image observations."""

    observation_space = gym.spaces.Box(0, 255, (4, 4, 3), np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))


class DictEnv(gym.Env):
    observation_space = gym.spaces.Dict({"position": gym.spaces.Box(-1, 1, (2,))})
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))


class NonFiniteAt(gym.Wrapper):
    """Pendulum whose ``at``-th step (counted over the wrapper's life) returns NaN in ``what`` ("obs" or
    "reward"), or with ``what="shape"`` an observation of shape (2,)."""

    def __init__(self, env: gym.Env, at: int, what: str) -> None:
        super().__init__(env)
        self.at, self.what, self.steps = at, what, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == self.at:
            if self.what == "obs":
                obs = np.array([np.nan, *obs[1:]], dtype=obs.dtype)
            elif self.what == "shape":
                obs = obs[:2]
            else:
                reward = float("inf")
        return obs, reward, terminated, truncated, info


def nan_pendulum(at: int, what: str = "obs"):
    return lambda: NonFiniteAt(gym.make("Pendulum-v1", max_episode_steps=EPISODE), at, what)


def tiny(**changes) -> PPOConfig:
    return presets.get("pendulum").replace(**{**TINY, **changes})


# ------------------------------------------------------------------ Python API: the specific class
@pytest.mark.parametrize("env, message", [
    ("NoSuchEnv-v0", "unknown environment id 'NoSuchEnv-v0'"),
    ("CartPole-v1", r"Discrete\(2\) is not supported.*Box action space"),
    (ImageEnv, r"shape \(4, 4, 3\).*FlattenObservation"),
    (DictEnv, "Dict.*FlattenObservation"),
])
def test_unusable_environments_raise_environment_error(env, message):
    with pytest.raises(EnvError, match=message):
        PPO(env, tiny())


@pytest.mark.parametrize("field, value", [
    ("mu_lr", -1.0), ("clip_eps", 1.5), ("gamma", 0.0), ("actor_epochs", 0), ("trunk_sizes", []),
    ("critic_sizes", [8, -2]), ("actor_activation", "swish"),
])
def test_out_of_range_config_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        tiny(**{field: value})


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*pendulum"):
        presets.get("nope")


@pytest.mark.parametrize("what, shown", [("obs", "nan"), ("reward", "inf")])
def test_non_finite_observation_or_reward_stops_the_run_naming_step_and_value(what, shown):
    agent = PPO(nan_pendulum(at=15, what=what), tiny(num_envs=1, episodes_per_batch=1), seed=0)
    with pytest.raises(EnvError, match=rf"non-finite .*{shown}.* at step 15 of its episode"):
        agent.learn(1000)


def test_an_observation_of_the_wrong_shape_in_mid_episode_names_both_shapes():
    agent = PPO(nan_pendulum(at=15, what="shape"), tiny(num_envs=1, episodes_per_batch=1), seed=0)
    with pytest.raises(EnvError, match=r"observation of shape \(2,\), expected \(3,\).*FlattenObservation"):
        agent.learn(1000)


@pytest.mark.parametrize("sigma", [
    {"sigma_mode": "state_independent"},  # sigma = exp(log_std) underflows to 0 inside a kernel
    {"sigma_mode": "softplus", "head_sizes": [6]},  # sigma has a floor: the loss and gradient overflow
])
def test_a_non_finite_loss_or_gradient_raises_training_error(sigma):
    config = tiny(optimizer="sgd", mu_lr=1e30, sigma_lr=1e30, critic_lr=1e30, max_grad_norm=None,
                  normalize_obs=False, **sigma)
    agent = PPO(lambda: gym.make("Pendulum-v1", max_episode_steps=EPISODE), config, seed=0)
    with pytest.raises(TrainingError, match="non-finite"):
        agent.learn(10_000)


# ------------------------------------------------------------------ command line: one line, non-zero
def run_cli(capsys, *argv: str) -> tuple[int, str]:
    # one worker: the test environments are registered in this process only
    status = main([*argv, "--workers", "1"] if argv[0] == "train" else list(argv))
    return status, capsys.readouterr().err


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npppo: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_json(path, values) -> str:
    path.write_text(values if isinstance(values, str) else json.dumps(values))
    return str(path)


@pytest.mark.parametrize("make_args, fragments", [
    (lambda tmp: ["--env", "NoSuchEnv-v0"], ["unknown environment id"]),
    (lambda tmp: ["--env", "CartPole-v1"], ["Discrete(2)", "Box action space"]),
    (lambda tmp: ["--preset", "nope"], ["unknown preset 'nope'"]),
    (lambda tmp: ["--config", write_json(tmp / "bad.json", "{not json")], ["bad.json", "not valid JSON"]),
    (lambda tmp: ["--config", write_json(tmp / "c.json", {"gamma": 1.5}), "--env", "Pendulum-v1"], ["'gamma'"]),
    (lambda tmp: ["--config", write_json(tmp / "c.json", {"lr": 0.1}), "--env", "Pendulum-v1"], ["'lr'"]),
    (lambda tmp: ["--config", write_json(tmp / "c.json", {"gamma": 0.9})], ["names no environment", "--env"]),
    (lambda tmp: ["--config", str(tmp / "missing.json")], ["missing.json"]),
])
def test_cli_train_bad_input_is_one_line(tmp_path, capsys, make_args, fragments):
    out = tmp_path / "run"
    status, err = run_cli(capsys, "train", *make_args(tmp_path), "--out", str(out))
    assert_one_line_error(status, err, *fragments)
    assert not out.exists()  # nothing half-written


def test_cli_refuses_an_out_folder_that_holds_a_run(tmp_path, capsys):
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    status, err = run_cli(capsys, "train", "--out", str(tmp_path))
    assert_one_line_error(status, err, "already holds a run", "--resume")


def test_cli_eval_of_a_foreign_file_is_one_line(tmp_path, capsys):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    status, err = run_cli(capsys, "eval", str(tmp_path / "other.npz"))
    assert_one_line_error(status, err, "other.npz", "not an npppo checkpoint")


def test_cli_eval_on_an_environment_of_other_sizes_names_both_shapes(tmp_path, capsys):
    agent = PPO("Pendulum-v1", tiny(), seed=0)
    path = agent.save(tmp_path / "model.npz")
    status, err = run_cli(capsys, "eval", str(path), "--env", "MountainCarContinuous-v0")
    assert_one_line_error(status, err, "observation shape (3,)", "observation shape (2,)")


def test_cli_nan_from_the_env_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    env_id = "NanPendulumForTests-v0"
    if env_id not in gym.registry:
        # each of the 2 environments runs 1 episode of 20 steps per iteration: step 70 is in iteration 4
        gym.register(env_id, entry_point=lambda **_: NonFiniteAt(
            gym.make("Pendulum-v1", max_episode_steps=EPISODE), at=70, what="obs"))
    config = write_json(tmp_path / "tiny.json", tiny().to_dict())
    out = tmp_path / "run"
    status, err = run_cli(capsys, "train", "--env", env_id, "--config", config, "--out", str(out),
                          "--steps", "10000", "--checkpoint-every", "2")
    assert_one_line_error(status, err, "non-finite observation", "nan", "last good checkpoint", "iteration 2")
    loaded = PPO.load(out / "checkpoint.npz")
    assert loaded.iteration == 2  # iteration 3 completed but was not due for a checkpoint
    rows, _ = read_progress(out / "progress.csv")
    assert len(rows) == 3
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json", "progress.csv", "run.json"]


def test_the_divergence_error_names_the_iteration_as_the_progress_line_counts_it():
    # the progress line starts at "iter 1"; a run diverging in its first iteration says iteration 1
    config = tiny(optimizer="sgd", mu_lr=1e30, sigma_lr=1e30, critic_lr=1e30, max_grad_norm=None, normalize_obs=False,
                  sigma_mode="state_independent")
    agent = PPO(lambda: gym.make("Pendulum-v1", max_episode_steps=EPISODE), config, seed=0)
    history = []
    with pytest.raises(TrainingError, match="non-finite") as caught:
        agent.learn(10_000, callback=lambda agent, metrics: history.append(metrics["iteration"]))
    assert str(caught.value).startswith(f"iteration {len(history) + 1}: ")
