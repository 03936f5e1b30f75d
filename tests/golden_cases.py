"""The golden-run cases and how a run is compared with its golden file.

Shared by tests/test_golden.py and scripts/golden_spread.py (which measures how far the cases move
under other BLAS kernels, NumPy SIMD targets and Numba CPU targets; the tolerances below come from
it). Each case trains a preset for a few iterations from a fixed seed and keeps both networks'
parameters and the per-iteration metrics.

Why tolerances and not bit equality: another CPU makes OpenBLAS pick another GEMM kernel and NumPy
and Numba other SIMD code, and float32 sums then round differently (a few 1e-6 in parameters after
a few iterations). Bit equality is still available on the machine that wrote the files
(``NPPPO_GOLDEN_EXACT=1``): refactors that must keep the same bits run the golden tests that way
before and after, on one machine.

Why float64 cases beside the float32 ones: a small real change (a learning rate 1 % off, one
layer's gradient negated) can move a float32 case's parameters by little more than the kernel
spread, while the float64 cases move by about 1e-15 across kernels, so a tolerance a million
times larger than their spread still catches the smallest change tested. The float32 cases keep
the float32 kernels (the float32 ELU, the float32 forward) under test, at a coarser tolerance.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from npppo import PPO, presets

GOLDEN = Path(__file__).parent / "golden"
EXACT = os.environ.get("NPPPO_GOLDEN_EXACT") == "1"

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
    # each preset's architecture in float64, where the kernel spread is ~1e-15 (see the module docstring)
    "seed_f64": ("seed", dict(dtype="float64"), "Pendulum-v1", 16_000),
    "pendulum_f64": ("pendulum", dict(dtype="float64"), "Pendulum-v1", 6_000),
    "lunarlander_f64": ("lunarlander", dict(dtype="float64"), "LunarLanderContinuous-v3", 8_192),
}

PARAMETERS = ("policy", "critic")
METRICS = ("return_mean", "actor_loss", "critic_loss", "entropy", "approx_kl", "clip_fraction",
           "explained_variance", "ent_coef", "lr_scale", "actor_updates")
COUNTS = ("steps", "actor_updates")  # integers: equal on every machine

# Tolerances, per array: parameters by their absolute max |golden - run|; metrics by
# max |golden - run| / max(1, |golden|) (a critic loss of 14,000 and an entropy of 3 on one scale).
# They were set from the spread that scripts/golden_spread.py measured on an Intel Xeon (Sapphire
# Rapids, AVX-512; OpenBLAS 0.3.31, NumPy 2.4.6, Numba 0.68.1) over OPENBLAS_CORETYPE = Katmai,
# Nehalem, Sandybridge, Haswell, SkylakeX (the default), Zen; NumPy's SIMD dispatch capped at AVX2 and
# at its baseline (NPY_DISABLE_CPU_FEATURES); Numba for a generic and a Haswell CPU (NUMBA_CPU_NAME);
# and the three AVX2 settings together. Worst over those settings:
#
#   case              parameters   metrics (scaled)        allowed: parameters, metrics
#   seed (f32)        2.8e-6       5.8e-4 (actor_loss)     1e-4, 2e-2
#   pendulum (f32)    5.1e-4       3.2e-4 (critic_loss)    1.5e-2, 1e-2
#   lunarlander (f32) 8.2e-7       1.0e-6 (expl. variance) 5e-5, 5e-5
#   options (f64)     1.1e-16      1.1e-15                 1e-9, 1e-9
#   seed_f64          2.7e-16      4.9e-14 (approx_kl)     1e-9, 1e-9
#   pendulum_f64      1.8e-10      1.1e-10 (critic_loss)   5e-8, 5e-8
#   lunarlander_f64   2.6e-15      3.1e-16                 1e-9, 1e-9
#
# The pendulum and lunarlander cases take the fused update (npppo.fused_update, the default), whose
# pendulum case spreads far more than the Python steps did (3.7e-6 in float32 and 4.2e-14 in float64
# before it): after a few iterations an OpenBLAS kernel's rounding has moved a sample's ratio across
# 1 ± ε (clip_fraction 0.004 apart), which changes that step's gradient. (An AMD EPYC Zen 5 machine
# measured about the same float32 spread as this one for the Python steps: 2.5e-6, 3.7e-6, 1.3e-6.)
# The float32 cases allow about 25x their spread; approx_kl and clip_fraction, a difference of nearby
# numbers and a count of ratios crossing 1 ± ε (0.011 apart in the seed case), are left to the float64
# cases. The float64 cases allow 250x-1e7 times their spread and still fail for each small real change
# tested (tests/test_golden.py): the smallest, a learning rate 1 % off, moves them by 1.4e-4 or more.
FLOAT64_TOLERANCE = (1e-9, 1e-9)
TOLERANCES = {  # case: (parameters, metrics); the float64 cases not named here take FLOAT64_TOLERANCE
    "seed": (1e-4, 2e-2),
    "pendulum": (1.5e-2, 1e-2),
    "lunarlander": (5e-5, 5e-5),
    "pendulum_f64": (5e-8, 5e-8),
}
FLOAT32_CASES = ("seed", "pendulum", "lunarlander")
FLOAT32_SKIPPED_METRICS = ("approx_kl", "clip_fraction")


def run_case(name: str, steps: int | None = None) -> dict[str, np.ndarray]:
    """Train case ``name`` (for ``steps`` env steps instead of its own, if given) and return its arrays."""
    preset, changes, env, case_steps = CASES[name]
    config = presets.get(preset).replace(**changes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the seed preset's ReLU-mean warning
        agent = PPO(env, config, seed=7)
    history = agent.learn(case_steps if steps is None else steps)
    return {
        "policy": agent.policy.params.copy(),
        "critic": agent.critic.params.copy(),
        "steps": np.array([m["steps"] for m in history]),
        **{key: np.array([m[key] for m in history], np.float64) for key in METRICS},
    }


def tolerance(name: str, key: str) -> float | None:
    """The largest :func:`difference` allowed for array ``key`` of case ``name``; None: not compared."""
    if EXACT or key in COUNTS:
        return 0.0
    if name in FLOAT32_CASES and key in FLOAT32_SKIPPED_METRICS:
        return None
    parameters, metrics = TOLERANCES.get(name, FLOAT64_TOLERANCE)
    return parameters if key in PARAMETERS else metrics


def difference(key: str, expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| for parameters, max |expected - actual| / max(1, |expected|) for metrics,
    in float64; NaN where one is NaN and the other is not (two NaNs are equal)."""
    expected, actual = expected.astype(np.float64), actual.astype(np.float64)
    both_nan = np.isnan(expected) & np.isnan(actual)
    diff = np.where(both_nan, 0.0, np.abs(expected - actual))
    if key not in PARAMETERS:
        diff = diff / np.maximum(1.0, np.where(both_nan, 1.0, np.abs(expected)))
    return float(np.max(diff, initial=0.0)) if not np.any(np.isnan(diff)) else float("nan")


def differences(name: str, result: dict[str, np.ndarray]) -> list[str]:
    """What in ``result`` differs from case ``name``'s golden file beyond its tolerance (empty: it matches)."""
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as golden:
        files = {key: golden[key] for key in golden.files}
    found = []
    if sorted(files) != sorted(result):
        found.append(f"arrays {sorted(files)} expected, got {sorted(result)}")
    for key in sorted(set(files) & set(result)):
        expected, actual = files[key], result[key]
        if expected.dtype != actual.dtype or expected.shape != actual.shape:
            found.append(f"{key}: {expected.dtype}{expected.shape} expected, got {actual.dtype}{actual.shape}")
            continue
        bound = tolerance(name, key)
        if bound is None:
            continue
        if bound == 0.0:
            if not np.array_equal(expected, actual, equal_nan=True):
                found.append(f"{key} differs (by {difference(key, expected, actual):.3g}; bit equality asked)")
            continue
        diff = difference(key, expected, actual)
        if not diff <= bound:  # NaN fails too
            found.append(f"{key} differs by {diff:.3g} (tolerance {bound:.3g})")
    return found
