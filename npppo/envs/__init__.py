"""Environments: making and checking them (:mod:`npppo.envs.make`), and the ones npppo ships.

npppo's environments are compiled (:mod:`npppo.envs.compiled`): ``npppo/ConwipLine-v0``
(:mod:`npppo.envs.conwip_line`, the seed's own production-line task), ``npppo/Pendulum-v1`` and
``npppo/MountainCarContinuous-v0`` (Gymnasium's tasks, step for step). They are registered with
Gymnasium when ``npppo`` is imported; each module loads on the first ``gymnasium.make``.
"""

from __future__ import annotations

from npppo.envs.make import EnvFactory, EnvSpec, Spaces, check_spaces, check_squash_bounds, env_name, make_env

__all__ = ["EnvFactory", "EnvSpec", "Spaces", "check_spaces", "check_squash_bounds", "env_name", "make_env",
           "register_envs"]


REGISTERED = (  # id, entry point, time limit
    ("npppo/ConwipLine-v0", "npppo.envs.conwip_line:ConwipLineEnv", 99),
    ("npppo/Pendulum-v1", "npppo.envs.pendulum:PendulumEnv", 200),
    ("npppo/MountainCarContinuous-v0", "npppo.envs.mountain_car:MountainCarContinuousEnv", 999),
)


def register_envs() -> None:
    """Register npppo's environments with Gymnasium (idempotent)."""
    import gymnasium as gym

    for env_id, entry_point, limit in REGISTERED:
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=limit)
