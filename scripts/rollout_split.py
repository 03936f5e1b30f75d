"""Where a rollout's time goes, per env step, on the Python path and on the fused one (docs/performance.md).

    python scripts/rollout_split.py [--preset pendulum|seed] [--repeats N] [--json PATH]

One sampler in this process over the preset's batch (whole episodes of Pendulum): Gymnasium's
Pendulum-v1 through the sampler's Python loop, and ``npppo/Pendulum-v1`` through the fused call.
The whole batch is timed; the parts are timed alone, at the shapes each path uses them:

* env: the environments' steps (Gymnasium's ``step`` through its wrappers; the compiled step in a
  compiled loop);
* forward: the row-by-row policy forward (k rows per call on the Python path, one on the fused);
* sampling: the noise and :func:`npppo.sampler.sample_actions` (the Python path draws noise per row
  from each episode's stream; the fused path draws it before the call, counted in "Python");
* Python (fused path only): what runs before the call, per episode: its reset seed, reset and
  noise stream;
* storage and bookkeeping: the rest (row storage, episode ends, and on the Python path the
  interpreter around every step).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numba
import numpy as np

from npppo import presets
from npppo.bench import _median_s as median_s  # (after one untimed call)
from npppo.envs import check_spaces, make_env
from npppo.policy import GaussianPolicy, _policy_rows
from npppo.sampler import NoiseStream, Sampler, sample_actions


@numba.njit
def _env_loop(step, params, state, actions, obs):
    total = 0.0
    for t in range(actions.shape[0]):
        reward, _, _ = step(params, state, actions[t], obs)
        total += reward
    return total


@numba.njit
def _forward_loop(params, layout, alphas, parts, sigma_min, x, mu, sigma, n):
    for _ in range(n):
        _policy_rows(params, layout, alphas, parts, sigma_min, x, mu, sigma, True)


@numba.njit
def _sampling_loop(mu, sigma, noise, bounds, squash, actions, env_actions, log_prob):
    for t in range(noise.shape[0]):
        sample_actions(mu, sigma, noise[t : t + 1], bounds, squash, actions[t : t + 1], env_actions,
                       log_prob[t : t + 1])


def python_parts(sampler, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per env step of the Python path's parts, timed alone at its shapes (k rows per call)."""
    envs, policy, n_envs = sampler.envs, sampler.policy, len(sampler.envs)
    rng = np.random.default_rng(1)
    actions = rng.uniform(-2.0, 2.0, (steps, sampler.action_dim))

    def env_steps():
        for env in envs:
            env.reset(seed=0)
        for t in range(steps):
            envs[t % n_envs].step(actions[t])

    x = rng.standard_normal((n_envs, sampler.obs_dim))

    def forward():
        for _ in range(steps // n_envs):
            policy.distribution_rows(x)

    mu, sigma = policy.distribution_rows(x)
    streams = [NoiseStream(np.random.default_rng([0, 0, k, 1]), sampler.action_dim) for k in range(n_envs)]
    out = (np.empty((n_envs, sampler.action_dim)), np.empty((n_envs, sampler.action_dim)), np.empty(n_envs))

    def sampling():
        for _ in range(steps // n_envs):
            noise = np.array([stream.next() for stream in streams])
            sample_actions(mu, sigma, noise, sampler.action_bounds, policy.squashed, *out)

    return {name: median_s(fn, repeats) / steps for name, fn in
            (("env", env_steps), ("forward", forward), ("sampling", sampling))}


def fused_parts(sampler, steps: int, episodes: list[int], repeats: int) -> dict[str, float]:
    """Seconds per env step of the fused path's parts, timed alone at its shapes (one row per call)."""
    fused, policy, dims = sampler.fused, sampler.policy, sampler.action_dim
    spec = fused.spec
    rng = np.random.default_rng(1)
    actions = rng.uniform(-2.0, 2.0, (steps, dims))
    state, obs = spec.new_state()
    spec.reset(spec.params, state, np.random.default_rng(0), obs)
    x = np.zeros((1, sampler.obs_dim), policy.dtype)
    mu, sigma = np.empty((1, dims), policy.dtype), np.empty((1, dims), policy.dtype)
    noise = rng.standard_normal((steps, dims))
    out = (np.empty((steps, dims)), np.empty((1, dims)), np.empty(steps))
    lane = fused._lanes(len(episodes))

    def before_the_call():
        for k in episodes:
            fused._reset(lane["states"][k], lane["obs"][k], 12345 + k, 0)
            np.random.default_rng([0, 0, k, 1]).standard_normal((200, dims))

    timed = (
        ("env", lambda: _env_loop(spec.step, spec.params, state, actions, obs)),
        ("forward", lambda: _forward_loop(policy.params, *policy._rows_args, x, mu, sigma, steps)),
        ("sampling", lambda: _sampling_loop(mu, sigma, noise, sampler.action_bounds, policy.squashed, *out)),
        ("python", before_the_call),
    )
    return {name: median_s(fn, repeats) / steps for name, fn in timed}


def split(preset: str, repeats: int) -> dict:
    """Per path: env steps/s of the whole batch, µs per step, and each part's µs per step."""
    config = presets.get(preset)
    n_envs, episodes = config.num_envs, list(range(config.episodes_per_batch))
    result = {}
    for path, env_id in (("python", "Pendulum-v1"), ("fused", "npppo/Pendulum-v1")):
        envs = [make_env(env_id) for _ in range(n_envs)]
        spaces = check_spaces(envs[0])
        policy = GaussianPolicy(spaces.obs_dim, spaces.action_dim, config, np.random.default_rng(0))
        sampler = Sampler(envs, list(range(n_envs)), policy, spaces.action_low, spaces.action_high, 0, None)
        steps = sampler.collect_episodes(0, episodes).steps
        total = median_s(lambda sampler=sampler: sampler.collect_episodes(0, episodes), repeats) / steps
        parts = (python_parts(sampler, steps, repeats) if path == "python"
                 else fused_parts(sampler, steps, episodes, repeats))
        parts["storage_and_bookkeeping"] = total - sum(parts.values())
        result[path] = {"env_steps_per_s": 1 / total, "us_per_step": total * 1e6,
                        **{f"{name}_us": value * 1e6 for name, value in parts.items()}}
    result["speedup"] = result["fused"]["env_steps_per_s"] / result["python"]["env_steps_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="pendulum", choices=["pendulum", "seed"])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from npppo.threads import set_num_threads

    set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = split(args.preset, args.repeats)
    for path in ("python", "fused"):
        row = result[path]
        parts = ", ".join(f"{key[:-3]} {value:.2f}" for key, value in row.items() if key.endswith("_us"))
        print(f"{args.preset} {path:>6}: {row['env_steps_per_s']:,.0f} env steps/s, {row['us_per_step']:.2f} µs/step "
              f"({parts} µs)")
    print(f"fused / python: {result['speedup']:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
