"""Every random stream of a run, and the key that seeds it: the one table of them.

Each stream is a ``numpy.random.SeedSequence`` seeded by a key of integers. A key starts with its
role's tag, so keys of two roles never coincide, whatever the seed, iteration, episode or
environment (SeedSequence reads a key as 32-bit words and pads short keys with zeros, so a role's
tag has to sit in a position every key has, and be non-zero: the first word). Reset seeds are
31-bit numbers drawn from a key; two of them may be equal by chance in a long run, but their keys,
and so their streams' roles, are not.

=================  ===========================================  ==================================
role               key                                          used by
=================  ===========================================  ==================================
``INIT``           (INIT, seed)                                 the networks' initial weights
``ACT``            (ACT, seed)                                  :meth:`npppo.PPO.act` when sampling
``EPISODE_RESET``  (EPISODE_RESET, seed, iteration, episode)    whole-episode batches: the reset
``EPISODE_NOISE``  (EPISODE_NOISE, seed, iteration, episode)    ... and the action noise
``FIXED_RESET``    (FIXED_RESET, seed, env, n)                  fixed-step batches: env's n-th reset
``FIXED_NOISE``    (FIXED_NOISE, seed, env, iteration)          ... env's noise in an iteration
``ACTOR_SHUFFLE``  (ACTOR_SHUFFLE, seed, iteration)             the actor's minibatch order
``CRITIC_SHUFFLE`` (CRITIC_SHUFFLE, seed, iteration)            the critic's minibatch order
=================  ===========================================  ==================================

Evaluation episodes are not part of a run's streams: :func:`evaluation_seed` gives episode k of an
evaluation the reset seed ``base + k`` (10000, 10001, ... by default), a plain number a user can
give ``env.reset`` to replay that episode, the same for every run.
"""

from __future__ import annotations

import numpy as np

INIT, ACT, EPISODE_RESET, EPISODE_NOISE, FIXED_RESET, FIXED_NOISE, ACTOR_SHUFFLE, CRITIC_SHUFFLE = range(1, 9)
ROLES = {"INIT": INIT, "ACT": ACT, "EPISODE_RESET": EPISODE_RESET, "EPISODE_NOISE": EPISODE_NOISE,
         "FIXED_RESET": FIXED_RESET, "FIXED_NOISE": FIXED_NOISE, "ACTOR_SHUFFLE": ACTOR_SHUFFLE,
         "CRITIC_SHUFFLE": CRITIC_SHUFFLE}
# how many integers follow the role's tag in its keys (the run seed first)
KEY_LENGTHS = {INIT: 1, ACT: 1, EPISODE_RESET: 3, EPISODE_NOISE: 3, FIXED_RESET: 3, FIXED_NOISE: 3,
               ACTOR_SHUFFLE: 2, CRITIC_SHUFFLE: 2}


def key(role: int, seed: int, *parts: int) -> tuple[int, ...]:
    """The key of ``role``'s stream for run ``seed`` and ``parts`` (see the table above)."""
    if len(parts) + 1 != KEY_LENGTHS[role]:
        raise ValueError(f"stream role {role} takes {KEY_LENGTHS[role] - 1} integer(s) after the seed, got {parts}")
    return (role, int(seed), *map(int, parts))


def generator(role: int, seed: int, *parts: int) -> np.random.Generator:
    """A generator on ``role``'s stream."""
    return np.random.default_rng(list(key(role, seed, *parts)))


def reset_seed(role: int, seed: int, *parts: int) -> int:
    """A 31-bit seed for ``env.reset`` drawn from ``role``'s stream (any environment takes it)."""
    return int(np.random.SeedSequence(list(key(role, seed, *parts))).generate_state(1)[0] >> 1)


def evaluation_seed(base: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of an evaluation that starts at ``base``: ``base + episode``."""
    return base + episode
