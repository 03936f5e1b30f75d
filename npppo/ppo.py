"""PPO: the agent, and one iteration of the seed's algorithm from rollout to θold ← θ.

    for each iteration:
        1. run π_θold for a batch of episodes (or steps)                       collect()
        2. critic targets G_t (n-step returns or GAE λ-returns) with V_φold      targets_and_advantages()
        3. advantages Â_t = G_t - V_φold(s_t), normalised over the batch
        4. k1 passes of the clipped-surrogate actor loss (mu and sigma optimizers)
        5. k2 passes of the squared-error critic loss (critic optimizer)
        6. θold ← θ, φold ← φ   (implicit: the next rollout uses the updated networks)

The entropy coefficient falls linearly from ``ent_coef_start`` at the first iteration of the run to
``ent_coef_end`` at its last; a linear learning-rate schedule falls towards 0 over the run's steps.
Saving and loading live in :mod:`npppo.checkpoint`, evaluation in :mod:`npppo.evaluation`.
"""

from __future__ import annotations

import copy
import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npppo import checkpoint, streams
from npppo.backends import MAX_WORKER_FAILURES, RAY_CONNECT_TIMEOUT_S
from npppo.backends.rollout import Rollout
from npppo.config import PPOConfig, positive_int
from npppo.critic import Critic
from npppo.envs import EnvSpec, Spaces, check_spaces, check_squash_bounds, make_env
from npppo.envs.make import EPISODE_STEP_LIMIT
from npppo.errors import CheckpointError
from npppo.evaluation import EVAL_EPISODES, evaluate
from npppo.losses import ActorLossInfo
from npppo.normalization import RewardNormalizer, RunningMeanStd
from npppo.passes import Actor, ActorData, BlockTwins, CriticData, actor_passes, alternating_passes, make_optimizer
from npppo.policy import GaussianPolicy
from npppo.returns import gae_advantages, n_step_returns, normalize_advantages
from npppo.sampler import Batch
from npppo.threads import apply_default_threads
from npppo.warmup import compile_update_kernels

Callback = Callable[["PPO", dict[str, Any]], bool | None]


class PPO:
    """Proximal Policy Optimization with a diagonal Gaussian policy, on a Gymnasium environment.

    ``env`` is a Gymnasium id, a ``gymnasium.Env`` (then only that one environment is stepped), or a
    callable returning a new environment (called ``config.num_envs`` times).

    ``workers`` and ``backend`` are run options, not learning settings: the same seed and config
    give bit-identical results with any worker count. ``workers=1`` steps the environments in this
    process; ``workers=N`` (or ``"auto"``: the usable cores, at most the number of environments)
    starts N worker processes at the first :meth:`learn`, each owning a slice of the environments,
    which stay until :meth:`close` (or the end of a ``with PPO(...) as agent:`` block, or of the
    interpreter). Worker processes need the environment as an id or a module-level function (it is
    sent to them) and, in a script, the ``if __name__ == "__main__":`` guard. A worker that dies or
    whose environment raises is replaced; after ``max_worker_failures`` failures in a row the run
    stops (:class:`npppo.errors.WorkerError`).

    ``episode_step_limit`` (a run option too, default 100,000) bounds the episodes that whole-episode
    batches and evaluations wait for: one that runs that many steps without terminating or
    truncating raises :class:`npppo.errors.EnvError` (an environment whose episodes never end would
    otherwise hang the run). It is not ``max_episode_steps``, which ends episodes (a ``TimeLimit``).
    """

    def __init__(self, env: EnvSpec, config: PPOConfig | None = None, seed: int = 0, *,
                 workers: int | str = 1, backend: str = "local", max_worker_failures: int = MAX_WORKER_FAILURES,
                 ray_address: str | None = None, ray_connect_timeout: float = RAY_CONNECT_TIMEOUT_S,
                 episode_step_limit: int = EPISODE_STEP_LIMIT) -> None:
        first = make_env(env)
        self._setup(check_spaces(first), config, seed, env, first)
        self.set_workers(workers, backend, max_worker_failures, ray_address, ray_connect_timeout)
        self.episode_step_limit = episode_step_limit

    @classmethod
    def from_spaces(cls, spaces: Spaces | tuple, config: PPOConfig | None = None, seed: int = 0,
                    env: EnvSpec | None = None) -> PPO:
        """An agent for these spaces without making an environment (acting needs none; ``env`` is
        made when training or evaluation first needs it). ``spaces``: a :class:`npppo.envs.Spaces`, or
        the tuple (obs_dim, action_dim, action_low, action_high)."""
        agent = cls.__new__(cls)
        agent._setup(Spaces.of(spaces), config, seed, env)
        return agent

    def _setup(self, spaces: Spaces, config: PPOConfig | None, seed: int, env: EnvSpec | None, first_env=None
               ) -> None:
        self.config = cfg = config if config is not None else PPOConfig()
        cfg.validate()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.spaces = spaces
        self.obs_dim, self.action_dim = spaces.obs_dim, spaces.action_dim
        self.action_low, self.action_high = spaces.action_low, spaces.action_high
        self.dtype = np.dtype(cfg.dtype)
        init_rng = streams.generator(streams.INIT, self.seed)
        self.policy = GaussianPolicy(self.obs_dim, self.action_dim, cfg, init_rng)
        self.critic = Critic(self.obs_dim, cfg, init_rng)
        self.optimizers = {
            "mu": make_optimizer(cfg, *self.policy.mu_range, cfg.mu_lr, self.dtype),
            "sigma": make_optimizer(cfg, *self.policy.sigma_range, cfg.sigma_lr, self.dtype),
            "critic": make_optimizer(cfg, 0, self.critic.params.shape[0], cfg.critic_lr, self.dtype),
        }
        self.obs_rms = RunningMeanStd((self.obs_dim,), cfg.obs_clip) if cfg.normalize_obs else None
        self.reward_normalizer = RewardNormalizer(cfg.gamma, cfg.reward_clip) if cfg.normalize_rewards else None
        self.iteration = 0
        self.num_timesteps = 0
        self.history: list[dict[str, Any]] = []
        self.loaded_model: str | None = None  # the model file (no training state) this agent was loaded from
        self.act_rng = streams.generator(streams.ACT, self.seed)
        self.rollout = Rollout(env, spaces, cfg, self.seed, self.policy, first_env,
                               warm_up=functools.partial(compile_update_kernels, self))
        self._action_bounds = np.stack([self.action_low, self.action_high]).astype(np.float64)
        self._squash_bounds = self._action_bounds if self.policy.squashed else None
        if self._squash_bounds is not None:
            check_squash_bounds(self.action_low, self.action_high, self.env_id)
        self._actor = Actor(BlockTwins(self.policy), {g: self.optimizers[g] for g in ("mu", "sigma")},
                            self._squash_bounds)
        self._critic_twins = BlockTwins(self.critic)
        if cfg.mu_activation == "relu" and np.any(self.action_low < 0):
            warnings.warn(
                f"the mu head ends in ReLU (the seed's design), so the policy mean cannot go below 0, but "
                f"the action space's lower bound is {self.action_low.tolist()}: negative actions come only "
                "from noise. Use mu_activation='identity' or a tuned preset (presets.get('pendulum')).",
                stacklevel=3,
            )

    # ------------------------------------------------------------------ the rollout's environments and workers
    @property
    def envs(self) -> list:
        """The training environments, made on first use (a loaded agent needs none to act)."""
        return self.rollout.envs

    @property
    def num_envs(self) -> int:
        """How many environments the run steps: ``config.num_envs``, or 1 for an instance (not copyable)."""
        return self.rollout.num_envs

    env_spec = property(lambda self: self.rollout.env_spec, doc="The environment as given (id, instance or factory).")
    workers = property(lambda self: self.rollout.workers, doc="How many processes step the environments.")
    backend = property(lambda self: self.rollout.backend, doc='"local" or "ray".')
    ray_address = property(lambda self: self.rollout.ray_address, doc="The Ray cluster joined, or None.")

    @property
    def env_id(self) -> str | None:
        """The environment's name (kept in checkpoints, also when the environment itself cannot be)."""
        return self.rollout.env_id

    @env_id.setter
    def env_id(self, name: str | None) -> None:
        self.rollout.env_id = name

    @property
    def episodes_started(self) -> list[int]:
        """Fixed-step batches: episodes begun per environment (their resets are seeded by it)."""
        return self.rollout.episodes_started.tolist()

    def set_workers(self, workers: int | str = 1, backend: str = "local",
                    max_worker_failures: int = MAX_WORKER_FAILURES, ray_address: str | None = None,
                    ray_connect_timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
        """Choose where the rollout runs (see the class docstring); stops workers already running.
        ``ray_address`` (Ray backend) joins that cluster, given up after ``ray_connect_timeout`` seconds;
        without it a local Ray is started."""
        self.rollout.set_workers(workers, backend, max_worker_failures, ray_address, ray_connect_timeout)

    @property
    def episode_step_limit(self) -> int:
        """The longest episode a whole-episode batch or an evaluation waits for (see the class docstring)."""
        return self.rollout.episode_step_limit

    @episode_step_limit.setter
    def episode_step_limit(self, limit: int) -> None:
        self.rollout.episode_step_limit = limit

    def close(self) -> None:
        """Stop the rollout workers and the update's threads (they start again at the next :meth:`learn`)."""
        self.rollout.close()

    def __enter__(self) -> PPO:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ acting
    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the networks see them: normalised if configured, in the training dtype."""
        if self.obs_rms is not None:
            obs = self.obs_rms.normalize(obs)
        return np.ascontiguousarray(obs, dtype=self.dtype)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for ``obs`` (obs_dim,) or a batch (k, obs_dim), clipped to the action space.

        Deterministic: the mean mu(s). Otherwise a sample from N(mu, sigma^2) (the agent's own RNG).
        """
        obs = self._check_obs(obs)
        single = obs.ndim == 1
        obs = obs.reshape(-1, self.obs_dim)
        noise = (np.zeros((0, self.action_dim)) if deterministic
                 else self.act_rng.standard_normal((obs.shape[0], self.action_dim)))
        stats = self.obs_rms.shift_scale() if self.obs_rms is not None else np.zeros((0, self.obs_dim))
        # one compiled call (normalise, forward, sample, clip): NumPy's per-call overheads would
        # cost more than the network at batch 1 (docs/performance.md)
        actions = self.policy.act_rows(obs, stats, self.config.obs_clip, noise, self._action_bounds)
        return actions[0] if single else actions

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) for raw observations (k, obs_dim) -> (k,)."""
        return self.critic.value(self.normalize_obs(np.atleast_2d(self._check_obs(obs))))

    def _check_obs(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape[-1:] != (self.obs_dim,) or obs.ndim > 2:
            raise ValueError(f"expected an observation of shape ({self.obs_dim},) or a batch (k, {self.obs_dim}), "
                             f"got shape {obs.shape}")
        if not np.isfinite(obs).all():
            where = np.argwhere(~np.isfinite(obs)).tolist()[:4]
            raise ValueError(f"the observation holds NaN or infinite values (at index {', '.join(map(str, where))}); "
                             "the action of a non-finite observation would be NaN")
        return obs

    def evaluate(self, episodes: int = EVAL_EPISODES, env: EnvSpec | None = None, seed: int = 10_000,
                 deterministic: bool = True, frames=None) -> tuple[float, float]:
        """(mean, std) of the undiscounted return over ``episodes`` episodes (:func:`npppo.evaluation.evaluate`;
        ``frames`` collects the rendered frames of an env made with ``render_mode="rgb_array"``); an episode
        that runs ``episode_step_limit`` steps without ending raises EnvError."""
        positive_int(episodes, "episodes", ValueError)
        eval_env = self.rollout.make_env(env)
        return evaluate(lambda obs: self.act(obs, deterministic), eval_env, episodes, seed, frames,
                        self.episode_step_limit)

    # ------------------------------------------------------------------ training
    def learn(self, total_steps: int, callback: Callback | None = None, progress: bool = False) -> list[dict]:
        """Train until ``total_steps`` env steps in all (counted from the agent's creation, across save
        and load); returns this call's per-iteration metrics. ``callback(agent, metrics)`` runs after
        each iteration and may return False to stop early; ``progress=True`` prints the command
        line's progress line.

        Unless ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` or :func:`npppo.threads.set_num_threads`
        chose otherwise, BLAS gets one thread (see :func:`npppo.threads.apply_default_threads`).
        """
        total_steps = whole_steps(total_steps)
        if self.loaded_model is not None:
            raise CheckpointError(
                f"this agent was loaded from {self.loaded_model}, a model file (the policy and critic, for acting), "
                "which holds no optimizer or random-generator state: to train further, load the run's "
                "checkpoint.npz (PPO.load('RUN/checkpoint.npz'))")
        if self.num_timesteps >= total_steps:
            warnings.warn(f"learn({total_steps:,}) has nothing to do: the agent has done {self.num_timesteps:,} env "
                          f"steps already, and total_steps counts from its creation (across save and load); "
                          f"pass a larger total to train on, e.g. learn({self.num_timesteps + total_steps:,})",
                          stacklevel=2)
            return []
        apply_default_threads()
        line = None
        if progress:
            from npppo.progress import ProgressLine

            line = ProgressLine(total_steps, self.num_timesteps)
        history = []
        try:
            while self.num_timesteps < total_steps:
                metrics = self.train_iteration(total_steps)
                history.append(metrics)
                if line is not None:
                    line.update(metrics)
                if callback is not None and callback(self, metrics) is False:
                    break
        finally:
            if line is not None:
                line.close()
        return history

    def train_iteration(self, total_steps: int, batch: Batch | None = None) -> dict[str, Any]:
        """One iteration: collect a batch with π_θold (or take ``batch``), update on it with this
        iteration's schedule, and return the iteration's metrics (also kept in ``history``)."""
        start, given = time.perf_counter(), batch is not None
        batch = batch if given else self.collect()
        rollout_s = 0.0 if given else time.perf_counter() - start
        ent_coef, lr_scale = self.schedule(total_steps, batch.steps)
        update = self.update(batch, ent_coef, lr_scale)
        metrics = iteration_metrics(self, batch, update, ent_coef, lr_scale, rollout_s,
                                    time.perf_counter() - start)
        self.history.append(metrics)
        return metrics

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

    def collect(self) -> Batch:
        """Step 1: run π_θold for one batch (whole episodes or a fixed number of steps), in this process
        or on the workers (:class:`npppo.backends.rollout.Rollout`)."""
        obs_stats = (self.obs_rms.mean, self.obs_rms.var) if self.obs_rms is not None else None
        return self.rollout.collect(self.iteration, self.policy.params, obs_stats)

    def update(self, batch: Batch, ent_coef: float, lr_scale: float) -> Update:
        """Steps 2-6 on a collected batch: targets and advantages with V_φold, k1 actor passes, k2
        critic passes (:mod:`npppo.passes`), then the counters move on (θold ← θ, φold ← φ)."""
        cfg = self.config
        # 2-3. targets and advantages with V_φold, from rewards scaled by the running std of the discounted
        # return when configured (its statistics updated with this batch first: npppo.normalization)
        obs = self.normalize_obs(batch.obs)
        rewards = (self.reward_normalizer(batch.rewards, batch.episode_ends) if self.reward_normalizer is not None
                   else batch.rewards)
        values, returns, advantages = self.targets_and_advantages(batch, obs, rewards)
        # the stored actions and their log π_θold stay float64: with a small σ, rounding the action to
        # float32 moves the log-density by far more than a step does (docs/math.md, float32 and small σ)
        actor_data = ActorData(obs, batch.actions, batch.log_prob, advantages.astype(self.dtype))
        critic_data = CriticData(obs, returns.astype(self.dtype), values.astype(self.dtype))

        # 4-5. k1 actor passes of the clipped surrogate, k2 critic passes of the squared error: side by
        # side where the run's passes allow it, alternating epoch by epoch with recompute_advantages
        passes, critic_optimizer = self.rollout.update_passes(), self.optimizers["critic"]
        try:
            if cfg.recompute_advantages:
                actor_epoch, actor_norms, critic_epoch, critic_norms = alternating_passes(
                    self._actor, self._critic_twins, critic_optimizer, cfg, actor_data, critic_data,
                    functools.partial(self._targets_now, batch, obs, rewards), ent_coef, lr_scale, self.seed,
                    self.iteration, passes.map_blocks)
            else:
                passes.start_critic(self._critic_twins, critic_optimizer, critic_data, lr_scale, self.seed,
                                    self.iteration)
                actor_epoch, actor_norms = actor_passes(self._actor, cfg, actor_data, ent_coef, lr_scale, self.seed,
                                                        self.iteration, passes.map_blocks)
                critic_epoch, critic_norms = passes.finish_critic()
        except BaseException:
            self.rollout.abandon_update()
            raise

        # 6. θold ← θ, φold ← φ: the next rollout and targets use the networks as they are now
        if self.obs_rms is not None:
            self.obs_rms.update(batch.obs)
        self.iteration += 1
        self.num_timesteps += batch.steps
        return Update(values, returns, actor_epoch, actor_norms, critic_epoch, critic_norms)

    def _targets_now(self, batch: Batch, obs: np.ndarray, rewards: np.ndarray) -> tuple[np.ndarray, ...]:
        """(Â, G, V) with the critic as it is now, in the training dtype (recompute_advantages)."""
        values, returns, advantages = self.targets_and_advantages(batch, obs, rewards)
        return tuple(x.astype(self.dtype) for x in (advantages, returns, values))

    def targets_and_advantages(self, batch: Batch, obs: np.ndarray, rewards: np.ndarray | None = None
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(V_φold(s_t), critic targets G_t, advantages Â_t), each (T,) float64; Â normalised if configured.
        ``rewards`` (T,): the batch's rewards as the targets see them (default: ``batch.rewards``)."""
        cfg = self.config
        values = self.critic.forward(obs).astype(np.float64)
        end_values = np.zeros(batch.steps)
        bootstrap = ~batch.end_terminated
        if np.any(bootstrap):
            end_obs = self.normalize_obs(batch.end_obs[bootstrap])
            end_values[batch.end_steps[bootstrap]] = self.critic.forward(end_obs)
        rewards = (batch.rewards if rewards is None else rewards) * cfg.reward_scale
        if cfg.advantage == "n_step":
            returns = n_step_returns(rewards, values, batch.episode_ends, end_values, cfg.gamma, cfg.n_step)
            advantages = returns - values
        else:
            advantages = gae_advantages(rewards, values, batch.episode_ends, end_values, cfg.gamma, cfg.gae_lambda)
            returns = advantages + values
        if cfg.normalize_advantages:
            advantages = normalize_advantages(advantages)
        return values, returns, advantages

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything training goes on from, as independent copies: both networks' parameters, each
        optimizer's state, the observation and return statistics (None where not configured), the
        counters, the acting RNG's state and the rollout's (:mod:`npppo.checkpoint` writes it)."""
        return {
            "policy": self.policy.params.copy(), "critic": self.critic.params.copy(),
            "optimizers": {group: optimizer.state() for group, optimizer in self.optimizers.items()},
            "obs_rms": self.obs_rms.state() if self.obs_rms is not None else None,
            "return_rms": self.reward_normalizer.state() if self.reward_normalizer is not None else None,
            "iteration": self.iteration, "num_timesteps": self.num_timesteps,
            "act_rng": copy.deepcopy(self.act_rng.bit_generator.state), "rollout": self.rollout.state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Set what :meth:`state` returned. A model file's state (for acting) holds only the networks,
        the observation statistics and the counters: the rest is then left as it is."""
        self.policy.set_params(state["policy"])
        self.critic.set_params(state["critic"])
        if self.obs_rms is not None:
            self.obs_rms.load_state(state["obs_rms"])
        self.iteration, self.num_timesteps = int(state["iteration"]), int(state["num_timesteps"])
        for group, optimizer_state in state.get("optimizers", {}).items():
            self.optimizers[group].load_state(optimizer_state)
        if self.reward_normalizer is not None and "return_rms" in state:
            self.reward_normalizer.load_state(state["return_rms"])
        if "act_rng" in state:
            self.act_rng.bit_generator.state = state["act_rng"]
        if "rollout" in state:
            self.rollout.load_state(state["rollout"])

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (one .npz, written atomically); see :mod:`npppo.checkpoint`."""
        return checkpoint.save(self, path)

    @classmethod
    def load(cls, path: str | Path, env: EnvSpec | None = None) -> PPO:
        """An agent from a checkpoint; ``env`` is needed only to train or evaluate further."""
        return checkpoint.load(cls, path, env)


@dataclass
class Update:
    """What an update computed: V_φold and the targets G (T,) float64, and of each network its last
    epoch's diagnostics (the actor's loss infos, the critic's losses) and every step's gradient norms."""

    values: np.ndarray
    returns: np.ndarray
    actor_epoch: list[ActorLossInfo]
    actor_norms: list[list[float]]
    critic_epoch: list[float]
    critic_norms: list[list[float]]


def iteration_metrics(agent: PPO, batch: Batch, update: Update, ent_coef: float, lr_scale: float,
                      rollout_s: float, iteration_s: float) -> dict[str, Any]:
    """The metrics of the iteration that collected ``batch`` and made ``update`` (docs/config.md lists them)."""
    episodes, actor_epoch, actor_norms = batch.episode_returns, update.actor_epoch, update.actor_norms
    returns_var = float(np.var(update.returns))
    return {
        "iteration": agent.iteration,
        "steps": agent.num_timesteps,
        "batch_steps": batch.steps,
        "episodes": int(episodes.size),
        "return_mean": float(episodes.mean()) if episodes.size else math.nan,
        "return_std": float(episodes.std()) if episodes.size else math.nan,
        "return_min": float(episodes.min()) if episodes.size else math.nan,
        "return_max": float(episodes.max()) if episodes.size else math.nan,
        "length_mean": float(batch.episode_lengths.mean()) if episodes.size else math.nan,
        # the losses and diagnostics of each network's last epoch
        "actor_loss": float(np.mean([info.loss for info in actor_epoch])),
        "critic_loss": float(np.mean(update.critic_epoch)),
        "entropy": float(np.mean([info.entropy for info in actor_epoch])),
        "approx_kl": float(np.mean([info.approx_kl for info in actor_epoch])),
        "clip_fraction": float(np.mean([info.clip_fraction for info in actor_epoch])),
        "sigma_mean": float(np.mean([info.sigma_mean for info in actor_epoch])),
        "explained_variance": (1.0 - float(np.var(update.returns - update.values)) / returns_var if returns_var > 0
                               else math.nan),
        # gradient norms before clipping, over every step of the iteration
        "grad_norm_mu": float(np.mean([norms[0] for norms in actor_norms])) if actor_norms else math.nan,
        "grad_norm_sigma": float(np.mean([norms[1] for norms in actor_norms])) if actor_norms else math.nan,
        "grad_norm_critic": float(np.mean([norms[0] for norms in update.critic_norms])),
        "actor_updates": len(actor_norms),
        "ent_coef": ent_coef,
        "lr_scale": lr_scale,
        "rollout_s": rollout_s,
        "update_s": iteration_s - rollout_s,
        "steps_per_s": batch.steps / iteration_s,
    }


def whole_steps(total_steps) -> int:
    """``total_steps`` as an int: a positive integer, or a float that is a whole number (``1e5``)."""
    return positive_int(total_steps, "total_steps", ValueError, " (or a whole float such as 1e5)", whole_floats=True)
