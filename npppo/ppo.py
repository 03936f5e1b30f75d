"""PPO: the agent, and one iteration of the seed's algorithm from rollout to θold ← θ.

    for each iteration:
        1. run π_θold for a batch of episodes (or steps)                       rollout.Collector
        2. critic targets G_t (n-step returns or GAE λ-returns) with V_φold      returns
        3. advantages Â_t = G_t - V_φold(s_t), normalised over the batch
        4. k1 passes of the clipped-surrogate actor loss (mu and sigma optimizers)
        5. k2 passes of the squared-error critic loss (critic optimizer)
        6. θold ← θ, φold ← φ   (implicit: the next rollout uses the updated networks)

The entropy coefficient falls linearly from ``ent_coef_start`` at the first iteration of the run to
``ent_coef_end`` at its last; a linear learning-rate schedule falls towards 0 over the run's steps.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from npppo.config import PPOConfig
from npppo.critic import Critic
from npppo.envs import EnvSpec, check_spaces, env_name, make_env
from npppo.errors import EnvironmentError, TrainingError
from npppo.losses import actor_loss_terms, critic_loss_terms
from npppo.nn.layers import forward_rows
from npppo.normalization import RunningMeanStd
from npppo.optim import Optimizer, l2_norm
from npppo.policy import GaussianPolicy
from npppo.returns import gae_advantages, n_step_returns, normalize
from npppo.rollout import Batch, Collector
from npppo.threads import apply_default_threads

Callback = Callable[["PPO", dict[str, Any]], bool | None]

# up to this many rows the compiled row-by-row forward beats BLAS (its per-layer calls cost more
# than the arithmetic); above it, BLAS
ROWS_FORWARD_MAX = 16


class PPO:
    """Proximal Policy Optimization with a diagonal Gaussian policy, on a Gymnasium environment.

    ``env`` is a Gymnasium id, a ``gymnasium.Env`` (then only that one environment is stepped), or a
    callable returning a new environment (called ``config.num_envs`` times).

    Making an agent limits BLAS to one thread unless ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``
    or :func:`npppo.threads.set_num_threads` chose otherwise (:func:`npppo.threads.apply_default_threads`).
    """

    def __init__(self, env: EnvSpec | None, config: PPOConfig | None = None, seed: int = 0, *,
                 _spaces: tuple[int, int, np.ndarray, np.ndarray] | None = None) -> None:
        self.config = config if config is not None else PPOConfig()
        self.config.validate()
        apply_default_threads()
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.env_spec = env
        self.env_id = env_name(env) if env is not None else None
        self._envs: list | None = None
        if _spaces is None:
            if env is None:
                raise EnvironmentError("PPO needs an environment (an id, a gymnasium.Env or a factory)")
            first = make_env(env)
            _spaces = check_spaces(first)
            self._envs = [first]
        self.obs_dim, self.action_dim, self.action_low, self.action_high = _spaces
        cfg = self.config
        self.dtype = np.dtype(cfg.dtype)
        init_rng = np.random.default_rng([self.seed, 0xC0FFEE])
        self.policy = GaussianPolicy(
            self.obs_dim, self.action_dim, cfg.trunk_sizes, cfg.head_sizes, cfg.actor_activation,
            cfg.mu_activation, cfg.sigma_mode, cfg.sigma_min, cfg.log_std_init, cfg.elu_alpha, cfg.init,
            cfg.mu_output_gain, self.dtype, init_rng,
        )
        self.critic = Critic(self.obs_dim, cfg.critic_sizes, cfg.critic_activation, cfg.elu_alpha, cfg.init,
                             self.dtype, init_rng)
        self.optimizers = {
            "mu": self._optimizer(*self.policy.mu_range, cfg.mu_lr),
            "sigma": self._optimizer(*self.policy.sigma_range, cfg.sigma_lr),
            "critic": self._optimizer(0, self.critic.params.shape[0], cfg.critic_lr),
        }
        self.obs_rms = RunningMeanStd((self.obs_dim,), cfg.obs_clip) if cfg.normalize_obs else None
        self.iteration = 0
        self.num_timesteps = 0
        self.last_batch_steps = 0
        self.history: list[dict[str, Any]] = []
        self._act_rng = np.random.default_rng([self.seed, 0xAC7])
        self._action_bounds = np.stack([self.action_low, self.action_high]).astype(np.float64)
        self._no_noise = np.zeros((0, self.action_dim))
        self._no_obs_stats = np.zeros((0, self.obs_dim))
        self._critic_layout: tuple[np.ndarray, np.ndarray] | None = None
        self._obs_stats_cache: tuple | None = None  # (mean, var, count, stats) of the last _obs_stats
        self._collector: Collector | None = None
        self._episodes_started = 0  # fixed-step batches: episodes begun before a restore
        if cfg.mu_activation == "relu" and np.any(self.action_low < 0):
            warnings.warn(
                f"the mu head ends in ReLU (the seed's design), so the policy mean cannot go below 0, but "
                f"the action space's lower bound is {self.action_low.tolist()}: negative actions come only "
                "from noise. Use mu_activation='identity' or a tuned preset (presets.get('pendulum')).",
                stacklevel=2,
            )

    def _optimizer(self, start: int, stop: int, lr: float) -> Optimizer:
        cfg = self.config
        return Optimizer(cfg.optimizer, start, stop, lr, momentum=cfg.momentum, betas=tuple(cfg.adam_betas),
                         eps=cfg.adam_eps, max_grad_norm=cfg.max_grad_norm, dtype=self.dtype)

    # ------------------------------------------------------------------ environments
    @property
    def envs(self) -> list:
        """The training environments, made on first use (a loaded agent needs none to act)."""
        if self._envs is None:
            if self.env_spec is None:
                raise EnvironmentError(
                    "this agent has no environment to train on: pass one, e.g. PPO.load(path, env='Pendulum-v1')"
                )
            self._envs = [make_env(self.env_spec)]
        if not isinstance(self.env_spec, (str,)) and not callable(self.env_spec):
            return self._envs  # a single instance cannot be copied
        while len(self._envs) < self.config.num_envs:
            env = make_env(self.env_spec)
            spaces = check_spaces(env)
            if spaces[:2] != (self.obs_dim, self.action_dim):
                raise EnvironmentError(
                    f"environment {self.env_id!r} has obs/action sizes {spaces[:2]}, but this agent was made "
                    f"for {(self.obs_dim, self.action_dim)}"
                )
            self._envs.append(env)
        return self._envs

    @property
    def collector(self) -> Collector:
        if self._collector is None:
            self._collector = Collector(self.envs, self.action_low, self.action_high, self.seed)
            self._collector.episodes_started = self._episodes_started
        return self._collector

    # ------------------------------------------------------------------ acting
    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the networks see them: normalised if configured, in the training dtype."""
        if self.obs_rms is not None:
            obs = self.obs_rms.normalize(obs)
        return np.ascontiguousarray(obs, dtype=self.dtype)

    def _rollout_policy(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = self.normalize_obs(obs)
        if obs.shape[0] > ROWS_FORWARD_MAX:
            return self.policy.forward(obs)
        return self.policy.distribution_rows(obs)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for ``obs`` (obs_dim,) or a batch (k, obs_dim), clipped to the action space.

        Deterministic: the mean mu(s). Otherwise a sample from N(mu, sigma^2) (the agent's own RNG).
        """
        obs = np.asarray(obs, dtype=np.float64)
        single = obs.ndim == 1
        obs = obs.reshape(-1, self.obs_dim)
        # one compiled call (normalise, forward, sample, clip): NumPy's per-call overheads would
        # cost more than the network at batch 1 (docs/performance.md)
        noise = self._no_noise if deterministic else self._act_rng.standard_normal((obs.shape[0], self.action_dim))
        actions = self.policy.act_rows(obs, self._obs_stats(), self.config.obs_clip, noise, self._action_bounds)
        return actions[0] if single else actions

    def _obs_stats(self) -> np.ndarray:
        """(mean, sqrt(var + 1e-8)) of the observation normalisation as one (2, obs_dim) array, or an
        empty (0, obs_dim) one without normalisation; rebuilt only when the statistics change."""
        if self.obs_rms is None:
            return self._no_obs_stats
        mean, var, count = self.obs_rms.mean, self.obs_rms.var, self.obs_rms.count
        cached = self._obs_stats_cache
        if cached is None or cached[0] is not mean or cached[1] is not var or cached[2] != count:
            cached = self._obs_stats_cache = (mean, var, count, np.stack([mean, np.sqrt(var + 1e-8)]))
        return cached[3]

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) for raw observations (k, obs_dim) -> (k,)."""
        obs = self.normalize_obs(np.atleast_2d(obs))
        if obs.shape[0] > ROWS_FORWARD_MAX:
            return self.critic.value(obs)
        # row by row the sums run in another order than a batched product's: the last bit may differ
        if self._critic_layout is None:
            self._critic_layout = (self.critic.mlp.layout(), self.critic.mlp.alphas())
        values = np.empty((obs.shape[0], 1), self.dtype)
        forward_rows(self.critic.params, *self._critic_layout, obs, values)
        return values[:, 0]

    # ------------------------------------------------------------------ training
    def learn(self, total_steps: int, callback: Callback | None = None) -> list[dict[str, Any]]:
        """Train until ``total_steps`` env steps in all (counted from the agent's creation, across save
        and load); returns this call's per-iteration metrics. ``callback(agent, metrics)`` runs after
        each iteration and may return False to stop early.
        """
        if not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        history = []
        while self.num_timesteps < total_steps:
            metrics = self.train_iteration(total_steps)
            history.append(metrics)
            if callback is not None and callback(self, metrics) is False:
                break
        return history

    def schedule(self, total_steps: int, batch_steps: int) -> tuple[float, float]:
        """(entropy coefficient, learning-rate scale) for the iteration whose batch has ``batch_steps`` steps.

        The entropy coefficient runs linearly from ``ent_coef_start`` at the first iteration to
        ``ent_coef_end`` at the last: with p = (steps before this iteration) / (total_steps -
        batch_steps), clipped to [0, 1], c = start + (end - start) p. It is computed once the batch
        is collected, so it is exact also when episode lengths vary. The learning rate falls
        linearly with the steps done before this iteration.
        """
        cfg = self.config
        last_start = total_steps - batch_steps
        progress = min(max(self.num_timesteps / last_start, 0.0), 1.0) if last_start > 0 else 1.0
        ent_coef = cfg.ent_coef_start + (cfg.ent_coef_end - cfg.ent_coef_start) * progress
        lr_scale = 1.0 if cfg.lr_schedule == "constant" else max(1.0 - self.num_timesteps / total_steps, 0.0)
        return ent_coef, lr_scale

    def train_iteration(self, total_steps: int) -> dict[str, Any]:
        """One iteration: collect a batch with π_θold, then update on it (:meth:`update`)."""
        start = time.perf_counter()
        batch = self.collect()
        return self.update(batch, total_steps, rollout_s=time.perf_counter() - start)

    def collect(self) -> Batch:
        """Step 1: run π_θold for one batch (whole episodes or a fixed number of steps)."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, self.iteration, 1])
        return self.collector.collect(self._rollout_policy, self.iteration, rng,
                                      cfg.episodes_per_batch, cfg.steps_per_batch)

    def update(self, batch: Batch, total_steps: int, rollout_s: float = 0.0) -> dict[str, Any]:
        """Steps 2-6 on a collected batch: targets and advantages with V_φold, k1 actor passes, k2
        critic passes, then the counters move on (θold ← θ, φold ← φ). Returns the iteration's metrics."""
        cfg = self.config
        start = time.perf_counter()
        ent_coef, lr_scale = self.schedule(total_steps, batch.steps)
        shuffle_rng = np.random.default_rng([self.seed, self.iteration, 2])

        # 2-3. targets and advantages with V_φold
        obs = self.normalize_obs(batch.obs)
        values, returns, advantages = self.targets_and_advantages(batch, obs)
        actions = batch.actions.astype(self.dtype)
        old_log_prob = batch.log_prob.astype(self.dtype)
        advantages = advantages.astype(self.dtype)
        targets = returns.astype(self.dtype)
        old_values = values.astype(self.dtype)

        # 4. actor: k1 passes of the clipped surrogate
        actor_stats = []
        for _ in range(cfg.actor_epochs):
            for idx in self._minibatches(batch.steps, shuffle_rng):
                info = actor_loss_terms(self.policy, _take(obs, idx), _take(actions, idx),
                                        _take(old_log_prob, idx), _take(advantages, idx), cfg.clip_eps, ent_coef)
                norms = self._step(("mu", "sigma"), self.policy, info.loss, lr_scale)
                actor_stats.append((info, norms))
            if cfg.target_kl is not None and actor_stats[-1][0].approx_kl > cfg.target_kl:
                break

        # 5. critic: k2 passes of the squared error
        critic_stats = []
        for _ in range(cfg.critic_epochs):
            for idx in self._minibatches(batch.steps, shuffle_rng):
                loss = critic_loss_terms(self.critic, _take(obs, idx), _take(targets, idx),
                                         _take(old_values, idx), cfg.value_clip)
                critic_stats.append((loss, self._step(("critic",), self.critic, loss, lr_scale)))

        # 6. θold ← θ, φold ← φ: the next rollout and targets use the networks as they are now
        if self.obs_rms is not None:
            self.obs_rms.update(batch.obs)
        self.iteration += 1
        self.num_timesteps += batch.steps
        self.last_batch_steps = batch.steps
        metrics = self._metrics(batch, values, returns, actor_stats, critic_stats, ent_coef, lr_scale,
                                rollout_s, rollout_s + time.perf_counter() - start)
        self.history.append(metrics)
        return metrics

    def targets_and_advantages(self, batch: Batch, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(V_φold(s_t), critic targets G_t, advantages Â_t), each (T,) float64; Â normalised if configured."""
        cfg = self.config
        values = self.critic.forward(obs).astype(np.float64)
        end_values = np.zeros(batch.steps)
        bootstrap = ~batch.end_terminated
        if np.any(bootstrap):
            end_obs = self.normalize_obs(batch.end_obs[bootstrap])
            end_values[batch.end_steps[bootstrap]] = self.critic.forward(end_obs)
        rewards = batch.rewards * cfg.reward_scale
        if cfg.advantage == "n_step":
            returns = n_step_returns(rewards, values, batch.episode_ends, end_values, cfg.gamma, cfg.n_step)
            advantages = returns - values
        else:
            advantages = gae_advantages(rewards, values, batch.episode_ends, end_values, cfg.gamma, cfg.gae_lambda)
            returns = advantages + values
        if cfg.normalize_advantages:
            advantages = normalize(advantages)
        return values, returns, advantages

    def _minibatches(self, n: int, rng: np.random.Generator):
        """Index arrays of shuffled minibatches, or a single ``None`` for the full batch."""
        size = self.config.batch_size
        if size is None or size >= n:
            yield None
            return
        order = rng.permutation(n)
        for begin in range(0, n, size):
            yield order[begin : begin + size]

    def _step(self, groups: tuple[str, ...], model, loss: float, lr_scale: float) -> list[float]:
        """Check the loss and gradients are finite, then step each optimizer; returns the grad norms."""
        norms = [l2_norm(model.grad[self.optimizers[g].start : self.optimizers[g].stop]) for g in groups]
        if not math.isfinite(loss) or not all(map(math.isfinite, norms)):
            raise TrainingError(
                f"iteration {self.iteration}: the {'actor' if 'mu' in groups else 'critic'} loss ({loss}) or its "
                f"gradient norms {dict(zip(groups, norms, strict=True))} became non-finite; lower the learning rate or "
                "enable gradient-norm scaling (max_grad_norm); the last saved checkpoint is unchanged"
            )
        for group in groups:
            self.optimizers[group].step(model.params, model.grad, lr_scale)
        return norms

    def _metrics(self, batch: Batch, values, returns, actor_stats, critic_stats, ent_coef, lr_scale,
                 rollout_s, iteration_s) -> dict[str, Any]:
        last_epoch = actor_stats[-max(1, len(actor_stats) // max(1, self.config.actor_epochs)):]
        returns_var = float(np.var(returns))
        episodes = batch.episode_returns
        return {
            "iteration": self.iteration,
            "steps": self.num_timesteps,
            "batch_steps": batch.steps,
            "episodes": int(episodes.size),
            "return_mean": float(episodes.mean()) if episodes.size else math.nan,
            "return_std": float(episodes.std()) if episodes.size else math.nan,
            "return_min": float(episodes.min()) if episodes.size else math.nan,
            "return_max": float(episodes.max()) if episodes.size else math.nan,
            "length_mean": float(batch.episode_lengths.mean()) if episodes.size else math.nan,
            "actor_loss": float(np.mean([info.loss for info, _ in last_epoch])),
            "critic_loss": float(np.mean([loss for loss, _ in critic_stats[-len(last_epoch):]])),
            "entropy": float(np.mean([info.entropy for info, _ in last_epoch])),
            "approx_kl": float(np.mean([info.approx_kl for info, _ in last_epoch])),
            "clip_fraction": float(np.mean([info.clip_fraction for info, _ in last_epoch])),
            "sigma_mean": float(np.mean([info.sigma_mean for info, _ in last_epoch])),
            "explained_variance": 1.0 - float(np.var(returns - values)) / returns_var if returns_var > 0 else math.nan,
            "grad_norm_mu": float(np.mean([norms[0] for _, norms in actor_stats])),
            "grad_norm_sigma": float(np.mean([norms[1] for _, norms in actor_stats])),
            "grad_norm_critic": float(np.mean([norms[0] for _, norms in critic_stats])),
            "actor_updates": len(actor_stats),
            "ent_coef": ent_coef,
            "lr_scale": lr_scale,
            "rollout_s": rollout_s,
            "update_s": iteration_s - rollout_s,
            "steps_per_s": batch.steps / iteration_s,
        }

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, episodes: int = 10, env: EnvSpec | None = None, seed: int = 10_000,
                 deterministic: bool = True) -> tuple[float, float]:
        """(mean, std) of the undiscounted return over ``episodes`` episodes of the deterministic policy."""
        eval_env = make_env(env if env is not None else self.env_spec)
        totals = []
        for k in range(episodes):
            obs, _ = eval_env.reset(seed=seed + k)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = eval_env.step(self.act(obs, deterministic))
                total += float(reward)
                done = terminated or truncated
            totals.append(total)
        return float(np.mean(totals)), float(np.std(totals))

    # ------------------------------------------------------------------ state
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every array of the agent's training state, by name (what a checkpoint stores)."""
        arrays = {"policy.params": self.policy.params.copy(), "critic.params": self.critic.params.copy(),
                  "action_low": self.action_low, "action_high": self.action_high}
        for group, optimizer in self.optimizers.items():
            for key, value in optimizer.state().items():
                arrays[f"optim.{group}.{key}"] = value
        if self.obs_rms is not None:
            arrays.update({"obs_rms.mean": self.obs_rms.mean, "obs_rms.var": self.obs_rms.var,
                           "obs_rms.count": np.array(self.obs_rms.count)})
        return arrays

    def state_meta(self) -> dict[str, Any]:
        """The JSON-able part of the training state."""
        return {
            "config": self.config.to_dict(), "seed": self.seed, "env_id": self.env_id,
            "obs_dim": self.obs_dim, "action_dim": self.action_dim, "iteration": self.iteration,
            "num_timesteps": self.num_timesteps, "last_batch_steps": self.last_batch_steps,
            "episodes_started": self._collector.episodes_started if self._collector else 0,
            "act_rng": self._act_rng.bit_generator.state,
        }

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state_arrays` and :meth:`state_meta` gave (same config and sizes)."""
        self.policy.set_params(arrays["policy.params"])
        self.critic.set_params(arrays["critic.params"])
        for group, optimizer in self.optimizers.items():
            prefix = f"optim.{group}."
            optimizer.load_state({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        if self.obs_rms is not None:
            self.obs_rms.mean = np.array(arrays["obs_rms.mean"], np.float64)
            self.obs_rms.var = np.array(arrays["obs_rms.var"], np.float64)
            self.obs_rms.count = float(arrays["obs_rms.count"])
        self.iteration = int(meta["iteration"])
        self.num_timesteps = int(meta["num_timesteps"])
        self.last_batch_steps = int(meta["last_batch_steps"])
        self._act_rng.bit_generator.state = meta["act_rng"]
        self._episodes_started = int(meta.get("episodes_started", 0))
        self._collector = None

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (one .npz, written atomically); see :mod:`npppo.checkpoint`."""
        from npppo.checkpoint import save_checkpoint

        return save_checkpoint(self, path)

    @classmethod
    def load(cls, path: str | Path, env: EnvSpec | None = None) -> PPO:
        """An agent from a checkpoint; ``env`` is needed only to train or evaluate further."""
        from npppo.checkpoint import load_checkpoint

        return load_checkpoint(path, env)


def _take(array: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    return array if idx is None else array[idx]
