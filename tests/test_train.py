"""The training driver (npppo/train.py): Ctrl-C and SIGTERM save the last iteration and give the
signal handlers back; the run folder's model files."""

from __future__ import annotations

import os
import signal
import time

from npppo import PPO
from npppo.checkpoint import read_checkpoint
from npppo.envs import EnvFactory
from npppo.train import RunOptions, train


def test_ctrl_c_before_the_first_iteration_ends_is_an_interrupted_run_with_nothing_saved(tmp_path, monkeypatch,
                                                                                         tiny_config):
    agent = PPO("Pendulum-v1", tiny_config(), seed=0)

    def interrupted(total_steps, callback=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(agent, "learn", interrupted)
    result = train(agent, tmp_path / "run", RunOptions(total_steps=80), quiet=True)
    assert (result.interrupted, result.saved_iteration, result.rows) == (True, None, [])
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_ctrl_c_inside_the_driver_saves_the_last_iteration_and_restores_the_signal_handler(tmp_path, tiny_config):
    agent = PPO("Pendulum-v1", tiny_config(), seed=0)
    learn = agent.learn

    def interrupted_learn(total_steps, callback):  # one iteration, then Ctrl-C
        learn(total_steps, callback=lambda a, m: callback(a, m) and False)
        raise KeyboardInterrupt

    agent.learn = interrupted_learn
    before = signal.getsignal(signal.SIGINT)
    result = train(agent, tmp_path / "run", RunOptions(10_000, checkpoint_every=100), quiet=True)
    assert result.interrupted and result.saved_iteration == 1
    assert read_checkpoint(tmp_path / "run" / "checkpoint.npz")[1]["iteration"] == 1
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_inside_the_driver_saves_and_restores_the_previous_handler(tmp_path, tiny_config):
    agent = PPO("Pendulum-v1", tiny_config(), seed=0)
    learn = agent.learn

    def terminated_learn(total_steps, callback):  # one iteration, then SIGTERM from outside
        learn(total_steps, callback=lambda a, m: callback(a, m) and False)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends

    agent.learn = terminated_learn
    before = signal.getsignal(signal.SIGTERM)
    result = train(agent, tmp_path / "run", RunOptions(10_000, checkpoint_every=100), quiet=True)
    assert (result.interrupted, result.saved_iteration, result.signum) == (True, 1, signal.SIGTERM)
    assert read_checkpoint(tmp_path / "run" / "checkpoint.npz")[1]["iteration"] == 1
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_run_folders_model_and_best_are_model_files(tmp_path, tiny_config):
    agent = PPO(EnvFactory("Pendulum-v1", max_episode_steps=30), tiny_config(), seed=0)
    train(agent, tmp_path, RunOptions(120, eval_every=60, eval_episodes=1), quiet=True)
    for name in ("model.npz", "best.npz"):
        assert read_checkpoint(tmp_path / name)[1]["contents"] == "model", name
    assert read_checkpoint(tmp_path / "checkpoint.npz")[1].get("contents", "checkpoint") == "checkpoint"
