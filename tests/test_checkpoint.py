"""Checkpoints: pickle-free .npz, written atomically, every fault reported with the file's name."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from configs_for_tests import SMALL

from npppo import PPO, CheckpointError, presets
from npppo.checkpoint import read_checkpoint, snapshot, write_checkpoint
from npppo.nn.layers import LAYER_DTYPE
from npppo.streams import FIXED_RESET, reset_seed

TINY = {**SMALL, "mu_activation": "identity", "sigma_mode": "state_independent", "normalize_obs": True}


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


def test_saving_syncs_the_file_then_its_folder_and_closes_the_folder(agent, tmp_path, monkeypatch):
    synced, folders, closed = [], [], []
    real_fsync, real_open, real_close = os.fsync, os.open, os.close

    def fsync(fd):
        info = os.fstat(fd)
        synced.append((stat.S_ISDIR(info.st_mode), info.st_ino))
        real_fsync(fd)

    def open_(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if os.path.isdir(path):
            folders.append(fd)
        return fd

    def close(fd):
        closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "close", close)
    path = agent.save(tmp_path / "checkpoint.npz")
    # the data before the rename, then the folder that holds the new name
    assert synced == [(False, path.stat().st_ino), (True, tmp_path.stat().st_ino)]
    assert len(folders) == 1 and folders[0] in closed  # no descriptor left open


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


def plain_npy(path):
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))


def bad_member_header(path):
    """An .npz with the metadata entry and a member whose .npy header lacks keys: NumPy's ValueError."""
    meta = io.BytesIO()
    np.save(meta, np.array("{}"))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__npppo__.npy", meta.getvalue())
        archive.writestr("params.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'}\n")


@pytest.mark.parametrize("damage, fault", [
    (corrupt, "corrupt"), (truncate, "truncated"), (empty, "empty"), (foreign, "not an npppo checkpoint"),
    (pickled_npy, "pickle"), (pickled_npz, "pickle"), (text, r"not an \.npz file \(it starts with b'this i'\)"),
    (plain_npy, r"single \.npy array, not an npppo checkpoint"),
    (bad_member_header, r"corrupt or truncated: Header does not contain the correct keys"),
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


# ---------------------------------------------------------------- completeness: values, not just loading


def trained(changes, seed=5):
    config = presets.get("pendulum").replace(**{**TINY, "dtype": "float64", **changes})
    agent = PPO(short_pendulum, config, seed=seed)
    agent.learn(120)
    return agent


FULL_STATE = [
    dict(optimizer="adam", batch_size=16, lr_schedule="linear"),  # minibatches: the iteration seeds the shuffle
    dict(optimizer="sgd", momentum=0.7, normalize_obs=False, sigma_mode="softplus"),
    dict(episodes_per_batch=None, steps_per_batch=45, optimizer="adam"),  # fixed-step batches
]


@pytest.mark.parametrize("changes", FULL_STATE, ids=["adam-minibatch", "sgd", "fixed-steps"])
def test_every_state_array_and_counter_round_trips_by_value(tmp_path, changes):
    agent = trained(changes)
    loaded = PPO.load(agent.save(tmp_path / "c.npz"), env=short_pendulum)
    (original, meta), (restored, restored_meta) = snapshot(agent), snapshot(loaded)
    assert sorted(original) == sorted(restored)
    for name, array in original.items():
        assert restored[name].dtype == array.dtype, name
        np.testing.assert_array_equal(restored[name], array, err_msg=name)
    assert restored_meta == meta  # counters, episodes begun per environment, the acting RNG, the config
    assert (loaded.iteration, loaded.num_timesteps, loaded.seed) == (agent.iteration, agent.num_timesteps, 5)
    assert loaded.config == agent.config
    obs = np.array([0.1, 0.2, 0.3])
    assert np.array_equal(loaded.act(obs), agent.act(obs))


@pytest.mark.parametrize("changes", FULL_STATE, ids=["adam-minibatch", "sgd", "fixed-steps"])
def test_a_loaded_agent_updates_on_a_batch_exactly_as_the_original(tmp_path, changes):
    """Whatever the update reads (optimizer buffers and step counts, observation statistics, the
    iteration and step counters of the schedules and the shuffle) must have been saved."""
    agent = trained(changes)
    loaded = PPO.load(agent.save(tmp_path / "c.npz"), env=short_pendulum)
    batch = agent.collect()
    expected = agent.train_iteration(400, batch)
    metrics = loaded.train_iteration(400, batch)
    np.testing.assert_array_equal(loaded.policy.params, agent.policy.params)
    np.testing.assert_array_equal(loaded.critic.params, agent.critic.params)
    for key in ("ent_coef", "lr_scale", "steps", "actor_loss", "critic_loss", "iteration"):
        assert metrics[key] == expected[key], key
    for name, array in snapshot(agent)[0].items():
        np.testing.assert_array_equal(snapshot(loaded)[0][name], array, err_msg=name)


def test_the_acting_rng_continues_after_stochastic_actions(agent, tmp_path):
    obs = np.array([[0.1, 0.2, 0.3], [-0.5, 0.4, 2.0]])
    for _ in range(3):  # move the acting RNG away from its initial state before saving
        agent.act(obs, deterministic=False)
    loaded = PPO.load(agent.save(tmp_path / "c.npz"))
    fresh = PPO.load(tmp_path / "c.npz")
    for _ in range(2):
        np.testing.assert_array_equal(loaded.act(obs, deterministic=False), agent.act(obs, deterministic=False))
    # the saved state is not the initial one: a test without the calls above would pass by accident
    initial = PPO(short_pendulum, agent.config, seed=2)
    assert not np.array_equal(fresh.act(obs, deterministic=False), initial.act(obs, deterministic=False))


def test_fixed_step_batches_resume_with_new_episode_seeds(tmp_path):
    """The episodes begun per environment are saved, so a resumed fixed-step run resets each
    environment to its next episode's seed rather than replaying the first ones (the running
    episodes themselves cannot be saved)."""
    agent = trained(dict(episodes_per_batch=None, steps_per_batch=45))
    first = PPO(short_pendulum, agent.config, seed=5).collect()
    loaded = PPO.load(agent.save(tmp_path / "c.npz"), env=short_pendulum)
    started = list(agent.episodes_started)
    resumed = loaded.collect()
    assert not any(np.array_equal(resumed.obs[0], obs) for obs in first.obs)
    starts = [0, *(resumed.end_steps[:-1] + 1)]  # each environment's first row (no episode ends in 23 steps)
    assert resumed.end_steps.size == 2 and resumed.episode_returns.size == 0
    for e, row in enumerate(starts):
        obs, _ = short_pendulum().reset(seed=reset_seed(FIXED_RESET, 5, e, started[e]))
        np.testing.assert_array_equal(resumed.obs[row], obs)
    assert loaded.episodes_started == [n + 1 for n in started]


def test_saving_a_loaded_agent_again_keeps_its_metadata(tmp_path):
    """A loaded agent that has not collected yet still saves the episodes begun per environment
    (this was a strict xfail on the wiring-tests branch: the count was reported as 0)."""
    agent = trained(dict(episodes_per_batch=None, steps_per_batch=45))
    loaded = PPO.load(agent.save(tmp_path / "a.npz"))
    again = PPO.load(loaded.save(tmp_path / "b.npz"))
    assert snapshot(again)[1] == snapshot(agent)[1]
    assert sum(snapshot(again)[1]["episodes_started"]) > 0


def test_saving_makes_missing_folders(agent, tmp_path):
    path = agent.save(tmp_path / "runs" / "a" / "model.npz")
    assert path == tmp_path / "runs" / "a" / "model.npz"
    np.testing.assert_array_equal(PPO.load(path).policy.params, agent.policy.params)


def test_metadata_that_is_not_json_is_refused_naming_the_file(agent, tmp_path):
    arrays, _ = snapshot(agent)
    path = tmp_path / "bad-meta.npz"
    np.savez(path, **arrays, __npppo__=np.array("{not json"))
    with pytest.raises(CheckpointError, match=r"bad-meta.npz: its metadata is not valid JSON"):
        PPO.load(path)


def test_the_reward_statistics_round_trip_by_value(tmp_path):
    config = presets.get("pendulum").replace(**TINY, normalize_rewards=True)
    agent = PPO(short_pendulum, config, seed=3)
    agent.learn(120)
    loaded = PPO.load(agent.save(tmp_path / "r.npz"), env=short_pendulum)
    saved, restored = agent.reward_normalizer.return_rms, loaded.reward_normalizer.return_rms
    assert saved.count > 0 and restored.count == saved.count
    for name in ("mean", "var"):
        value = getattr(restored, name)
        assert isinstance(value, np.ndarray) and value.dtype == np.float64, name
        np.testing.assert_array_equal(value, getattr(saved, name))


# ---------------------------------------------------------------- model.npz: the acting part only (issue 22, 13)
def test_a_model_file_holds_what_acting_and_values_need_and_no_training_state(agent, tmp_path):
    from npppo.checkpoint import write_model
    from npppo.inference import Policy

    arrays, meta = snapshot(agent)
    full = write_checkpoint(tmp_path / "checkpoint.npz", arrays, meta)
    model = write_model(tmp_path / "model.npz", arrays, meta, run={"env": "x"})
    model_arrays, model_meta = read_checkpoint(model)
    assert sorted(model_arrays) == sorted(["policy.params", "policy.layers", "critic.params", "critic.layers",
                                           "action_low", "action_high", "obs_rms.mean", "obs_rms.var",
                                           "obs_rms.count"])
    assert model_meta["contents"] == "model" and "act_rng" not in model_meta and "episodes_started" not in model_meta
    assert model_meta["config"] == meta["config"] and model_meta["run"] == {"env": "x"}
    assert model.stat().st_size < full.stat().st_size

    loaded = PPO.load(model)
    obs = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))
    np.testing.assert_array_equal(loaded.value(obs), agent.value(obs))
    assert (loaded.iteration, loaded.num_timesteps) == (agent.iteration, agent.num_timesteps)
    np.testing.assert_allclose(Policy.load(model).act(obs[0]), agent.act(obs[0]), rtol=1e-6, atol=1e-6)


def test_learn_on_an_agent_loaded_from_a_model_file_asks_for_the_checkpoint(agent, tmp_path):
    from npppo.checkpoint import write_model

    model = write_model(tmp_path / "model.npz", *snapshot(agent))
    loaded = PPO.load(model, env=short_pendulum)
    with pytest.raises(CheckpointError, match=r"loaded from .*model\.npz, a model file .* load the run's checkpoint"):
        loaded.learn(10_000)
    assert PPO.load(write_checkpoint(tmp_path / "checkpoint.npz", *snapshot(agent)), env=short_pendulum).learn(
        agent.num_timesteps + 30)


def test_a_checkpoint_written_before_the_contents_key_still_loads_whole(agent, tmp_path):
    arrays, meta = snapshot(agent)
    path = write_checkpoint(tmp_path / "old.npz", arrays, meta)
    assert "contents" not in read_checkpoint(path)[1]
    loaded = PPO.load(path, env=short_pendulum)
    assert loaded.loaded_model is None
    np.testing.assert_array_equal(loaded.optimizers["mu"].state()["m"], agent.optimizers["mu"].state()["m"])


