"""Checkpoints: pickle-free .npz, written atomically, every fault reported with the file's name."""

from __future__ import annotations

import json
import os
import stat

import gymnasium as gym
import numpy as np
import pytest

from npppo import PPO, CheckpointError, presets
from npppo.checkpoint import read_checkpoint, snapshot, write_checkpoint
from npppo.nn.layers import LAYER_DTYPE

TINY = dict(num_envs=2, episodes_per_batch=2, trunk_sizes=[8], head_sizes=[], critic_sizes=[8],
            mu_activation="identity", sigma_mode="state_independent", normalize_obs=True)


def short_pendulum():
    return gym.make("Pendulum-v1", max_episode_steps=30)


@pytest.fixture(scope="module")
def agent():
    agent = PPO(short_pendulum, presets.get("pendulum").replace(**TINY), seed=2)
    agent.learn(60)
    return agent


@pytest.fixture
def saved(agent, tmp_path):
    return agent.save(tmp_path / "checkpoint.npz")


def test_save_and_load_restore_every_array_and_counter(agent, saved):
    loaded = PPO.load(saved)
    for name, array in snapshot(agent)[0].items():
        assert np.array_equal(snapshot(loaded)[0][name], array), name
    assert (loaded.iteration, loaded.num_timesteps, loaded.seed) == (agent.iteration, agent.num_timesteps, 2)
    assert loaded.config == agent.config
    obs = np.array([0.1, 0.2, 0.3])
    assert np.array_equal(loaded.act(obs), agent.act(obs))


def test_a_checkpoint_is_plain_arrays_and_json(saved):
    with np.load(saved, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
        meta = json.loads(str(npz["__npppo__"]))
    assert meta["format"] == "npppo-checkpoint" and meta["format_version"] == 2


def test_each_network_is_stored_with_its_layer_table(agent, saved):
    arrays, _ = read_checkpoint(saved)
    assert arrays["policy.layers"].dtype == LAYER_DTYPE
    np.testing.assert_array_equal(arrays["policy.layers"], agent.policy.layers)
    np.testing.assert_array_equal(arrays["critic.layers"], agent.critic.layers)
    assert list(arrays["policy.layers"]["part"]) == ["trunk", "mu_head"]  # state-independent sigma: no sigma head


def test_a_checkpoint_of_another_format_version_is_refused_naming_both_versions(agent, tmp_path):
    arrays, meta = snapshot(agent)
    path = tmp_path / "old.npz"
    np.savez(path, **arrays, __npppo__=np.array(json.dumps({**meta, "format": "npppo-checkpoint",
                                                             "format_version": 1})))
    with pytest.raises(CheckpointError, match="format version 1, this npppo reads version 2"):
        PPO.load(path)


def test_run_metadata_is_stored_beside_the_state(agent, tmp_path):
    path = write_checkpoint(tmp_path / "c.npz", *snapshot(agent), run={"total_steps": 123, "env": "Pendulum-v1"})
    assert read_checkpoint(path)[1]["run"] == {"total_steps": 123, "env": "Pendulum-v1"}


def test_a_snapshot_does_not_change_when_training_goes_on(tmp_path):
    agent = PPO(short_pendulum, presets.get("pendulum").replace(**TINY), seed=2)
    agent.learn(60)
    arrays, meta = snapshot(agent)
    before = {name: array.copy() for name, array in arrays.items()}
    agent.learn(120)
    assert all(np.array_equal(arrays[name], before[name]) for name in arrays)
    assert meta["iteration"] == 1


def test_a_failed_write_leaves_the_old_checkpoint_and_no_temporary_file(agent, saved, monkeypatch):
    original = saved.read_bytes()

    def crash(handle, **arrays):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        agent.save(saved)
    assert saved.read_bytes() == original
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_checkpoint_gets_the_permissions_the_umask_gives_any_new_file(agent, tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = agent.save(tmp_path / "checkpoint.npz")
        agent.save(path)  # rewritten over itself: the same again
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def corrupt(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path):
    path.write_bytes(b"")


def foreign(path):
    np.savez(path, weights=np.zeros((3, 3)), bias=np.zeros(3))


def pickled_npy(path):
    with open(path, "wb") as handle:
        np.save(handle, np.array([{"evil": 1}], dtype=object), allow_pickle=True)


def pickled_npz(path):
    np.savez(path, __npppo__=np.array("{}"), params=np.array([{"evil": 1}], dtype=object))


def text(path):
    path.write_text("this is not an archive\n")


@pytest.mark.parametrize("damage, fault", [
    (corrupt, "corrupt"), (truncate, "truncated"), (empty, "empty"), (foreign, "not an npppo checkpoint"),
    (pickled_npy, "pickle"), (pickled_npz, "pickle"), (text, "not an .npz"),
])
def test_a_bad_file_raises_checkpoint_error_naming_file_and_fault(saved, damage, fault):
    damage(saved)
    with pytest.raises(CheckpointError, match=fault) as caught:
        PPO.load(saved)
    assert str(saved) in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        PPO.load(tmp_path / "nothing.npz")


def test_an_environment_of_other_sizes_is_refused_with_both_shapes(saved):
    with pytest.raises(CheckpointError, match=r"observation shape \(3,\).*observation shape \(2,\)"):
        PPO.load(saved, env="MountainCarContinuous-v0")
