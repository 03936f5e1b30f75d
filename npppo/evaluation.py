"""Evaluating a policy: the undiscounted return of whole episodes on fixed reset seeds."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np


def evaluate(act: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int,
             seed: int = 10_000, frames=None) -> tuple[float, float]:
    """(mean, std) of the return over ``episodes`` episodes of ``env``, episode k reset with seed
    ``seed + k``; ``act`` maps one observation (obs_dim,) to an action (action_dim,). With ``frames``
    (a list, or anything with ``append`` such as :class:`npppo.video.VideoWriter`), ``env.render()``
    is appended to it after each reset and each step (for an env made with ``render_mode="rgb_array"``)."""
    totals = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        if frames is not None:
            frames.append(env.render())
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            if frames is not None:
                frames.append(env.render())
            total += float(reward)
            done = terminated or truncated
        totals.append(total)
    return float(np.mean(totals)), float(np.std(totals))
