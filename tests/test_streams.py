"""The table of random streams (npppo/streams.py): no two roles share a key, a run draws every
random number it uses from a stream of the table, and each stream plays its role (an episode's
reset and noise, each iteration's shuffles)."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

from npppo import PPO, presets, streams
from npppo.envs import EnvFactory


def words(key: tuple[int, ...]) -> tuple[int, ...]:
    """A key as SeedSequence reads it: each integer as 32-bit words (low first), a short key padded with
    zeros to the pool size of 4 (SeedSequence([1, 2]) and SeedSequence([1, 2, 0]) are the same stream)."""
    out: list[int] = []
    for value in key:
        value = int(value)
        while True:
            out.append(value & 0xFFFFFFFF)
            value >>= 32
            if not value:
                break
    return tuple(out + [0] * (4 - len(out)))


def test_words_are_how_seed_sequence_reads_a_key():
    for a, b in (((1, 2), (1, 2, 0)), ((7, 2**32 + 3), (7, 3, 1))):
        assert words(a) == words(b)
        np.testing.assert_array_equal(np.random.SeedSequence(list(a)).generate_state(4),
                                      np.random.SeedSequence(list(b)).generate_state(4))


def every_key(seeds=(0, 1, 2, 7, 2**31), counts=range(6)) -> dict[int, set[tuple[int, ...]]]:
    """Per role, the SeedSequence words of its keys over a grid of seeds, iterations, episodes, envs."""
    table: dict[int, set[tuple[int, ...]]] = {}
    for role in streams.ROLES.values():
        parts = streams.KEY_LENGTHS[role] - 1
        keys = [streams.key(role, seed, *rest) for seed in seeds for rest in itertools.product(counts, repeat=parts)]
        table[role] = {words(key) for key in keys}
        assert len(table[role]) == len(keys), f"two keys of role {role} are the same stream"
    return table


def test_no_two_roles_share_a_key():
    table = every_key()
    for (a, keys_a), (b, keys_b) in itertools.combinations(table.items(), 2):
        assert not keys_a & keys_b, f"roles {a} and {b} share keys"


def test_the_old_collision_is_gone():
    """Before the table, episode 2's reset seed and the actor's shuffle both came from [seed, i, 2]."""
    reset = streams.key(streams.EPISODE_RESET, 5, 3, 2)
    shuffle = streams.key(streams.ACTOR_SHUFFLE, 5, 3)
    critic = streams.key(streams.CRITIC_SHUFFLE, 5, 3)
    assert len({words(reset), words(shuffle), words(critic), words(streams.key(streams.EPISODE_RESET, 5, 3, 3))}) == 4


def test_keys_have_their_roles_length():
    with pytest.raises(ValueError, match=r"role 7 takes 1 integer\(s\) after the seed"):
        streams.key(streams.ACTOR_SHUFFLE, 0, 1, 2)


@pytest.mark.parametrize("batch", [dict(episodes_per_batch=3, steps_per_batch=None),
                                   dict(episodes_per_batch=None, steps_per_batch=60)], ids=["episodes", "steps"])
def test_a_run_draws_only_from_the_streams_of_the_table(batch, monkeypatch):
    """Every generator and reset seed of a run (initialisation, rollout, both shuffles, act) comes from
    a key of the table, and each key seeds one role only."""
    used: dict[tuple[int, ...], int] = {}
    generators: list = []
    original_key, original_rng = streams.key, np.random.default_rng

    def recording_key(role, seed, *parts):
        made = original_key(role, seed, *parts)
        assert used.setdefault(words(made), role) == role
        return made

    def recording_rng(seed=None):
        generators.append(seed)
        return original_rng(seed)

    monkeypatch.setattr(streams, "key", recording_key)
    monkeypatch.setattr(np.random, "default_rng", recording_rng)
    config = presets.get("pendulum").replace(num_envs=2, batch_size=16, actor_epochs=2, critic_epochs=2,
                                              trunk_sizes=[8], critic_sizes=[8], **batch)
    env = "Pendulum-v1"
    agent = PPO(env, config, seed=3)
    agent.learn(120)
    agent.act(np.zeros(3), deterministic=False)
    roles = set(used.values())
    expected = {"INIT", "ACT", "ACTOR_SHUFFLE", "CRITIC_SHUFFLE"} | (
        {"EPISODE_RESET", "EPISODE_NOISE"} if batch["episodes_per_batch"] else {"FIXED_RESET", "FIXED_NOISE"})
    assert roles == {streams.ROLES[name] for name in expected}
    assert generators and all(words(seed) in used for seed in generators)  # no generator outside the table


def test_each_episode_of_each_iteration_has_its_own_reset_seed_and_action_noise(tiny_config):
    """Episode j of iteration i starts from the reset seed of (EPISODE_RESET, seed, i, j) and draws its
    noise from (EPISODE_NOISE, seed, i, j): read back from the stored actions, (u - mu) / sigma."""
    episode = 20
    config = tiny_config(episodes_per_batch=3, dtype="float64")  # float64: the noise reads back to rounding
    agent = PPO(EnvFactory("Pendulum-v1", max_episode_steps=episode), config, seed=3)
    first_obs, noises = {}, {}
    for iteration in range(2):
        batch = agent.collect()
        mu, sigma = agent.policy.distribution(batch.obs.astype(agent.policy.dtype))
        noise = (batch.actions - mu) / sigma
        for j in range(3):
            rows = slice(j * episode, (j + 1) * episode)
            first_obs[iteration, j], noises[iteration, j] = batch.obs[rows.start], noise[rows]
            reset, _ = gym.make("Pendulum-v1").reset(seed=streams.reset_seed(streams.EPISODE_RESET, 3, iteration, j))
            np.testing.assert_array_equal(batch.obs[rows.start], reset)
            drawn = streams.generator(streams.EPISODE_NOISE, 3, iteration, j).standard_normal((episode, 1))
            np.testing.assert_allclose(noise[rows], drawn, atol=1e-6)
        agent.train_iteration(10_000, batch)
    for a, b in itertools.combinations(first_obs, 2):  # other episodes, other iterations: other starts and noise
        assert not np.array_equal(first_obs[a], first_obs[b]), (a, b)
        assert np.max(np.abs(noises[a] - noises[b])) > 0.1, (a, b)


def test_each_iteration_shuffles_the_actor_and_the_critic_with_streams_of_their_own(tiny_config, monkeypatch):
    asked: list[tuple[int, ...]] = []
    original_key = streams.key

    def recording_key(role, seed, *parts):
        asked.append((role, seed, *parts))
        return original_key(role, seed, *parts)

    monkeypatch.setattr(streams, "key", recording_key)
    agent = PPO(EnvFactory("Pendulum-v1", max_episode_steps=20), tiny_config(batch_size=16), seed=3)
    agent.learn(3 * 40)
    assert agent.iteration == 3
    for role in (streams.ACTOR_SHUFFLE, streams.CRITIC_SHUFFLE):
        assert {key for key in asked if key[0] == role} == {(role, 3, i) for i in range(3)}
