"""recompute_advantages (Tianshou's recompute_advantage): before each epoch after the first, V(s_t), the
targets and the advantages come from the critic as it is then; the actor and critic epochs alternate."""

from __future__ import annotations

import numpy as np
import pytest

from npppo import PPO, presets, streams
from npppo.envs import EnvFactory
from npppo.passes import ActorData, CriticData, actor_epoch, critic_epoch

TOTAL = 4000


def config(**changes):
    small = dict(num_envs=2, episodes_per_batch=None, steps_per_batch=400, batch_size=100, trunk_sizes=[16, 16],
                 critic_sizes=[16, 16], actor_epochs=3, critic_epochs=3, recompute_advantages=True,
                 normalize_obs=True, normalize_rewards=True)
    return presets.get("pendulum").replace(**{**small, **changes})


def params_after(cfg, iterations: int, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    with PPO(EnvFactory("Pendulum-v1", max_episode_steps=100), cfg, seed=4, workers=workers) as agent:
        for _ in range(iterations):
            agent.train_iteration(TOTAL)
        return agent.policy.params.copy(), agent.critic.params.copy()


@pytest.mark.parametrize("epochs", [(3, 3), (2, 4), (4, 1)])
def test_each_epoch_uses_advantages_and_targets_from_the_critic_as_it_is_then(epochs):
    actor_epochs, critic_epochs = epochs
    cfg = config(actor_epochs=actor_epochs, critic_epochs=critic_epochs)
    agent, reference = (PPO(EnvFactory("Pendulum-v1", max_episode_steps=100), cfg, seed=4) for _ in range(2))
    agent.train_iteration(TOTAL)

    # the same iteration by hand: recompute, one actor epoch, one critic epoch, in turn
    batch = reference.collect()
    ent_coef, lr_scale = reference.schedule(TOTAL, batch.steps)
    obs = reference.normalize_obs(batch.obs)
    rewards = reference.reward_normalizer(batch.rewards, batch.episode_ends)
    actor_rng, critic_rng = (streams.generator(role, 4, 0) for role in (streams.ACTOR_SHUFFLE, streams.CRITIC_SHUFFLE))
    dtype = reference.dtype
    for e in range(max(epochs)):
        values, returns, advantages = reference.targets_and_advantages(batch, obs, rewards)
        if e < actor_epochs:
            # the stored actions and their log-probabilities stay float64 (issue 20: small sigma in float32)
            data = ActorData(obs, batch.actions, batch.log_prob, advantages.astype(dtype))
            actor_epoch(reference._actor, cfg, data, ent_coef, lr_scale, actor_rng, 0, map, [])
        if e < critic_epochs:
            critic_epoch([reference.critic], reference.optimizers["critic"], cfg,
                         CriticData(obs, returns.astype(dtype), values.astype(dtype)), lr_scale, 0, critic_rng, map, [])
    assert np.array_equal(agent.policy.params, reference.policy.params)
    assert np.array_equal(agent.critic.params, reference.critic.params)


def test_with_one_epoch_each_it_changes_nothing():
    # epoch 0 uses V_φold either way
    # (the ordinary update in its Python steps, as recompute_advantages runs: the fused update rounds differently)
    on = params_after(config(actor_epochs=1, critic_epochs=1), 3)
    off = params_after(config(actor_epochs=1, critic_epochs=1, recompute_advantages=False, fused_update="off"), 3)
    assert all(np.array_equal(a, b) for a, b in zip(on, off, strict=True))
    several_on = params_after(config(), 2)
    several_off = params_after(config(recompute_advantages=False), 2)
    assert not np.array_equal(several_on[0], several_off[0])


def test_workers_give_the_same_bits_with_the_row_blocks_on_threads():
    # 512-row steps with 2 workers take the threaded path (npppo.passes.THREADED_MIN_ROWS): only the row
    # blocks use the threads; the critic's side-by-side pass does not apply
    cfg = config(steps_per_batch=1024, batch_size=512)
    one, two = params_after(cfg, 2, workers=1), params_after(cfg, 2, workers=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))
    small = config()  # 100-row steps: the critic would otherwise run in worker 0
    assert all(np.array_equal(a, b) for a, b in zip(params_after(small, 2, 1), params_after(small, 2, 2), strict=True))


def test_the_zoo_halfcheetah_network_relu_256x256_is_a_config():
    cfg = presets.get("mujoco").replace(trunk_sizes=[256, 256], critic_sizes=[256, 256], actor_activation="relu",
                                        critic_activation="relu")
    agent = PPO("Pendulum-v1", cfg)
    shapes = [view.shape for view in agent.policy.named_params().values()]
    assert shapes[:4] == [(3, 256), (256,), (256, 256), (256,)]
    assert [view.shape for view in agent.critic.named_params().values()][:4] == [(3, 256), (256,), (256, 256), (256,)]
