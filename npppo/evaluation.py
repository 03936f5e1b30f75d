"""Evaluating a policy: the undiscounted return of whole episodes on fixed reset seeds."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from npppo.envs.make import EPISODE_STEP_LIMIT, env_name, episode_too_long
from npppo.streams import evaluation_seed

EVAL_EPISODES = 10  # episodes per evaluation, by default (the agent's, the command line's, a run's)


def evaluate(act: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int,
             seed: int = 10_000, frames=None, episode_step_limit: int = EPISODE_STEP_LIMIT) -> tuple[float, float]:
    """(mean, std) of the return over ``episodes`` episodes of ``env``, episode k reset with seed
    ``seed + k`` (:func:`npppo.streams.evaluation_seed`); ``act`` maps one observation (obs_dim,) to
    an action (action_dim,). With ``frames`` (a list, or anything with ``append`` such as
    :class:`npppo.video.VideoWriter`), ``env.render()`` is appended to it after each reset and each
    step (for an env made with ``render_mode="rgb_array"``). An episode that runs
    ``episode_step_limit`` steps without terminating or truncating raises EnvError."""
    totals = []
    for k in range(episodes):
        obs, _ = env.reset(seed=evaluation_seed(seed, k))
        if frames is not None:
            frames.append(env.render())
        total, done, steps = 0.0, False, 0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            if frames is not None:
                frames.append(env.render())
            total += float(reward)
            steps += 1
            done = terminated or truncated
            if not done and steps >= episode_step_limit:
                raise episode_too_long(env_name(env), episode_step_limit)
        totals.append(total)
    return float(np.mean(totals)), float(np.std(totals))
