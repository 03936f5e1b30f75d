"""npppo: Proximal Policy Optimization for continuous control in NumPy, hot loops compiled by Numba.

    from npppo import PPO, PPOConfig, presets
    agent = PPO("Pendulum-v1", presets.get("pendulum"), seed=0)
    agent.learn(total_steps=100_000)
"""

from npppo import presets
from npppo.config import PPOConfig
from npppo.errors import CheckpointError, ConfigError, EnvironmentError, NpppoError, TrainingError
from npppo.gradcheck import gradcheck
from npppo.ppo import PPO

__version__ = "0.1.0"
__all__ = [
    "PPO",
    "CheckpointError",
    "ConfigError",
    "EnvironmentError",
    "NpppoError",
    "PPOConfig",
    "TrainingError",
    "gradcheck",
    "presets",
]
