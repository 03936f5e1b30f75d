"""The fused update (npppo.fused_update): its epochs against today's path step by step (float64), its
gradients against finite differences, its loss kernel against NumPy, its stops (non-finite, target KL),
when it falls back, and a short training run with it on and off."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import kink_free_rows, spread_indices

from npppo import PPO, fused_update, presets, streams
from npppo.critic import Critic
from npppo.errors import TrainingError
from npppo.losses import actor_loss_terms, squared_error_grad
from npppo.passes import CriticData, critic_passes, make_optimizer, minibatches, optimizer_step
from npppo.policy import GaussianPolicy

ROWS = 200  # with minibatches of 64: three full ones and one of 8
TIGHT = {"rtol": 1e-12, "atol": 1e-13}

# each actor configuration the presets use, and the other options the fused path covers
ACTOR_CASES = {
    "seed: relu sigma head, elu, sgd, norm 1": dict(sigma_mode="relu", mu_activation="relu"),
    "softplus sigma head, tanh, adam": dict(sigma_mode="softplus", actor_activation="tanh", optimizer="adam"),
    "state-independent sigma, tanh squash, adam, no norm scaling": dict(
        sigma_mode="state_independent", actor_activation="tanh", optimizer="adam", action_squash="tanh",
        max_grad_norm=None, head_sizes=[]),
    "full batch, sgd": dict(batch_size=None),
    "minibatch larger than the batch": dict(batch_size=500, optimizer="adam"),
}


def actor_setup(tiny_config, changes, seed=0):
    """A float64 policy (obs_dim 5, action_dim 2), its two optimizers, and a batch of ROWS samples."""
    config = tiny_config(**{"dtype": "float64", "sigma_min": 0.3, "batch_size": 64, "actor_epochs": 3,
                            "mu_lr": 3e-3, "sigma_lr": 2e-3, **changes})
    rng = np.random.default_rng(seed)
    policy = GaussianPolicy(5, 2, config, np.random.default_rng(seed + 1))
    obs = kink_free_rows(policy, policy.forward, rng.normal(size=(10 * ROWS, 5)), ROWS)
    mu, sigma = policy.distribution(obs)
    actions = mu + sigma * rng.normal(size=mu.shape)
    old_log_prob = rng.normal(-2.0, 0.3, ROWS)
    advantages = rng.normal(size=ROWS)
    optimizers = {"mu": make_optimizer(config, *policy.mu_range, config.mu_lr, policy.dtype),
                  "sigma": make_optimizer(config, *policy.sigma_range, config.sigma_lr, policy.dtype)}
    bounds = np.array([[-2.0, -1.0], [2.0, 3.0]]) if config.action_squash == "tanh" else None
    return config, policy, optimizers, (obs, actions, old_log_prob, advantages), bounds


def reference_actor_passes(policy, optimizers, config, batch, ent_coef, lr_scale, rng, bounds, kl_limit=math.inf):
    """Today's loop of PPO.update, step by step through the NumPy-level path; with ``kl_limit``, SB3's
    rule: a minibatch whose approx KL (before its step) exceeds it stops the actor's epochs."""
    obs, actions, old_log_prob, advantages = batch
    epoch, norms = [], []
    for _ in range(config.actor_epochs):
        epoch = []
        for idx in minibatches(obs.shape[0], config.batch_size, rng):
            rows = slice(None) if idx is None else idx
            info = actor_loss_terms(policy, obs[rows], actions[rows], old_log_prob[rows], advantages[rows],
                                    config.clip_eps, ent_coef, bounds)
            epoch.append(info)
            if info.approx_kl > kl_limit:
                return epoch, norms
            norms.append(optimizer_step(optimizers, policy, info.loss, lr_scale, 0))
    return epoch, norms


def assert_same_state(reference, fused):
    """Parameters and every optimizer's state of two (policy or critic, optimizers) pairs agree to ~1e-12."""
    (ref_model, ref_optimizers), (model, optimizers) = reference, fused
    np.testing.assert_allclose(model.params, ref_model.params, **TIGHT)
    for name, optimizer in optimizers.items():
        assert optimizer.steps == ref_optimizers[name].steps
        for key, buffer in optimizer.buffers.items():
            np.testing.assert_allclose(buffer, ref_optimizers[name].buffers[key], **TIGHT)


@pytest.mark.parametrize("changes", ACTOR_CASES.values(), ids=ACTOR_CASES.keys())
def test_fused_actor_epochs_equal_todays_steps(changes, tiny_config):
    config, ref_policy, ref_optimizers, batch, bounds = actor_setup(tiny_config, changes)
    _, policy, optimizers, _, _ = actor_setup(tiny_config, changes)
    ref_epoch, ref_norms = reference_actor_passes(ref_policy, ref_optimizers, config, batch, 0.05, 0.7,
                                                  np.random.default_rng(9), bounds)
    epoch, norms = fused_update.actor_passes(policy, optimizers, config, *batch, 0.05, 0.7, np.random.default_rng(9),
                                             0, bounds)
    assert len(norms) == len(ref_norms) > 1
    np.testing.assert_allclose(norms, ref_norms, **TIGHT)
    assert_same_state((ref_policy, ref_optimizers), (policy, optimizers))
    assert len(epoch) == len(ref_epoch)
    for info, ref_info in zip(epoch, ref_epoch, strict=True):
        for key in ("loss", "entropy", "approx_kl", "clip_fraction", "ratio", "sigma_mean"):
            assert getattr(info, key) == pytest.approx(getattr(ref_info, key), rel=1e-12, abs=1e-14), key


def test_fused_actor_stops_before_the_step_whose_kl_is_too_large(tiny_config):
    changes = dict(mu_lr=3e-3, sigma_lr=3e-3, actor_epochs=5)
    config, ref_policy, ref_optimizers, batch, _ = actor_setup(tiny_config, changes)
    _, policy, optimizers, _, _ = actor_setup(tiny_config, changes)
    # old log-probs of the current policy: the KL starts at 0 and grows with the steps
    mu, sigma = policy.distribution(batch[0])
    z = (batch[1] - mu) / sigma
    batch = (batch[0], batch[1], np.sum(-0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi), axis=1), batch[3])
    limit = 2e-3
    ref_epoch, ref_norms = reference_actor_passes(ref_policy, ref_optimizers, config, batch, 0.0, 1.0,
                                                  np.random.default_rng(2), None, limit)
    epoch, norms = fused_update.actor_passes(policy, optimizers, config, *batch, 0.0, 1.0, np.random.default_rng(2),
                                             0, None, limit)
    assert 1 < len(norms) == len(ref_norms) < config.actor_epochs * 4  # it stopped, after some steps
    assert epoch[-1].approx_kl > limit and ref_epoch[-1].approx_kl == pytest.approx(epoch[-1].approx_kl, rel=1e-12)
    assert_same_state((ref_policy, ref_optimizers), (policy, optimizers))


def test_fused_actor_gradient_matches_finite_differences(tiny_config, checked_gradient):
    # one full-batch step at learning rate 0: the kernel leaves its gradient in policy.grad and its loss
    # in the step's diagnostics, and the parameters where they were
    config, policy, optimizers, batch, _ = actor_setup(tiny_config, dict(batch_size=None, actor_epochs=1))

    def loss():
        epoch, _ = fused_update.actor_passes(policy, optimizers, config, *batch, 0.05, 0.0, np.random.default_rng(0), 0)
        return epoch[0].loss

    before = policy.params.copy()
    loss()
    grad = policy.grad.copy()
    np.testing.assert_array_equal(policy.params, before)
    result = checked_gradient(loss, policy.params, grad, spread_indices(policy, np.random.default_rng(1), 12))
    assert result.max_rel_error < 1e-6, result


def critic_setup(tiny_config, changes, seed=0):
    config = tiny_config(**{"dtype": "float64", "batch_size": 64, "critic_epochs": 3, "critic_lr": 3e-3, **changes})
    rng = np.random.default_rng(seed)
    critic = Critic(6, config, np.random.default_rng(seed + 1))
    obs = kink_free_rows(critic, critic.forward, rng.normal(size=(20 * ROWS, 6)), ROWS)
    values = critic.value(obs)
    targets = values + rng.normal(size=ROWS)
    # old values on both sides of each value, some beyond the clip range and some inside it
    old_values = values + rng.choice([-0.6, -0.05, 0.05, 0.6], ROWS)
    optimizer = make_optimizer(config, 0, critic.params.shape[0], config.critic_lr, critic.dtype)
    return config, critic, optimizer, (obs, targets, old_values)


CRITIC_CASES = {"squared error, sgd": {}, "value clip, adam": dict(value_clip=0.2, optimizer="adam"),
                "full batch, value clip": dict(batch_size=None, value_clip=0.3)}


@pytest.mark.parametrize("changes", CRITIC_CASES.values(), ids=CRITIC_CASES.keys())
def test_fused_critic_epochs_equal_todays_steps(changes, tiny_config):
    config, ref_critic, ref_optimizer, batch = critic_setup(tiny_config, changes)
    _, critic, optimizer, _ = critic_setup(tiny_config, changes)
    ref_losses, ref_norms = critic_passes([ref_critic], ref_optimizer, config.replace(fused_update="off"),
                                          CriticData(*batch), 0.8, 4, 11)
    losses, norms = fused_update.critic_passes(critic, optimizer, config, *batch, 0.8,
                                               streams.generator(streams.CRITIC_SHUFFLE, 4, 11), 11)
    assert len(norms) == len(ref_norms) > 1
    np.testing.assert_allclose(norms, ref_norms, **TIGHT)
    np.testing.assert_allclose(losses, ref_losses, **TIGHT)
    assert_same_state((ref_critic, {"critic": ref_optimizer}), (critic, {"critic": optimizer}))


@pytest.mark.parametrize("value_clip", [None, 0.2])
def test_fused_critic_gradient_matches_finite_differences(value_clip, tiny_config, checked_gradient):
    config, critic, optimizer, batch = critic_setup(tiny_config, dict(batch_size=None, critic_epochs=1,
                                                                      value_clip=value_clip))

    def loss():
        return fused_update.critic_passes(critic, optimizer, config, *batch, 0.0, np.random.default_rng(0), 0)[0][0]

    loss()
    result = checked_gradient(loss, critic.params, critic.grad.copy(),
                              spread_indices(critic, np.random.default_rng(2), 12))
    assert result.max_rel_error < 1e-6, result


def reference_squared_error(values, targets, old_values, value_clip):
    """(L, dL/dV) of the critic's loss in plain NumPy (losses.critic_loss_terms' formulas)."""
    n = values.shape[0]
    error = values - targets
    if value_clip is None:
        return np.mean(error**2), (2.0 / n) * error
    clipped_error = old_values + np.clip(values - old_values, -value_clip, value_clip) - targets
    use_clipped = clipped_error**2 > error**2
    inside = np.abs(values - old_values) < value_clip
    return (np.mean(np.where(use_clipped, clipped_error**2, error**2)),
            (2.0 / n) * np.where(use_clipped, clipped_error * inside, error))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("value_clip", [None, 0.2])
def test_squared_error_kernel_matches_numpy(dtype, value_clip):
    rng = np.random.default_rng(3)
    values, targets = rng.normal(size=(2, 37)).astype(dtype)
    old_values = (values + rng.choice([-0.5, -0.1, 0.1, 0.5], 37)).astype(dtype)
    grad = np.empty(37, dtype)
    loss = squared_error_grad(values, targets, old_values, dtype(value_clip or 0.0), grad)
    expected_loss, expected_grad = reference_squared_error(values, targets, old_values,
                                                           None if value_clip is None else dtype(value_clip))
    assert loss == pytest.approx(float(expected_loss), rel=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_array_equal(grad, expected_grad.astype(dtype))  # the same roundings as NumPy's
    assert value_clip is None or np.any(np.abs(values - old_values) > value_clip)  # both sides tested


def test_a_non_finite_step_raises_todays_error_and_takes_no_step(tiny_config):
    config, ref_policy, ref_optimizers, batch, _ = actor_setup(tiny_config, {})
    _, policy, optimizers, _, _ = actor_setup(tiny_config, {})
    advantages = batch[3].copy()
    advantages[150] = np.nan  # in some minibatch of the first epoch
    batch = (*batch[:3], advantages)
    with pytest.raises(TrainingError) as expected:
        reference_actor_passes(ref_policy, ref_optimizers, config, batch, 0.0, 1.0, np.random.default_rng(5), None)
    with pytest.raises(TrainingError) as raised:
        fused_update.actor_passes(policy, optimizers, config, *batch, 0.0, 1.0, np.random.default_rng(5), 0)
    assert str(raised.value) == str(expected.value)
    assert "actor loss (nan)" in str(raised.value)
    assert_same_state((ref_policy, ref_optimizers), (policy, optimizers))  # the steps before it, and no more


def test_the_update_falls_back_where_the_fused_path_does_not_reach(monkeypatch, tiny_config):
    config = tiny_config()
    assert fused_update.fallback_reason(config, 64) is None
    assert "off" in fused_update.fallback_reason(config.replace(fused_update="off"), 64)
    assert "target_kl" in fused_update.fallback_reason(config.replace(target_kl=0.02), 64)
    assert "row blocks" in fused_update.fallback_reason(config, 4097)
    monkeypatch.setattr(fused_update, "blas_available", lambda: False)
    assert "npppo[fused]" in fused_update.fallback_reason(config, 64)


@pytest.mark.parametrize("changes", [dict(), dict(value_clip=0.2, optimizer="sgd", sigma_mode="softplus",
                                                  head_sizes=[16], sigma_min=0.05)])
def test_training_with_the_fused_update_equals_todays(changes, tiny_config):
    base = dict(dtype="float64", batch_size=64, trunk_sizes=[16], head_sizes=[], critic_sizes=[16],
                sigma_mode="state_independent", optimizer="adam", actor_activation="tanh")
    config = tiny_config(**{**base, **changes})
    assert fused_update.fallback_reason(config, 64) is None  # "auto" takes the fused path here
    agents, histories = {}, {}
    for mode in ("off", "auto"):
        agents[mode] = PPO("Pendulum-v1", config.replace(fused_update=mode), seed=3)
        histories[mode] = agents[mode].learn(1200)
    off, fused = agents["off"], agents["auto"]
    np.testing.assert_allclose(fused.policy.params, off.policy.params, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(fused.critic.params, off.critic.params, rtol=1e-11, atol=1e-12)
    for metrics, reference in zip(histories["auto"], histories["off"], strict=True):
        for key in ("actor_loss", "critic_loss", "approx_kl", "grad_norm_mu", "grad_norm_sigma", "grad_norm_critic"):
            assert metrics[key] == pytest.approx(reference[key], rel=1e-10, abs=1e-13), key
        assert metrics["actor_updates"] == reference["actor_updates"]


def test_a_float32_sigma_too_small_for_the_fused_epoch_takes_the_python_steps():
    """At log sigma = -20 the log-density must read the rollout's row-by-row mu (losses.rollout_distribution,
    issue 20), which the compiled epoch does not: that update takes the Python steps, the same bits as
    fused_update="off"; at log sigma = -0.5 it is fused, and rounds differently."""
    def params_after(log_std_init, fused_update):
        config = presets.get("pendulum").replace(num_envs=2, episodes_per_batch=2, actor_epochs=2, critic_epochs=1,
                                                 log_std_init=log_std_init, fused_update=fused_update)
        agent = PPO("Pendulum-v1", config, seed=3)
        agent.learn(400)
        return agent.policy.params.copy()

    assert np.array_equal(params_after(-20.0, "auto"), params_after(-20.0, "off"))
    assert not np.array_equal(params_after(-0.5, "auto"), params_after(-0.5, "off"))
