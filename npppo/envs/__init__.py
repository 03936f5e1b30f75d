"""Environments: making and checking them (:mod:`npppo.envs.make`), and the ones npppo ships.

``npppo/ConwipLine-v0`` (:mod:`npppo.envs.conwip_line`, the seed's own production-line task) is
registered with Gymnasium when ``npppo`` is imported; the module itself loads on the first
``gymnasium.make``.
"""

from __future__ import annotations

from npppo.envs.make import EnvFactory, EnvSpec, check_spaces, check_squash_bounds, env_name, make_env

__all__ = ["EnvFactory", "EnvSpec", "check_spaces", "check_squash_bounds", "env_name", "make_env", "register_envs"]


def register_envs() -> None:
    """Register npppo's environments with Gymnasium (idempotent)."""
    import gymnasium as gym

    if "npppo/ConwipLine-v0" not in gym.registry:
        gym.register("npppo/ConwipLine-v0", entry_point="npppo.envs.conwip_line:ConwipLineEnv",
                     max_episode_steps=99)
