"""npppo.inference: acting from a checkpoint with NumPy alone gives the agent's own actions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from npppo import PPO
from npppo.config import PPOConfig
from npppo.inference import META_KEY, Policy

SEED = dict(mu_activation="relu")  # the seed's networks: ELU actor with ReLU outputs, ReLU critic
SOFTPLUS = dict(sigma_mode="softplus", actor_activation="elu", elu_alpha=0.5)
TUNED = dict(actor_activation="tanh", sigma_mode="state_independent", critic_activation="tanh", normalize_obs=True,
             optimizer="adam")
OTHER_DEPTHS = dict(TUNED, trunk_sizes=[9, 7, 5], head_sizes=[4], critic_sizes=[6])  # inference reads each width
SQUASHED = dict(TUNED, action_squash="tanh", normalize_rewards=True)  # tanh-squashed actions


def short_pendulum():
    return gym.make("Pendulum-v1", max_episode_steps=30)


def trained_agent(tmp_path: Path, config: PPOConfig) -> tuple[PPO, Path]:
    agent = PPO(short_pendulum, config, seed=1)
    agent.learn(120)  # two iterations: parameters and observation statistics move away from their start
    return agent, agent.save(tmp_path / "model.npz")


def observations(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).uniform([-1, -1, -8], [1, 1, 8], size=(n, 3))


@pytest.mark.filterwarnings("ignore:the mu head ends in ReLU")
@pytest.mark.parametrize("changes", [SEED, SOFTPLUS, TUNED, SQUASHED, OTHER_DEPTHS],
                         ids=["seed", "softplus", "tuned", "tanh", "other-depths"])
@pytest.mark.parametrize(("dtype", "rtol", "atol"), [("float64", 1e-10, 1e-12), ("float32", 1e-4, 1e-5)])
def test_policy_matches_the_agent(tmp_path, tiny_config, changes, dtype, rtol, atol):
    agent, path = trained_agent(tmp_path, tiny_config(dtype=dtype, **changes))
    policy = Policy.load(path)
    obs = observations()
    assert np.allclose(policy.act(obs), agent.act(obs), rtol=rtol, atol=atol)
    assert np.allclose(policy.act(obs[0]), agent.act(obs[0]), rtol=rtol, atol=atol)
    mu, sigma = agent.policy.distribution(agent.normalize_obs(obs))
    assert np.allclose(policy.distribution(obs)[0], mu, rtol=rtol, atol=atol)
    assert np.allclose(policy.distribution(obs)[1], sigma, rtol=rtol, atol=atol)
    assert np.allclose(policy.value(obs), agent.value(obs), rtol=rtol, atol=atol)
    assert isinstance(policy.value(obs[0]), float)


@pytest.mark.filterwarnings("ignore:the mu head ends in ReLU")
@pytest.mark.parametrize("changes", [TUNED, SEED], ids=["state-independent", "sigma-head"])
def test_a_sample_is_mu_plus_sigma_times_the_rngs_normal_draws_clipped(tmp_path, tiny_config, changes):
    _, path = trained_agent(tmp_path, tiny_config(dtype="float64", **changes))
    policy = Policy.load(path)
    obs = observations(64)
    mu, sigma = policy.distribution(obs)
    noise = np.random.default_rng(9).standard_normal(mu.shape)
    expected = np.clip(mu + sigma * noise, policy.action_low, policy.action_high)
    first = policy.act(obs, deterministic=False, rng=np.random.default_rng(9))
    np.testing.assert_allclose(first, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(policy.act(obs, deterministic=False, rng=np.random.default_rng(9)), first)
    np.testing.assert_allclose(policy.act(obs), np.clip(mu, -2.0, 2.0), rtol=1e-12, atol=1e-12)


def test_inference_works_where_neither_numba_nor_gymnasium_is_installed(tmp_path, tiny_config):
    _, path = trained_agent(tmp_path, tiny_config(**TUNED))
    code = (
        "import sys\n"
        "sys.modules['numba'] = sys.modules['gymnasium'] = None  # as on a machine without them\n"
        "import numpy as np, npppo.inference\n"
        f"action = npppo.inference.Policy.load({str(path)!r}).act(np.zeros(3))\n"
        "assert action.shape == (1,) and np.all(np.isfinite(action)), action\n"
        "assert 'npppo.ppo' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_module_works_as_a_copied_single_file(tmp_path, tiny_config):
    _, path = trained_agent(tmp_path, tiny_config(**TUNED))
    source = Path(__file__).parents[1] / "npppo" / "inference.py"
    spec = importlib.util.spec_from_file_location("standalone_inference", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    obs = observations()
    assert np.array_equal(module.Policy.load(path).act(obs), Policy.load(path).act(obs))


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not an npppo checkpoint"):
        Policy.load(tmp_path / "other.npz")


def test_a_checkpoint_of_another_format_version_is_refused_naming_it(tmp_path, tiny_config):
    _, path = trained_agent(tmp_path, tiny_config(**TUNED))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays[META_KEY]))
    meta["format_version"] = 1
    arrays[META_KEY] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(ValueError, match="version 1 is not an npppo checkpoint of version 2"):
        Policy.load(tmp_path / "old.npz")


def rewrite(path: Path, target: Path, change) -> Path:
    """A copy of the checkpoint at ``path`` with ``change(arrays, meta)`` applied, written to ``target``."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays.pop(META_KEY)))
    change(arrays, meta)
    np.savez(target, **{META_KEY: np.array(json.dumps(meta))}, **arrays)
    return target


@pytest.mark.parametrize(("change", "message"), [
    (lambda a, m: a.pop("critic.params"), "incomplete: it has no 'critic.params'"),
    (lambda a, m: a.pop("policy.layers"), "incomplete: it has no 'policy.layers'"),
    (lambda a, m: m.update({"format": "other"}), "format 'other'"),
])
def test_a_checkpoint_that_does_not_fit_is_refused_with_the_reason(tmp_path, tiny_config, change, message):
    _, path = trained_agent(tmp_path, tiny_config(**TUNED))
    with pytest.raises(ValueError, match=message):
        Policy.load(rewrite(path, tmp_path / "bad.npz", change))


@pytest.mark.parametrize("change", [
    lambda a, m: a.update({"policy.params": a["policy.params"][:-1]}),
    lambda a, m: a.update({"policy.params": np.append(a["policy.params"], 0.0)}),
    lambda a, m: a.update({"critic.params": a["critic.params"][1:]}),
    lambda a, m: a.update({"critic.params": np.append(a["critic.params"], 0.0)}),
    lambda a, m: a.update({"policy.layers": a["policy.layers"][:-1]}),
], ids=["policy-short", "policy-long", "critic-short", "critic-long", "policy-table-short"])
def test_parameters_that_do_not_fit_the_layer_tables_are_refused_at_load(tmp_path, tiny_config, change):
    _, path = trained_agent(tmp_path, tiny_config(**TUNED))
    with pytest.raises(ValueError, match=r"does not fit|parameter|layer"):
        Policy.load(rewrite(path, tmp_path / "bad.npz", change))


def test_observations_of_the_wrong_shape_are_refused(tmp_path, tiny_config):
    _, path = trained_agent(tmp_path, tiny_config(**TUNED))
    policy = Policy.load(path)
    for obs in (np.zeros((2, 4)), np.zeros((1, 2, 3)), np.zeros(2), np.zeros(4)):
        with pytest.raises(ValueError, match=r"expected observations of shape \(3,\) or \(k, 3\)"):
            policy.act(obs)
    assert policy.act(np.zeros((5, 3))).shape == (5, 1) and policy.value(np.zeros((5, 3))).shape == (5,)


def test_normalisation_uses_the_saved_statistics_and_clip(tmp_path, tiny_config, obs_statistics):
    agent, path = trained_agent(tmp_path, tiny_config(dtype="float64", **dict(TUNED, obs_clip=0.5)))
    policy = Policy.load(path)
    obs = observations(8) * 10
    mean, var = obs_statistics(agent)
    x = np.clip((obs - mean) / np.sqrt(var + 1e-8), -0.5, 0.5)
    mu, sigma = agent.policy.distribution(x)
    np.testing.assert_allclose(policy.distribution(obs)[0], mu, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(policy.distribution(obs)[1], sigma, rtol=1e-12, atol=1e-14)
    assert policy.obs_dim == 3 and policy.action_dim == 1 and policy.config["obs_clip"] == 0.5


def test_a_layer_table_that_is_not_back_to_back_is_refused(tmp_path, tiny_config):
    _, path = trained_agent(tmp_path, tiny_config(**TUNED))

    def shift(arrays, meta):
        layers = arrays["policy.layers"].copy()
        layers["offset"][1] += 1
        arrays["policy.layers"] = layers

    with pytest.raises(ValueError, match="not back to back"):
        Policy.load(rewrite(path, tmp_path / "bad.npz", shift))


def test_single_layer_heads_and_trunk_load_and_act_as_the_agent(tmp_path, tiny_config):
    agent, path = trained_agent(tmp_path, tiny_config(**dict(TUNED, trunk_sizes=[5], head_sizes=[], dtype="float64")))
    assert list(Policy.load(path).parts["mu_head"]["fan_in"]) == [5]  # one layer each
    obs = np.random.default_rng(3).normal(size=(4, 3))
    np.testing.assert_allclose(Policy.load(path).act(obs), agent.act(obs), rtol=1e-12, atol=1e-12)
