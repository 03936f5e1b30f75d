"""Golden runs: each preset's parameters after a few iterations, compared bit for bit.

These pin the whole pipeline (rollout, targets, losses, optimizers, schedules) so that a refactor
can prove it changed nothing. A change that alters results on purpose regenerates the files::

    NPPPO_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

and says why in its commit message. The files hold float arrays computed on this project's CI
machine kind (x86-64, OpenBLAS with one thread); another BLAS kernel may round differently.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from npppo import PPO, presets

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NPPPO_UPDATE_GOLDEN") == "1"

# name -> (preset, config changes, env, env steps in all)
CASES = {
    "seed": ("seed", {}, "Pendulum-v1", 16_000),
    "pendulum": ("pendulum", {}, "Pendulum-v1", 6_000),
    "lunarlander": ("lunarlander", {}, "LunarLanderContinuous-v3", 8_192),
    # every optional path at once, on small networks
    "options": ("seed", dict(
        num_envs=3, episodes_per_batch=5, trunk_sizes=[16], head_sizes=[8], critic_sizes=[16, 8],
        mu_activation="identity", sigma_mode="softplus", optimizer="adam", advantage="gae", gae_lambda=0.9,
        batch_size=96, target_kl=0.02, value_clip=0.5, normalize_obs=True, reward_scale=0.1,
        lr_schedule="linear", init="glorot_uniform", dtype="float64", actor_activation="tanh",
    ), "Pendulum-v1", 3_000),
}


def run_case(name: str) -> dict[str, np.ndarray]:
    preset, changes, env, steps = CASES[name]
    config = presets.get(preset).replace(**changes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the seed preset's ReLU-mean warning
        agent = PPO(env, config, seed=7)
    history = agent.learn(steps)
    keys = ("return_mean", "actor_loss", "critic_loss", "entropy", "approx_kl", "clip_fraction",
            "explained_variance", "ent_coef", "lr_scale", "actor_updates")
    return {
        "policy": agent.policy.params.copy(),
        "critic": agent.critic.params.copy(),
        "steps": np.array([m["steps"] for m in history]),
        **{key: np.array([m[key] for m in history], np.float64) for key in keys},
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_run_is_unchanged(name):
    path = GOLDEN / f"{name}.npz"
    result = run_case(name)
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        np.savez_compressed(path, **result)
    with np.load(path, allow_pickle=False) as golden:
        assert sorted(golden.files) == sorted(result)
        for key in golden.files:
            expected, actual = golden[key], result[key]
            assert expected.dtype == actual.dtype and expected.shape == actual.shape, key
            if not np.array_equal(expected, actual, equal_nan=True):
                diff = np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64)))
                pytest.fail(f"golden run {name!r}: {key} differs (max |diff| {diff:.3g}); if the change is "
                            "intended, regenerate with NPPPO_UPDATE_GOLDEN=1 and say why")
