"""The agent's wiring in ppo.py, against an independent plain-NumPy reference of one whole update.

``agent.train_iteration(total_steps, batch)`` is recomputed here from the public pieces only: V_φold before
any step, n-step or GAE targets (written out again below, not the library's kernels), termination
vs truncation, advantage normalisation, the entropy and learning-rate schedules, k1 actor and k2
critic steps (full batch, or minibatches drawn from the actor's and the critic's own shuffle streams
``npppo.streams``' ACTOR_SHUFFLE and CRITIC_SHUFFLE keys), the target-KL stop (SB3's rule: a minibatch
whose KL before its step exceeds 1.5 target_kl takes no step and ends the actor's epochs), with per-group gradient-norm
scaling, momentum SGD or Adam written out in NumPy, reward normalisation by the running std of the
discounted return, both networks' gradients over row blocks
(``L = sum_k (n_k / N) L_k``), and the observation statistics. The batches here hold at most a few
hundred rows, far below ``npppo.losses.BLOCK_ROWS`` (4096): the cases that check the blocks
lower that constant for the test (in ``npppo.losses`` and ``npppo.ppo``), so the blocked sum runs on
a small batch; the reference cuts its blocks with its own copy of the rule. The losses and their gradients come from
``npppo.losses.actor_loss_and_grad`` / ``critic_loss_and_grad`` (they have their own finite-difference
tests). Everything runs in float64 on real Gymnasium environments with tiny networks, so the
comparison is tight.

Also here: what the environment receives (clipped actions) against what the batch stores (the
unclipped sample and its log-probability), and the schedules over a whole ``learn()``.
"""

from __future__ import annotations

import itertools
import math
import time

import gymnasium as gym
import numpy as np
import pytest

import npppo.losses
import npppo.ppo
from npppo import PPO, presets, streams
from npppo.losses import actor_loss_and_grad, critic_loss_and_grad

TIGHT = dict(rtol=1e-10, atol=1e-12)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def assert_params_close(actual, desired, rel=1e-10):
    """max |actual - desired| within rel of the largest |desired|. Entry by entry relative tolerances
    fail at parameters near 0 on other BLAS kernels: under OPENBLAS_CORETYPE=Nehalem (no FMA) the
    row-block case's first update puts a 1.3e-5 entry 1.7e-12 off (1.4e-7 relative), the largest
    difference 6e-12 in parameters of size 1; a real change (a gradient, a step) moves them by > 1e-6."""
    difference = np.max(np.abs(np.asarray(actual) - np.asarray(desired)))
    scale = np.max(np.abs(desired))
    assert difference <= rel * scale, f"max |difference| {difference:.3g} > {rel:g} x max |parameter| {scale:.3g}"


# ------------------------------------------------------------------ environments


class TerminatesEveryOtherEpisode(gym.Wrapper):
    """Pendulum whose 1st, 3rd, ... episodes (of this instance) terminate at step ``at``; the others
    run into the time limit and are truncated. A real environment that really terminates."""

    def __init__(self, env: gym.Env, at: int = 9) -> None:
        super().__init__(env)
        self.at, self.episode, self.t = at, 0, 0

    def reset(self, **kwargs):
        self.episode += 1
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.episode % 2 == 1 and self.t == self.at:
            terminated = True
        return obs, reward, terminated, truncated, info


def short_pendulum():
    return gym.make("Pendulum-v1", max_episode_steps=20)


def terminating_pendulum():
    return TerminatesEveryOtherEpisode(gym.make("Pendulum-v1", max_episode_steps=20))


class Drift(gym.Env):
    """A small custom task with asymmetric 2-D action bounds: the position moves by the action;
    the episode terminates when it leaves the box |x| <= 3; :func:`drift` truncates it at 30 steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    action_space = gym.spaces.Box(np.array([-1.0, 0.0]), np.array([0.5, 3.0]), (2,), np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-1.0, 1.0, size=2)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([*self.position, self.t / 30.0])

    def step(self, action):
        self.position = self.position + 0.2 * np.asarray(action)
        self.t += 1
        reward = -float(np.sum(self.position**2))
        terminated = bool(np.any(np.abs(self.position) > 3.0))
        return self._obs(), reward, terminated, False, {}


def drift():
    return gym.wrappers.TimeLimit(Drift(), max_episode_steps=30)


class RecordsActions(gym.Wrapper):
    """Records every step (observation before it, the action received, what came back) and rejects
    any action outside the action space's bounds."""

    def __init__(self, env: gym.Env, log: list) -> None:
        super().__init__(env)
        self.log = log

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.obs = np.asarray(obs, np.float64)
        return obs, info

    def step(self, action):
        action = np.array(action, np.float64)
        space = self.env.action_space
        if not (np.all(action >= space.low) and np.all(action <= space.high)):
            raise AssertionError(f"the environment received an out-of-bounds action {action}")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.log.append(dict(obs=self.obs, action=action, reward=float(reward), next_obs=np.asarray(obs, np.float64),
                             terminated=bool(terminated), truncated=bool(truncated)))
        self.obs = np.asarray(obs, np.float64)
        return obs, reward, terminated, truncated, info


# ------------------------------------------------------------------ the plain-NumPy reference


def tiny(**changes):
    values = dict(num_envs=2, episodes_per_batch=4, trunk_sizes=[6], head_sizes=[5], critic_sizes=[7, 5],
                  actor_epochs=3, critic_epochs=2, mu_activation="identity", dtype="float64", n_step=5,
                  max_grad_norm=0.5, ent_coef_start=0.5, ent_coef_end=0.1, mu_lr=3e-3, sigma_lr=2e-3,
                  critic_lr=5e-3)
    values.update(changes)
    return presets.get("seed").replace(**values)


def sigma_group_start(policy) -> int:
    """Where the sigma optimizer's group begins in the flat vector: the first sigma-head (or
    log_std) entry of ``named_params()``, which lists trunk, mu head, then sigma head."""
    offset = 0
    for name, view in policy.named_params().items():
        if name.startswith(("sigma_head", "log_std")):
            return offset
        offset += view.size
    raise AssertionError("the policy has no sigma parameters")


def segments(batch):
    """(first step, last step, observation after it, terminated) of each segment of the batch."""
    start = 0
    for end, end_obs, terminated in zip(batch.end_steps, batch.end_obs, batch.end_terminated, strict=True):
        yield start, int(end), end_obs, bool(terminated)
        start = int(end) + 1


def n_step_targets(rewards, values, batch, end_value, gamma, n):
    """G_t = sum_{k<m} γ^k r_{t+k} + γ^m V_next, m = min(n, e + 1 - t), straight from the definition."""
    returns = np.empty_like(rewards)
    for (first, last, _, _), bootstrap in zip(segments(batch), end_value, strict=True):
        for t in range(first, last + 1):
            m = min(n, last + 1 - t)
            next_value = values[t + m] if t + m <= last else bootstrap
            returns[t] = sum(gamma**k * rewards[t + k] for k in range(m)) + gamma**m * next_value
    return returns


def gae(rewards, values, batch, end_value, gamma, lam):
    """Â_t = sum_l (γλ)^l δ_{t+l} to the segment's end, δ_t = r_t + γ V(s_{t+1}) - V(s_t)."""
    advantages = np.empty_like(rewards)
    for (first, last, _, _), bootstrap in zip(segments(batch), end_value, strict=True):
        next_values = np.append(values[first + 1 : last + 1], bootstrap)
        deltas = rewards[first : last + 1] + gamma * next_values - values[first : last + 1]
        for t in range(first, last + 1):
            advantages[t] = sum((gamma * lam) ** (k - t) * deltas[k - first] for k in range(t, last + 1))
    return advantages


class Reference:
    """The agent's learning state, advanced by plain NumPy; ``policy`` and ``critic`` are another
    agent's networks, used only as functions of the parameters written into them."""

    def __init__(self, agent: PPO, evaluator: PPO, block_rows: int = 4096) -> None:
        cfg = agent.config
        self.cfg, self.seed, self.block_rows, self.iteration = cfg, agent.seed, block_rows, 0
        self.policy, self.critic = evaluator.policy, evaluator.critic
        self.policy.params[...] = agent.policy.params
        self.critic.params[...] = agent.critic.params
        split = sigma_group_start(agent.policy)
        self.groups = {"mu": (self.policy, 0, split, cfg.mu_lr),
                       "sigma": (self.policy, split, self.policy.params.size, cfg.sigma_lr),
                       "critic": (self.critic, 0, self.critic.params.size, cfg.critic_lr)}
        self.state = {name: dict(velocity=np.zeros(stop - start), m=np.zeros(stop - start), v=np.zeros(stop - start),
                                 steps=0) for name, (_, start, stop, _) in self.groups.items()}
        self.num_timesteps = 0
        self.seen_returns: list[float] = []  # R_t = γ R_{t-1} + r_t of every batch so far (reward normalisation)
        self.seen_obs = np.zeros((0, agent.policy.named_params()["trunk.0.weight"].shape[0]))

    def normalized(self, obs):
        if not self.cfg.normalize_obs:
            return obs
        if self.seen_obs.shape[0] == 0:
            mean, var = np.zeros(obs.shape[1]), np.ones(obs.shape[1])
        else:
            mean, var = self.seen_obs.mean(axis=0), self.seen_obs.var(axis=0)
        return np.clip((obs - mean) / np.sqrt(var + 1e-8), -self.cfg.obs_clip, self.cfg.obs_clip)

    def step(self, name, grad, lr_scale):
        model, start, stop, lr = self.groups[name]
        g = grad[start:stop]
        norm = float(np.sqrt(np.sum(g * g)))
        limit = self.cfg.max_grad_norm
        g = g * (limit / norm if limit is not None and norm > limit else 1.0)
        state, p = self.state[name], model.params[start:stop]
        state["steps"] += 1
        if self.cfg.optimizer == "sgd":
            state["velocity"] = self.cfg.momentum * state["velocity"] + g
            p -= lr * lr_scale * state["velocity"]
        else:
            beta1, beta2 = self.cfg.adam_betas
            state["m"] = beta1 * state["m"] + (1 - beta1) * g
            state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
            m_hat = state["m"] / (1 - beta1 ** state["steps"])
            v_hat = state["v"] / (1 - beta2 ** state["steps"])
            p -= lr * lr_scale * m_hat / (np.sqrt(v_hat) + self.cfg.adam_eps)
        return norm

    def log_prob(self, obs, actions):
        mu, sigma = self.policy.distribution(obs)
        z = (actions - mu) / sigma
        return np.sum(-0.5 * z * z - np.log(sigma) - HALF_LOG_2PI, axis=1)

    def minibatches(self, n, rng):
        """Row indices of each step: all rows, or a fresh permutation cut into ``batch_size`` pieces."""
        size = self.cfg.batch_size
        if size is None or size >= n:
            return [np.arange(n)]
        order = rng.permutation(n)
        return [order[begin : begin + size] for begin in range(0, n, size)]

    def actor_step(self, obs, actions, old_log_prob, advantages, ent_coef, lr_scale, kl_limit):
        """One actor step on these rows: diagnostics, then the loss and gradient summed over row
        blocks of at most ``block_rows`` (as even as can be, contiguous) weighted by their share; no
        step (norms None) when the KL before it exceeds ``kl_limit``."""
        cfg, n = self.cfg, obs.shape[0]
        log_ratio = self.log_prob(obs, actions) - old_log_prob
        _, sigma = self.policy.distribution(obs)
        diagnostics = dict(approx_kl=float(np.mean(np.expm1(log_ratio) - log_ratio)),
                           clip_fraction=float(np.mean(np.abs(np.expm1(log_ratio)) > cfg.clip_eps)),
                           entropy=float(np.mean(np.sum(0.5 + HALF_LOG_2PI + np.log(sigma), axis=1))),
                           sigma_mean=float(np.mean(sigma)))
        loss, grad = self.in_blocks(n, lambda rows: actor_loss_and_grad(
            self.policy, obs[rows], actions[rows], old_log_prob[rows], advantages[rows], cfg.clip_eps, ent_coef))
        if diagnostics["approx_kl"] > kl_limit:
            return loss, diagnostics, None, None
        return loss, diagnostics, self.step("mu", grad, lr_scale), self.step("sigma", grad, lr_scale)

    def in_blocks(self, n, loss_and_grad):
        """A loss and its gradient summed over row blocks of at most ``block_rows`` rows (as even as
        can be, contiguous), each weighted by its share of the n rows."""
        blocks = -(-n // self.block_rows)
        bounds = [k * n // blocks for k in range(blocks + 1)]
        loss, grad = 0.0, 0.0
        for first, stop in itertools.pairwise(bounds):
            part_loss, part_grad = loss_and_grad(slice(first, stop))
            loss += (stop - first) / n * part_loss
            grad = grad + (stop - first) / n * part_grad
        return loss, grad

    def update(self, batch, total_steps):
        """One update on ``batch``; returns the metrics it can predict."""
        cfg = self.cfg
        steps = batch.rewards.shape[0]
        last_start = total_steps - steps
        progress = min(max(self.num_timesteps / last_start, 0.0), 1.0) if last_start > 0 else 1.0
        ent_coef = cfg.ent_coef_start + (cfg.ent_coef_end - cfg.ent_coef_start) * progress
        lr_scale = 1.0 if cfg.lr_schedule == "constant" else max(1.0 - self.num_timesteps / total_steps, 0.0)

        # V_φold, before any step; the bootstrap value only after a truncation (or a cut)
        obs = self.normalized(batch.obs)
        values = self.critic.value(obs)
        end_value = [0.0 if terminated else float(self.critic.value(self.normalized(end_obs[None]))[0])
                     for _, _, end_obs, terminated in segments(batch)]
        rewards = batch.rewards
        if cfg.normalize_rewards:  # update with this batch, then divide by the std of every return so far
            for first, last, _, _ in segments(batch):
                running = 0.0
                for t in range(first, last + 1):
                    running = cfg.gamma * running + rewards[t]
                    self.seen_returns.append(running)
            rewards = np.clip(rewards / np.sqrt(np.var(self.seen_returns) + 1e-8), -cfg.reward_clip, cfg.reward_clip)
        rewards = rewards * cfg.reward_scale
        if cfg.advantage == "n_step":
            returns = n_step_targets(rewards, values, batch, end_value, cfg.gamma, cfg.n_step)
            advantages = returns - values
        else:
            advantages = gae(rewards, values, batch, end_value, cfg.gamma, cfg.gae_lambda)
            returns = advantages + values
        if cfg.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        actor_rng = np.random.default_rng([streams.ACTOR_SHUFFLE, self.seed, self.iteration])
        critic_rng = np.random.default_rng([streams.CRITIC_SHUFFLE, self.seed, self.iteration])
        kl_limit = np.inf if cfg.target_kl is None else 1.5 * cfg.target_kl
        actor, epoch = [], []  # per actor step: (loss, diagnostics, norm mu, norm sigma)
        stopped = False
        for _ in range(cfg.actor_epochs):
            epoch = []
            for idx in self.minibatches(steps, actor_rng):
                epoch.append(self.actor_step(obs[idx], batch.actions[idx], batch.log_prob[idx], advantages[idx],
                                             ent_coef, lr_scale, kl_limit))
                stopped = epoch[-1][2] is None
                if stopped:
                    break
            actor += [step for step in epoch if step[2] is not None]
            if stopped:
                break
        critic, critic_epoch = [], []  # per critic step: (loss, norm)
        for _ in range(cfg.critic_epochs):
            critic_epoch = []
            for idx in self.minibatches(steps, critic_rng):
                loss, grad = self.in_blocks(len(idx), lambda rows, idx=idx: critic_loss_and_grad(
                    self.critic, obs[idx][rows], returns[idx][rows], values[idx][rows], cfg.value_clip))
                critic_epoch.append((loss, self.step("critic", grad, lr_scale)))
            critic += critic_epoch

        self.seen_obs = np.concatenate([self.seen_obs, batch.obs])
        self.num_timesteps += steps
        self.iteration += 1
        last = {key: np.mean([d[key] for _, d, _, _ in epoch]) for key in epoch[-1][1]}
        return {
            "steps": self.num_timesteps, "batch_steps": steps, "ent_coef": ent_coef, "lr_scale": lr_scale,
            "actor_updates": len(actor), "actor_loss": np.mean([a[0] for a in epoch]), **last,
            "critic_loss": np.mean([c[0] for c in critic_epoch]),
            "grad_norm_mu": np.mean([a[2] for a in actor]), "grad_norm_sigma": np.mean([a[3] for a in actor]),
            "grad_norm_critic": np.mean([c[1] for c in critic]),
            "explained_variance": 1.0 - np.var(returns - values) / np.var(returns),
            "episodes": batch.episode_returns.size, "return_mean": batch.episode_returns.mean(),
            "return_std": batch.episode_returns.std(), "return_min": batch.episode_returns.min(),
            "return_max": batch.episode_returns.max(), "length_mean": batch.episode_lengths.mean(),
            "iteration": None,  # filled in by the test
        }


CASES = {
    # the seed's algorithm: n-step returns (n < episode length), normalised advantages, momentum SGD
    "n_step-sgd-truncated": (short_pendulum, dict()),
    # terminations and truncations in one batch, raw advantages, a linear lr schedule, value clipping
    "n_step-sgd-terminating": (terminating_pendulum, dict(
        normalize_advantages=False, lr_schedule="linear", value_clip=1e-4, critic_epochs=3, reward_scale=0.1,
        momentum=0.5)),
    # GAE and Adam, observation normalisation, softplus sigma
    "gae-adam-terminating": (terminating_pendulum, dict(
        advantage="gae", gae_lambda=0.8, optimizer="adam", lr_schedule="linear", normalize_obs=True,
        sigma_mode="softplus", gamma=0.9, adam_eps=1e-5)),
    # GAE with raw advantages, a state-independent sigma, the target-KL early stop
    "gae-adam-target_kl": (short_pendulum, dict(
        advantage="gae", optimizer="adam", normalize_advantages=False, sigma_mode="state_independent",
        target_kl=1e-9, actor_epochs=4, max_grad_norm=None, adam_betas=[0.8, 0.99])),
    # rewards divided by the running std of the discounted return, clipped, then scaled
    "n_step-sgd-normalized-rewards": (terminating_pendulum, dict(normalize_rewards=True, reward_clip=0.2,
                                                                 reward_scale=0.5)),
    # minibatches from the actor's and the critic's own shuffle streams (the last one shorter)
    "n_step-sgd-minibatches": (terminating_pendulum, dict(batch_size=30, actor_epochs=2, critic_epochs=3)),
    "gae-adam-minibatches-target_kl": (short_pendulum, dict(
        advantage="gae", optimizer="adam", batch_size=25, target_kl=1e-3, normalize_obs=True, value_clip=0.1)),
}
# the row blocks, with BLOCK_ROWS lowered from 4096 for the test: 80 rows in 3 blocks of
# 26, 27 and 27; 30-row minibatches in 2 blocks of 15
BLOCK_CASES = {
    "n_step-sgd-truncated-blocks": (short_pendulum, dict(), 32),
    "gae-adam-minibatches-blocks": (terminating_pendulum, dict(
        advantage="gae", optimizer="adam", batch_size=30, sigma_mode="softplus"), 16),
}


@pytest.mark.parametrize("case", sorted(CASES) + sorted(BLOCK_CASES))
def test_two_updates_match_the_plain_numpy_reference(case, obs_statistics, monkeypatch):
    make_env, changes, block_rows = CASES[case] + (4096,) if case in CASES else BLOCK_CASES[case]
    monkeypatch.setattr(npppo.losses, "BLOCK_ROWS", block_rows)
    config = tiny(**changes)
    agent = PPO(make_env, config, seed=4)
    reference = Reference(agent, PPO(make_env, config, seed=99), block_rows)
    total_steps = 400
    for iteration in range(2):
        batch = agent.collect()
        expected = reference.update(batch, total_steps)
        metrics = agent.train_iteration(total_steps, batch)
        assert_params_close(agent.policy.params, reference.policy.params)
        assert_params_close(agent.critic.params, reference.critic.params)
        expected["iteration"] = iteration + 1
        # Largest relative differences from the reference over these cases, by OpenBLAS kernel (the
        # parameters agree to 1e-10 of their scale under each): Katmai and Sandybridge: grad_norm_mu 1.6e-9,
        # approx_kl 3.0e-10; Nehalem: grad_norm_mu 1.0e-8, approx_kl 2.0e-9, actor_loss 4.4e-11; SkylakeX,
        # Haswell, Zen: < 1e-12. The gradient norm is a difference of large terms, so it gets 1e-6.
        for key, value in expected.items():
            rel = 1e-6 if key.startswith("grad_norm") else 1e-8
            assert metrics[key] == pytest.approx(value, rel=rel, abs=1e-12), (iteration, key)
        assert (agent.iteration, agent.num_timesteps) == (iteration + 1, reference.num_timesteps)
        if config.normalize_obs:
            mean, var = obs_statistics(agent)
            np.testing.assert_allclose(mean, reference.seen_obs.mean(axis=0), **TIGHT)
            np.testing.assert_allclose(var, reference.seen_obs.var(axis=0), **TIGHT)
    if make_env is terminating_pendulum:  # the batch held both kinds of episode end
        assert batch.end_terminated.any() and not batch.end_terminated.all()
    if case == "gae-adam-target_kl":
        assert metrics["actor_updates"] == 1  # the KL is 0 before the first step, > 1.5e-9 after it: no second
    if case == "gae-adam-minibatches-target_kl":
        assert metrics["actor_updates"] == 1  # 0 before the first step; the second minibatch is past 1.5e-3: stop


def test_the_reference_is_sensitive_to_termination():
    """Guard for the test above: treating the terminations as truncations changes the targets."""
    agent = PPO(terminating_pendulum, tiny(), seed=4)
    batch = agent.collect()
    assert batch.end_terminated.any()
    values = agent.critic.value(batch.obs)
    ends = list(segments(batch))
    honest = n_step_targets(batch.rewards, values, batch, [0.0 if t else 1.0 for *_, t in ends], 0.99, 5)
    ignored = n_step_targets(batch.rewards, values, batch, [1.0] * len(ends), 0.99, 5)
    assert not np.allclose(honest, ignored)


# ------------------------------------------------------------------ what the environment receives


@pytest.mark.parametrize(("make_inner", "batch_kind"), [
    (lambda: gym.make("Pendulum-v1", max_episode_steps=25), {}),
    (drift, {}),
    (drift, dict(episodes_per_batch=None, steps_per_batch=75, num_envs=3)),  # cut pieces, 25 steps per env
], ids=["pendulum", "drift-2d", "drift-2d-fixed-steps"])
def test_the_environment_gets_clipped_actions_and_the_batch_the_unclipped_sample(make_inner, batch_kind):
    log: list[dict] = []
    config = tiny(sigma_mode="state_independent", log_std_init=1.0, mu_output_gain=3.0, **batch_kind)
    agent = PPO(lambda: RecordsActions(make_inner(), log), config, seed=1)
    batch = agent.collect()
    space = make_inner().action_space
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)

    assert len(log) == batch.rewards.shape[0]
    by_obs = {record["obs"].tobytes(): record for record in log}
    assert len(by_obs) == len(log)  # every observation is distinct: the lookup below is exact
    received = np.array([by_obs[obs.tobytes()]["action"] for obs in batch.obs])
    np.testing.assert_array_equal(received, np.clip(batch.actions, low, high))
    assert np.any(batch.actions < low) and np.any(batch.actions > high)  # the test exercised clipping
    np.testing.assert_array_equal(batch.rewards, [by_obs[obs.tobytes()]["reward"] for obs in batch.obs])

    # the log-probability is of the unclipped sample under π_θold
    mu, sigma = agent.policy.distribution(batch.obs)
    z = (batch.actions - mu) / sigma
    np.testing.assert_allclose(batch.log_prob, np.sum(-0.5 * z * z - np.log(sigma) - HALF_LOG_2PI, axis=1), **TIGHT)

    # each segment ends where the environment said so (or where a fixed-step batch cut it), with
    # the observation that followed
    cuts = 0
    for first, last, end_obs, terminated in segments(batch):
        record = by_obs[batch.obs[last].tobytes()]
        assert record["terminated"] == terminated
        cuts += not (record["terminated"] or record["truncated"])
        np.testing.assert_array_equal(end_obs, record["next_obs"])
        for t in range(first, last):
            step = by_obs[batch.obs[t].tobytes()]
            assert not (step["terminated"] or step["truncated"])
            np.testing.assert_array_equal(step["next_obs"], batch.obs[t + 1])
    assert cuts == (config.num_envs if config.steps_per_batch else 0)
    if config.steps_per_batch is None:  # whole episodes: one segment each
        lengths = np.diff(np.concatenate([[-1], batch.end_steps]))
        np.testing.assert_array_equal(batch.episode_lengths, lengths)
        np.testing.assert_allclose(batch.episode_returns, [batch.rewards[f : e + 1].sum() for f, e, _, _ in
                                                           segments(batch)], rtol=1e-12)


def test_act_clips_each_dimension_to_its_own_bounds():
    config = tiny(sigma_mode="state_independent", log_std_init=1.5, mu_output_gain=5.0)
    agent = PPO(drift, config, seed=0)
    obs = np.random.default_rng(0).normal(size=(64, 3)) * 3
    mu, _ = agent.policy.distribution(obs)
    # row by row the sums run in another order than a batched product's: the last bit may differ
    low, high = Drift.action_space.low, Drift.action_space.high
    np.testing.assert_allclose(agent.act(obs), np.clip(mu, low, high), **TIGHT)
    sampled = agent.act(obs, deterministic=False)
    assert np.all(sampled >= low) and np.all(sampled <= high)
    for d in range(2):  # both bounds of both dimensions are reached
        assert np.any(sampled[:, d] == low[d]) and np.any(sampled[:, d] == high[d])


def test_stochastic_act_samples_mu_plus_sigma_times_standard_noise():
    config = tiny(sigma_mode="state_independent", log_std_init=-1.0, mu_output_gain=0.01)
    agent = PPO(short_pendulum, config, seed=0)
    obs = np.random.default_rng(1).normal(size=(4000, 3))
    mu, sigma = agent.policy.distribution(obs)
    noise = (agent.act(obs, deterministic=False) - mu) / sigma  # sigma ~ 0.37: nothing is clipped
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1.0) < 0.05
    assert not np.array_equal(agent.act(obs[:5], deterministic=False), agent.act(obs[:5], deterministic=False))


def test_value_of_few_and_many_rows_is_the_critics_value_of_normalised_obs(obs_statistics):
    agent = PPO(short_pendulum, tiny(normalize_obs=True), seed=0)
    obs = np.random.default_rng(2).normal(size=(40, 3))
    agent.act(obs)  # acting before training must not leave stale statistics behind
    agent.learn(80)  # statistics away from (0, 1)
    mean, var = obs_statistics(agent)
    normalised = np.clip((obs - mean) / np.sqrt(var + 1e-8), -10, 10)
    expected = agent.critic.value(normalised)
    np.testing.assert_allclose(agent.value(obs), expected, **TIGHT)
    np.testing.assert_allclose(agent.value(obs[:3]), expected[:3], **TIGHT)
    mu, _ = agent.policy.distribution(normalised)
    np.testing.assert_allclose(agent.act(obs), np.clip(mu, -2.0, 2.0), **TIGHT)


# ------------------------------------------------------------------ schedules over a whole run


def test_linear_schedules_over_learn_with_equal_batches():
    # 2 episodes of 10 steps per iteration, 100 steps: 5 iterations
    config = tiny(episodes_per_batch=2, lr_schedule="linear", ent_coef_start=0.8, ent_coef_end=0.0,
                  actor_epochs=1, critic_epochs=1)
    agent = PPO(lambda: gym.make("Pendulum-v1", max_episode_steps=10), config, seed=0)
    history = agent.learn(100)
    assert [m["steps"] for m in history] == [20, 40, 60, 80, 100]
    np.testing.assert_allclose([m["lr_scale"] for m in history], [1.0, 0.8, 0.6, 0.4, 0.2], rtol=1e-12)
    np.testing.assert_allclose([m["ent_coef"] for m in history], [0.8, 0.6, 0.4, 0.2, 0.0], rtol=1e-12, atol=1e-15)


def test_entropy_coefficient_ends_exactly_at_its_end_value_with_uneven_episodes():
    config = tiny(episodes_per_batch=3, ent_coef_start=0.3, ent_coef_end=0.05, actor_epochs=1, critic_epochs=1)
    agent = PPO(terminating_pendulum, config, seed=0)
    history = agent.learn(150)
    coefs = [m["ent_coef"] for m in history]
    assert len({m["batch_steps"] for m in history}) > 1  # the batches really differ in length
    assert coefs[0] == 0.3 and coefs[-1] == pytest.approx(0.05, rel=1e-12)
    assert np.all(np.diff(coefs) < 0)
    before = np.array([0] + [m["steps"] for m in history[:-1]])
    expected = 0.3 + (0.05 - 0.3) * before / (150 - np.array([m["batch_steps"] for m in history]))
    np.testing.assert_allclose(coefs[:-1], expected[:-1], rtol=1e-12)


def test_learn_stops_when_the_callback_says_so_and_counts_steps():
    agent = PPO(short_pendulum, tiny(episodes_per_batch=2, actor_epochs=1, critic_epochs=1), seed=0)
    seen = []
    history = agent.learn(1000, callback=lambda a, m: seen.append(m["iteration"]) or a.iteration < 2)
    assert len(history) == 2 and seen == [1, 2]
    assert (agent.iteration, agent.num_timesteps) == (2, 80)
    assert [m["iteration"] for m in history] == [1, 2] and history[-1]["steps"] == 80


def test_evaluate_is_the_mean_and_std_of_deterministic_episodes():
    agent = PPO(short_pendulum, tiny(), seed=0)
    env = short_pendulum()
    totals = []
    for k in range(3):
        obs, _ = env.reset(seed=10_000 + k)  # the documented default seeds
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
            total += reward
            done = terminated or truncated
        totals.append(total)
    mean, std = agent.evaluate(episodes=3, env=short_pendulum)
    assert mean == pytest.approx(np.mean(totals), rel=1e-12) and std == pytest.approx(np.std(totals), rel=1e-12)


def test_a_run_shorter_than_one_batch_uses_the_end_of_the_schedules():
    # the only iteration is also the last: the entropy coefficient is already at its end value
    config = tiny(ent_coef_start=0.7, ent_coef_end=0.2, lr_schedule="linear", actor_epochs=1, critic_epochs=1)
    metrics = PPO(short_pendulum, config, seed=0).learn(1)
    assert len(metrics) == 1 and metrics[0]["steps"] == 80
    assert metrics[0]["ent_coef"] == 0.2 and metrics[0]["lr_scale"] == 1.0


@pytest.mark.parametrize("total_steps", [0, -5, 1.5, "100"])
def test_learn_refuses_a_step_count_that_is_not_a_positive_integer(total_steps):
    agent = PPO(short_pendulum, tiny(), seed=0)
    with pytest.raises(ValueError, match="total_steps must be a positive integer"):
        agent.learn(total_steps)
    assert agent.num_timesteps == 0


@pytest.mark.parametrize("seed", [-1, 1.0, "0"])
def test_the_seed_must_be_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        PPO(short_pendulum, tiny(), seed=seed)


@pytest.mark.parametrize(("num_envs", "episodes"), [(4, 3), (2, 5), (3, 3)])
def test_a_whole_episode_batch_holds_exactly_its_episodes(num_envs, episodes):
    agent = PPO(short_pendulum, tiny(num_envs=num_envs, episodes_per_batch=episodes), seed=0)
    batch = agent.collect()
    assert batch.episode_returns.size == episodes == batch.end_steps.size
    assert batch.rewards.shape[0] == 20 * episodes
    assert len({obs.tobytes() for obs in batch.obs[np.concatenate([[0], batch.end_steps[:-1] + 1])]}) == episodes


def test_fixed_step_batches_carry_episodes_across_batches():
    """Episodes that span batches are reported once, whole, with their full return and length."""
    logs: list[list[dict]] = []

    def make():
        logs.append([])
        return RecordsActions(gym.make("Pendulum-v1", max_episode_steps=20), logs[-1])

    agent = PPO(make, tiny(num_envs=2, episodes_per_batch=None, steps_per_batch=25), seed=3)
    # 13 and 12 steps per batch (52 and 48 in all): 2 whole episodes on each environment, a third begun
    batches = [agent.collect() for _ in range(4)]
    assert [b.rewards.shape[0] for b in batches] == [25, 25, 25, 25]
    episodes = []
    for log in logs:
        rewards = []
        for record in log:
            rewards.append(record["reward"])
            if record["terminated"] or record["truncated"]:
                episodes.append((len(rewards), sum(rewards)))
                rewards = []
    assert len(logs) == 2 and len(episodes) == 4
    assert agent.episodes_started == [3, 3]
    reported = sorted(zip(np.concatenate([b.episode_lengths for b in batches]).tolist(),
                          np.concatenate([b.episode_returns for b in batches]).tolist(), strict=True))
    assert [length for length, _ in reported] == [20, 20, 20, 20]
    np.testing.assert_allclose([r for _, r in reported], [r for _, r in sorted(episodes)], rtol=1e-12)
    # every batch's steps are the environments' steps, each taken once
    assert sorted(obs.tobytes() for b in batches for obs in b.obs) == sorted(
        r["obs"].tobytes() for log in logs for r in log)
    # every episode started from a new state
    starts = [log[0]["obs"].tobytes() for log in logs] + [
        log[k + 1]["obs"].tobytes() for log in logs for k, r in enumerate(log[:-1])
        if r["terminated"] or r["truncated"]]
    assert len(set(starts)) == len(starts) == 6


def test_timing_metrics_add_up():
    agent = PPO(short_pendulum, tiny(episodes_per_batch=2, actor_epochs=1, critic_epochs=1), seed=0)
    start = time.perf_counter()
    metrics = agent.train_iteration(1000)
    wall = time.perf_counter() - start
    assert metrics["rollout_s"] > 0 and metrics["update_s"] > 0
    assert metrics["rollout_s"] + metrics["update_s"] <= wall  # each phase timed, not the clock's reading
    assert metrics["steps_per_s"] == pytest.approx(40 / (metrics["rollout_s"] + metrics["update_s"]), rel=1e-9)
    direct = agent.train_iteration(1000, agent.collect())  # a batch given: no rollout time
    assert direct["rollout_s"] == 0.0 and direct["steps_per_s"] == pytest.approx(40 / direct["update_s"], rel=1e-9)


def test_evaluate_can_sample_from_the_policy():
    agent = PPO(short_pendulum, tiny(), seed=0)
    assert agent.evaluate(episodes=2, env=short_pendulum, deterministic=False) != agent.evaluate(
        episodes=2, env=short_pendulum)


def test_a_fixed_step_batch_smaller_than_the_number_of_environments():
    agent = PPO(short_pendulum, tiny(num_envs=3, episodes_per_batch=None, steps_per_batch=2), seed=0)
    for _ in range(2):
        batch = agent.collect()
        assert batch.rewards.shape[0] == 2 and batch.end_steps.tolist() == [0, 1]
        assert not batch.end_terminated.any() and batch.episode_returns.size == 0
