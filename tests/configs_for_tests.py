"""The tests' small configs: one base of small networks and short batches, which each test file varies."""

from __future__ import annotations

# two environments, two whole episodes an iteration, one 8-unit layer per network: seconds per run
SMALL = dict(num_envs=2, episodes_per_batch=2, trunk_sizes=[8], head_sizes=[], critic_sizes=[8])

