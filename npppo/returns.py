"""Critic targets and advantages over a batch of episodes stored back to back.

A batch of T steps holds whole episodes (or episode pieces) one after the other. Per step t:
``rewards[t]``, ``values[t] = V(s_t)``, ``episode_ends[t]`` (True at each episode's last step) and
``end_values[t]``, read only where an episode ends: the value of what follows it,
``V(s_final)`` when the episode was truncated (or cut by the batch) and ``0`` when it terminated,
since nothing follows a terminal state.

n-step returns (the seed's critic targets), with e the index of t's episode's last step::

    G_t = sum_{k=0}^{m-1} γ^k r_{t+k} + γ^m V_next,     m = min(n, e + 1 - t)
    V_next = values[t+m] inside the episode, end_values[e] when t+m runs past its end.

GAE(λ) (Schulman et al. 2016)::

    δ_t = r_t + γ V(s_{t+1}) - V(s_t),        V(s_{t+1}) = end_values[t] at an episode's end
    Â_t = δ_t + γλ Â_{t+1}  (Â restarts at each episode's end);   returns G_t = Â_t + V(s_t)
"""

from __future__ import annotations

import numpy as np

from npppo.jit import njit


@njit
def n_step_returns(rewards, values, episode_ends, end_values, gamma, n):
    """G (T,) of n-step returns, O(T n): each window's discounted sum is added up directly (n is small)."""
    steps = rewards.shape[0]
    returns = np.empty(steps, np.float64)
    gamma_n = gamma**n
    end = steps - 1
    for t in range(steps - 1, -1, -1):
        if episode_ends[t]:
            end = t
        horizon = min(n, end + 1 - t)
        total = 0.0
        discount = 1.0
        for k in range(horizon):
            total += discount * rewards[t + k]
            discount *= gamma
        if horizon == n and t + n <= end:
            total += gamma_n * values[t + n]
        else:
            total += discount * end_values[end]
        returns[t] = total
    return returns


@njit
def gae_advantages(rewards, values, episode_ends, end_values, gamma, lam):
    """Â (T,) of GAE(λ); the λ-returns are Â + values."""
    steps = rewards.shape[0]
    advantages = np.empty(steps, np.float64)
    running = 0.0
    for t in range(steps - 1, -1, -1):
        if episode_ends[t]:
            next_value = end_values[t]
            running = 0.0
        else:
            next_value = values[t + 1]
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    return advantages


def normalize_advantages(advantages: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """(A - mean(A)) / (std(A) + eps) over the batch."""
    return (advantages - advantages.mean()) / (advantages.std() + eps)

