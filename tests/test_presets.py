"""The presets for the MuJoCo locomotion tasks and BipedalWalker: a short training on each environment
(tiny networks, two iterations), so that a broken install (npppo[mujoco], npppo[box2d]) fails here."""

from __future__ import annotations

import numpy as np
import pytest

from npppo import PPO, presets

TINY = dict(num_envs=2, steps_per_batch=256, batch_size=64, actor_epochs=2, critic_epochs=2, trunk_sizes=[16],
            critic_sizes=[16])


@pytest.mark.parametrize(("env", "preset", "squash"), [
    ("HalfCheetah-v5", "halfcheetah", "clip"),
    ("HalfCheetah-v5", "mujoco", "clip"),
    ("Hopper-v5", "mujoco", "tanh"),
    ("Walker2d-v5", "mujoco", "clip"),
    ("BipedalWalker-v3", "bipedalwalker", "tanh"),
])
def test_a_short_training_runs_on_each_environment(env, preset, squash, tmp_path, monkeypatch):
    pytest.importorskip("Box2D" if preset == "bipedalwalker" else "mujoco")
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working folder
    assert presets.for_env(env) == preset or preset == "mujoco"  # the mujoco preset runs HalfCheetah-v5 too
    config = presets.get(preset).replace(action_squash=squash, **TINY)
    agent = PPO(env, config, seed=0)
    history = agent.learn(512)
    assert [m["steps"] for m in history] == [256, 512]
    assert all(np.isfinite(m["actor_loss"]) and np.isfinite(m["critic_loss"]) for m in history)
    assert agent.reward_normalizer.return_rms.count == 512
    actions = agent.act(np.zeros((3, agent.obs_dim)), deterministic=False)
    assert np.all((actions >= agent.action_low) & (actions <= agent.action_high))
    mean, _ = agent.evaluate(episodes=1)
    assert np.isfinite(mean)


@pytest.mark.parametrize("preset", ["mujoco", "bipedalwalker"])
def test_the_locomotion_presets_normalise_observations_and_rewards(preset):
    config, facts = presets.load(preset)
    assert config.normalize_obs and config.normalize_rewards and config.optimizer == "adam"
    assert config.batch_size == 64 and config.actor_epochs == 10 and config.gae_lambda == 0.95
    assert config.steps_per_batch % config.num_envs == 0 and config.num_envs % 2 == 0  # two workers share it
    assert facts["steps"] in ((1_000_000,) if preset == "mujoco" else (3_000_000, 5_000_000))


def test_the_mujoco_preset_keeps_cleanrl_s_2048_step_batches():
    config = presets.get("mujoco")
    assert (config.steps_per_batch, config.gamma, config.clip_eps, config.max_grad_norm) == (2048, 0.99, 0.2, 0.5)
    assert (config.mu_lr, config.lr_schedule, config.trunk_sizes, config.actor_activation) == (
        3e-4, "linear", [64, 64], "tanh")
