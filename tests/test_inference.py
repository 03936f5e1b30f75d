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
@pytest.mark.parametrize("changes", [SEED, SOFTPLUS, TUNED, SQUASHED], ids=["seed", "softplus", "tuned", "tanh"])
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


def test_sampled_actions_are_clipped_and_reproducible(tmp_path, tiny_config):
    _, path = trained_agent(tmp_path, tiny_config(dtype="float64", **TUNED))
    policy = Policy.load(path)
    obs = observations(64)
    first = policy.act(obs, deterministic=False, rng=np.random.default_rng(5))
    again = policy.act(obs, deterministic=False, rng=np.random.default_rng(5))
    assert np.array_equal(first, again)
    assert np.all(first >= -2.0) and np.all(first <= 2.0)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        policy.act(np.zeros(4))


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
