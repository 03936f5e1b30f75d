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

import math
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from npppo import checkpoint, fused_update, streams
from npppo.backends import BACKENDS, RAY_CONNECT_TIMEOUT_S, InProcess, check_picklable, env_slices, usable_cores
from npppo.config import PPOConfig
from npppo.critic import Critic
from npppo.envs import EnvSpec, check_spaces, check_squash_bounds, env_name, make_env
from npppo.envs.make import EPISODE_STEP_LIMIT, check_episode_step_limit
from npppo.errors import CheckpointError, ConfigError, EnvError
from npppo.evaluation import evaluate
from npppo.losses import BLOCK_ROWS, actor_loss_blocks, critic_loss_blocks, reads_rollout_distribution
from npppo.normalization import RewardNormalizer, RunningMeanStd
from npppo.optim import Optimizer, l2_norm, nonfinite_error
from npppo.policy import GaussianPolicy
from npppo.returns import gae_advantages, n_step_returns, normalize_advantages
from npppo.sampler import Batch, Sampler
from npppo.threads import apply_default_threads

Callback = Callable[["PPO", dict[str, Any]], bool | None]
Spaces = tuple[int, int, np.ndarray, np.ndarray]  # obs_dim, action_dim, action_low, action_high


# with workers > 1, the update runs on two threads when its steps have at least this many rows; below,
# per-call overhead dominates and threads only contend for the GIL (the lunarlander preset's 64-row
# minibatches: 0.091 s an update serial against 0.122 s threaded; 256 rows: even; 1,024: 0.044 against 0.029)
THREADED_UPDATE_MIN_ROWS = 256


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
                 workers: int | str = 1, backend: str = "local", max_worker_failures: int = 3,
                 ray_address: str | None = None, ray_connect_timeout: float = RAY_CONNECT_TIMEOUT_S,
                 episode_step_limit: int = EPISODE_STEP_LIMIT) -> None:
        first = make_env(env)
        self._setup(check_spaces(first), config, seed, env)
        self.set_workers(workers, backend, max_worker_failures, ray_address, ray_connect_timeout)
        self.episode_step_limit = episode_step_limit
        self._envs = [first]

    @classmethod
    def from_spaces(cls, spaces: Spaces, config: PPOConfig | None = None, seed: int = 0,
                    env: EnvSpec | None = None) -> PPO:
        """An agent for these spaces without making an environment (acting needs none; ``env`` is
        made when training or evaluation first needs it)."""
        agent = cls.__new__(cls)
        agent._setup(spaces, config, seed, env)
        return agent

    def _setup(self, spaces: Spaces, config: PPOConfig | None, seed: int, env: EnvSpec | None) -> None:
        self.config = cfg = config if config is not None else PPOConfig()
        cfg.validate()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.env_spec, self.env_id = env, env_name(env) if env is not None else None
        self._envs: list | None = None
        self.obs_dim, self.action_dim, self.action_low, self.action_high = spaces
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
        self._action_bounds = np.stack([self.action_low, self.action_high]).astype(np.float64)
        self._squash_bounds = self._action_bounds if self.policy.squashed else None
        if self._squash_bounds is not None:
            check_squash_bounds(self.action_low, self.action_high, self.env_id)
        self._backend = None  # the rollout's backend, started at the first collect()
        self._twins: dict[str, list] = {"policy": [], "critic": []}  # each network and its twins for row blocks
        self.workers, self.backend, self.max_worker_failures, self.ray_address = 1, "local", 3, None
        self.ray_connect_timeout = RAY_CONNECT_TIMEOUT_S
        self._episode_step_limit = EPISODE_STEP_LIMIT
        self.episodes_started = [0] * self.num_envs  # fixed-step batches: episodes begun per environment
        if cfg.mu_activation == "relu" and np.any(self.action_low < 0):
            warnings.warn(
                f"the mu head ends in ReLU (the seed's design), so the policy mean cannot go below 0, but "
                f"the action space's lower bound is {self.action_low.tolist()}: negative actions come only "
                "from noise. Use mu_activation='identity' or a tuned preset (presets.get('pendulum')).",
                stacklevel=3,
            )

    # ------------------------------------------------------------------ environments
    @property
    def envs(self) -> list:
        """The training environments, made on first use (a loaded agent needs none to act)."""
        if self._envs is None:
            self._envs = [self._make_env()]
        if isinstance(self.env_spec, (str,)) or callable(self.env_spec):  # an instance cannot be copied
            while len(self._envs) < self.config.num_envs:
                self._envs.append(self._make_env())
        return self._envs

    def _make_env(self, spec: EnvSpec | None = None):
        """An environment from ``spec`` (default: the agent's own), checked to fit this agent's sizes."""
        spec = spec if spec is not None else self.env_spec
        if spec is None:
            raise EnvError(f"this agent has no environment to train or evaluate on (it was trained on "
                           f"{self.env_id!r}, which a checkpoint cannot rebuild): load it with PPO.load(path, "
                           "env=...), passing an id, a gymnasium.Env or a function returning one")
        env = make_env(spec)
        obs_dim, action_dim, _, _ = check_spaces(env)
        if (obs_dim, action_dim) != (self.obs_dim, self.action_dim):
            raise EnvError(
                f"this agent was made for observation shape ({self.obs_dim},) and action shape ({self.action_dim},), "
                f"but environment {env_name(spec)!r} has observation shape ({obs_dim},) and action shape "
                f"({action_dim},)"
            )
        return env

    @property
    def num_envs(self) -> int:
        """How many environments the run steps: ``config.num_envs``, or 1 for an instance (not copyable)."""
        return 1 if isinstance(self.env_spec, gym.Env) else self.config.num_envs

    def set_workers(self, workers: int | str = 1, backend: str = "local", max_worker_failures: int = 3,
                    ray_address: str | None = None, ray_connect_timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
        """Choose where the rollout runs (see the class docstring); stops workers already running.
        ``ray_address`` (Ray backend) joins that cluster, given up after ``ray_connect_timeout`` seconds;
        without it a local Ray is started."""
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}: choose one of {list(BACKENDS)}")
        if workers == "auto":
            workers = min(usable_cores(), self.num_envs)
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ConfigError(f"workers must be a positive integer or 'auto', got {workers!r}")
        if isinstance(max_worker_failures, bool) or not isinstance(max_worker_failures, int) or max_worker_failures < 1:
            raise ConfigError(f"max_worker_failures must be a positive integer, got {max_worker_failures!r}")
        if isinstance(ray_connect_timeout, bool) or not isinstance(ray_connect_timeout, (int, float)) \
                or not 0 < ray_connect_timeout < float("inf"):
            raise ConfigError(f"ray_connect_timeout must be a positive number of seconds, got {ray_connect_timeout!r}")
        if workers > 1 or backend != "local":
            check_picklable(self.env_spec)
        if backend == "ray":
            from npppo.backends.ray import import_ray

            import_ray()  # without the extra: one line saying how to install it, before any work
        workers = min(int(workers), self.num_envs)
        self.close()
        self.workers, self.backend, self.max_worker_failures = workers, backend, max_worker_failures
        self.ray_address, self.ray_connect_timeout = ray_address, float(ray_connect_timeout)

    @property
    def episode_step_limit(self) -> int:
        """The longest episode a whole-episode batch or an evaluation waits for (see the class docstring)."""
        return self._episode_step_limit

    @episode_step_limit.setter
    def episode_step_limit(self, limit: int) -> None:
        limit = check_episode_step_limit(limit)
        if limit != self._episode_step_limit:
            self.close()  # the workers hold the old bound; they start again at the next learn()
        self._episode_step_limit = limit

    def close(self) -> None:
        """Stop the rollout workers (they start again at the next :meth:`learn`)."""
        if self._backend is not None:
            backend, self._backend = self._backend, None
            backend.close()

    def __enter__(self) -> PPO:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _rollout_backend(self):
        if self._backend is None:
            spaces = (self.obs_dim, self.action_dim, self.action_low, self.action_high)
            slices = env_slices(self.num_envs, self.workers)
            if self.workers == 1 and self.backend == "local":
                sampler = Sampler(self.envs, slices[0], self.policy, self.action_low, self.action_high, self.seed,
                                  self.config.obs_clip if self.obs_rms is not None else None, self.episode_step_limit)
                sampler.episodes_started[:] = self.episodes_started
                self._backend = InProcess(sampler, self.config)
            elif self.backend == "local":
                from npppo.backends.local import LocalWorkers
                from npppo.warmup import compile_update_kernels

                self._backend = LocalWorkers(self.env_spec, self.config, spaces, self.seed, slices,
                                             self.episodes_started, self.max_worker_failures, self.episode_step_limit,
                                             while_first_starts=lambda: compile_update_kernels(self))
            else:
                from npppo.backends.ray import RayWorkers

                self._backend = RayWorkers(self.env_spec, self.config, spaces, self.seed, slices,
                                           self.episodes_started, self.max_worker_failures, self.ray_address,
                                           self.ray_connect_timeout, self.episode_step_limit)
        return self._backend

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
        stats = self.obs_rms.kernel_stats() if self.obs_rms is not None else np.zeros((0, self.obs_dim))
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

    def evaluate(self, episodes: int = 10, env: EnvSpec | None = None, seed: int = 10_000,
                 deterministic: bool = True, frames=None) -> tuple[float, float]:
        """(mean, std) of the undiscounted return over ``episodes`` episodes (:func:`npppo.evaluation.evaluate`;
        ``frames`` collects the rendered frames of an env made with ``render_mode="rgb_array"``); an episode
        that runs ``episode_step_limit`` steps without ending raises EnvError."""
        if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
            raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
        eval_env = self._make_env(env)
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

    def train_iteration(self, total_steps: int) -> dict[str, Any]:
        """One iteration: collect a batch with π_θold, then update on it (:meth:`update`)."""
        start = time.perf_counter()
        batch = self.collect()
        return self.update(batch, total_steps, rollout_s=time.perf_counter() - start)

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
        or on the workers; a failure stops the workers (they start afresh at the next call)."""
        obs_stats = (self.obs_rms.mean, self.obs_rms.var) if self.obs_rms is not None else None
        try:
            backend = self._rollout_backend()
            batch = backend.collect(self.iteration, self.policy.params, obs_stats)
        except BaseException:
            self.close()
            raise
        self.episodes_started = backend.episodes_started()
        return batch

    def update(self, batch: Batch, total_steps: int, rollout_s: float = 0.0) -> dict[str, Any]:
        """Steps 2-6 on a collected batch: targets and advantages with V_φold, k1 actor passes, k2
        critic passes, then the counters move on (θold ← θ, φold ← φ). Returns the iteration's metrics."""
        cfg = self.config
        start = time.perf_counter()
        ent_coef, lr_scale = self.schedule(total_steps, batch.steps)

        # 2-3. targets and advantages with V_φold, from rewards scaled by the running std of the discounted
        # return when configured (its statistics updated with this batch first: npppo.normalization)
        obs = self.normalize_obs(batch.obs)
        rewards = (self.reward_normalizer(batch.rewards, batch.episode_ends) if self.reward_normalizer is not None
                   else batch.rewards)
        values, returns, advantages = self.targets_and_advantages(batch, obs, rewards)
        # the stored actions and their log π_θold stay float64: with a small σ, rounding the action to
        # float32 moves the log-density by far more than a step does (docs/math.md, float32 and small σ)
        actions, old_log_prob = batch.actions, batch.log_prob
        advantages, targets, old_values = (x.astype(self.dtype) for x in (advantages, returns, values))

        # 4-5. k1 actor passes of the clipped surrogate (mu and sigma optimizers), k2 critic passes of the
        # squared error (critic optimizer). They share nothing (separate parameters, optimizers and
        # shuffle streams; targets fixed before either), so with workers > 1 they run side by side:
        # steps of at least THREADED_UPDATE_MIN_ROWS rows on threads (the critic's passes in one, and a
        # long batch's gradients in fixed blocks of rows, losses.row_blocks, on two); smaller steps,
        # whose cost is Python's rather than BLAS's, with the critic's passes in a local rollout
        # worker's process (its parameters and optimizer state sent there and back). The same results.
        # With recompute_advantages the actor's epoch e needs the critic after e critic epochs, so the two
        # alternate in this process (_alternating_epochs): neither side by side option applies, only the
        # row blocks of long steps still share the two threads.
        actor_rng = streams.generator(streams.ACTOR_SHUFFLE, self.seed, self.iteration)
        rows_per_step = batch.steps if cfg.batch_size is None else min(cfg.batch_size, batch.steps)
        parallel = self.workers > 1 and rows_per_step >= THREADED_UPDATE_MIN_ROWS
        alternate = cfg.recompute_advantages
        offload = self.workers > 1 and not parallel and not alternate and hasattr(self._backend, "start_critic")
        critic_args = (obs, targets, old_values, lr_scale, self.seed, self.iteration)
        try:
            with ThreadPoolExecutor(1) if parallel and not alternate else nullcontext() as pool, \
                    ThreadPoolExecutor(2) if parallel else nullcontext() as blocks_pool:
                map_blocks = blocks_pool.map if parallel else map  # both networks' row blocks share the two threads
                critic_twins = self._twins_of("critic", batch.steps)
                critic_result = (pool.submit(critic_passes, critic_twins, self.optimizers["critic"], cfg, *critic_args,
                                             map_blocks) if pool is not None else None)
                if offload:
                    self._backend.start_critic((self.critic.params, self.optimizers["critic"].state(), *critic_args))
                policies = self._twins_of("policy", batch.steps)
                actor_data = (obs, actions, old_log_prob, advantages)
                actor_norms = []
                if alternate:
                    actor_epoch, critic_epoch, critic_norms = self._alternating_epochs(
                        batch, rewards, policies, critic_twins, actor_data, targets, old_values, ent_coef, lr_scale,
                        actor_rng, map_blocks, actor_norms)
                else:
                    # fused unless a float32 sigma is so small that the log-density must read the rollout's
                    # row-by-row mu (losses.rollout_distribution), which the compiled epoch does not do
                    fused = (fused_update.fallback_reason(cfg, rows_per_step) is None
                             and not reads_rollout_distribution(self.policy, *self.policy.forward(obs)))
                    if fused:  # every epoch's steps in one compiled call
                        actor_epoch, actor_norms = fused_update.actor_passes(
                            self.policy, {g: self.optimizers[g] for g in ("mu", "sigma")}, cfg, obs, actions,
                            old_log_prob, advantages, ent_coef, lr_scale, actor_rng, self.iteration,
                            self._squash_bounds)
                    for _ in range(0 if fused else cfg.actor_epochs):
                        actor_epoch, stopped = self._actor_epoch(policies, actor_data, ent_coef, lr_scale, actor_rng,
                                                                 map_blocks, actor_norms)
                        if stopped:
                            break
                    if offload:
                        params, state, critic_epoch, critic_norms = self._backend.finish_critic()
                        self.critic.set_params(params)
                        self.optimizers["critic"].load_state(state)
                    elif critic_result is not None:
                        critic_epoch, critic_norms = critic_result.result()
                    else:
                        critic_epoch, critic_norms = critic_passes(critic_twins, self.optimizers["critic"], cfg,
                                                                   *critic_args)
        except BaseException:
            if offload:
                self.close()  # a critic job may still be running: workers start afresh at the next collect
            raise

        # 6. θold ← θ, φold ← φ: the next rollout and targets use the networks as they are now
        if self.obs_rms is not None:
            self.obs_rms.update(batch.obs)
        self.iteration += 1
        self.num_timesteps += batch.steps
        returns_var = float(np.var(returns))
        episodes = batch.episode_returns
        iteration_s = rollout_s + time.perf_counter() - start
        metrics = {
            "iteration": self.iteration,
            "steps": self.num_timesteps,
            "batch_steps": batch.steps,
            "episodes": int(episodes.size),
            "return_mean": float(episodes.mean()) if episodes.size else math.nan,
            "return_std": float(episodes.std()) if episodes.size else math.nan,
            "return_min": float(episodes.min()) if episodes.size else math.nan,
            "return_max": float(episodes.max()) if episodes.size else math.nan,
            "length_mean": float(batch.episode_lengths.mean()) if episodes.size else math.nan,
            # the losses and diagnostics of each network's last epoch
            "actor_loss": float(np.mean([info.loss for info in actor_epoch])),
            "critic_loss": float(np.mean(critic_epoch)),
            "entropy": float(np.mean([info.entropy for info in actor_epoch])),
            "approx_kl": float(np.mean([info.approx_kl for info in actor_epoch])),
            "clip_fraction": float(np.mean([info.clip_fraction for info in actor_epoch])),
            "sigma_mean": float(np.mean([info.sigma_mean for info in actor_epoch])),
            "explained_variance": 1.0 - float(np.var(returns - values)) / returns_var if returns_var > 0 else math.nan,
            # gradient norms before clipping, over every step of the iteration
            "grad_norm_mu": float(np.mean([norms[0] for norms in actor_norms])) if actor_norms else math.nan,
            "grad_norm_sigma": float(np.mean([norms[1] for norms in actor_norms])) if actor_norms else math.nan,
            "grad_norm_critic": float(np.mean([norms[0] for norms in critic_norms])),
            "actor_updates": len(actor_norms),
            "ent_coef": ent_coef,
            "lr_scale": lr_scale,
            "rollout_s": rollout_s,
            "update_s": iteration_s - rollout_s,
            "steps_per_s": batch.steps / iteration_s,
        }
        self.history.append(metrics)
        return metrics

    def _actor_epoch(self, policies: list[GaussianPolicy], data: tuple, ent_coef: float, lr_scale: float,
                     rng: np.random.Generator, map_blocks, norms: list) -> tuple[list, bool]:
        """One pass of the clipped surrogate over the batch ``data`` = (obs, actions, old_log_prob,
        advantages), minibatches shuffled by ``rng``; appends each step's gradient norms to ``norms``.
        target_kl as in SB3: a minibatch whose approx KL, measured before its step, exceeds 1.5 target_kl
        takes no step and ends the actor's epochs (docs/math.md). Returns (the minibatches' loss infos,
        whether target_kl stopped the epoch)."""
        cfg, (obs, actions, old_log_prob, advantages) = self.config, data
        kl_limit = math.inf if cfg.target_kl is None else 1.5 * cfg.target_kl
        optimizers = {g: self.optimizers[g] for g in ("mu", "sigma")}
        epoch = []
        for idx in minibatches(obs.shape[0], cfg.batch_size, rng):
            info = actor_loss_blocks(policies, _take(obs, idx), _take(actions, idx), _take(old_log_prob, idx),
                                     _take(advantages, idx), cfg.clip_eps, ent_coef, map_blocks, self._squash_bounds)
            epoch.append(info)
            if info.approx_kl > kl_limit:
                return epoch, True
            norms.append(optimizer_step(optimizers, self.policy, info.loss, lr_scale, self.iteration))
        return epoch, False

    def _alternating_epochs(self, batch: Batch, rewards: np.ndarray, policies: list, critics: list, actor_data: tuple,
                            targets: np.ndarray, old_values: np.ndarray, ent_coef: float, lr_scale: float,
                            actor_rng: np.random.Generator, map_blocks, actor_norms: list) -> tuple:
        """Steps 4-5 with ``recompute_advantages``: for e = 0 .. max(k1, k2) - 1, V(s_t), the targets G_t and
        the advantages Â_t are recomputed with the critic after e critic epochs (at e = 0 they are V_φold's,
        given), then one actor epoch (while e < k1 and target_kl has not stopped it) and one critic epoch
        (while e < k2) on them; the critic's value clip is around the recomputed V. The same shuffle streams
        as the ordinary update. Returns (last actor epoch's infos, last critic epoch's losses, critic norms)."""
        cfg = self.config
        obs, actions, old_log_prob, advantages = actor_data
        critic_rng = streams.generator(streams.CRITIC_SHUFFLE, self.seed, self.iteration)
        actor_epoch, critic_epoch, critic_norms, actor_done = [], [], [], False
        for e in range(max(cfg.actor_epochs, cfg.critic_epochs)):
            if e > 0:
                values, returns, advantages = self.targets_and_advantages(batch, obs, rewards)
                advantages, targets, old_values = (x.astype(self.dtype) for x in (advantages, returns, values))
            if e < cfg.actor_epochs and not actor_done:
                actor_epoch, actor_done = self._actor_epoch(policies, (obs, actions, old_log_prob, advantages),
                                                            ent_coef, lr_scale, actor_rng, map_blocks, actor_norms)
            if e < cfg.critic_epochs:
                critic_epoch = critic_epoch_steps(critics, self.optimizers["critic"], cfg, obs, targets, old_values,
                                                  lr_scale, self.iteration, critic_rng, map_blocks, critic_norms)
        return actor_epoch, critic_epoch, critic_norms

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

    def _twins_of(self, network: str, rows: int) -> list:
        """``self.policy`` or ``self.critic`` and enough twins of it for the row blocks of ``rows`` (made once)."""
        twins = self._twins[network]
        while len(twins) < -(-rows // BLOCK_ROWS):
            twins.append(getattr(self, network).twin() if twins else getattr(self, network))
        return twins

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (one .npz, written atomically); see :mod:`npppo.checkpoint`."""
        return checkpoint.save(self, path)

    @classmethod
    def load(cls, path: str | Path, env: EnvSpec | None = None) -> PPO:
        """An agent from a checkpoint; ``env`` is needed only to train or evaluate further."""
        return checkpoint.load(cls, path, env)


def whole_steps(total_steps) -> int:
    """``total_steps`` as an int: a positive integer, or a float that is a whole number (``1e5``)."""
    if isinstance(total_steps, (float, np.floating)) and math.isfinite(total_steps) and total_steps.is_integer():
        total_steps = int(total_steps)
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer (or a whole float such as 1e5), "
                         f"got {total_steps!r}")
    return int(total_steps)


def _take(array: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    return array if idx is None else array[idx]


def minibatches(n: int, batch_size: int | None, rng: np.random.Generator):
    """Index arrays of shuffled minibatches of ``batch_size`` rows, or a single ``None`` for the full batch."""
    if batch_size is None or batch_size >= n:
        yield None
        return
    order = rng.permutation(n)
    for begin in range(0, n, batch_size):
        yield order[begin : begin + batch_size]


def optimizer_step(optimizers: dict[str, Optimizer], model, loss: float, lr_scale: float, iteration: int
                   ) -> list[float]:
    """Check the loss and gradients are finite, then step each optimizer; returns the grad norms."""
    norms = [l2_norm(model.grad[optimizer.start : optimizer.stop]) for optimizer in optimizers.values()]
    if not math.isfinite(loss) or not all(map(math.isfinite, norms)):
        raise nonfinite_error(iteration, "actor" if "mu" in optimizers else "critic", loss,
                              dict(zip(optimizers, norms, strict=True)))
    for optimizer, norm in zip(optimizers.values(), norms, strict=True):
        optimizer.step(model.params, model.grad, lr_scale, norm)
    return norms


def critic_passes(critics: list[Critic], optimizer: Optimizer, config: PPOConfig, obs: np.ndarray,
                  targets: np.ndarray, old_values: np.ndarray, lr_scale: float, seed: int, iteration: int,
                  map_blocks=map) -> tuple[list[float], list[list[float]]]:
    """Step 5: k2 passes of the critic's squared error on ``critics`` (the critic and its twins for
    row blocks), shuffled by the critic's own stream (:data:`npppo.streams.CRITIC_SHUFFLE`); returns the last
    epoch's losses and every step's gradient norm. Run by the learner, or by a rollout worker
    beside the actor's passes (:meth:`npppo.backends.local.LocalWorkers.start_critic`)."""
    rng = streams.generator(streams.CRITIC_SHUFFLE, seed, iteration)
    rows = obs.shape[0] if config.batch_size is None else min(config.batch_size, obs.shape[0])
    if fused_update.fallback_reason(config, rows) is None:  # all epochs in one compiled call
        return fused_update.critic_passes(critics[0], optimizer, config, obs, targets, old_values, lr_scale, rng,
                                          iteration)
    epoch, norms = [], []
    for _ in range(config.critic_epochs):
        epoch = critic_epoch_steps(critics, optimizer, config, obs, targets, old_values, lr_scale, iteration, rng,
                                   map_blocks, norms)
    return epoch, norms


def critic_epoch_steps(critics: list[Critic], optimizer: Optimizer, config: PPOConfig, obs: np.ndarray,
                       targets: np.ndarray, old_values: np.ndarray, lr_scale: float, iteration: int,
                       rng: np.random.Generator, map_blocks, norms: list) -> list[float]:
    """One pass of the critic's squared error over the batch (obs (T, obs_dim), targets and old_values
    (T,)), minibatches shuffled by ``rng``; appends each step's gradient norm to ``norms``, returns the losses."""
    epoch = []
    for idx in minibatches(obs.shape[0], config.batch_size, rng):
        loss = critic_loss_blocks(critics, _take(obs, idx), _take(targets, idx), _take(old_values, idx),
                                  config.value_clip, map_blocks)
        norms.append(optimizer_step({"critic": optimizer}, critics[0], loss, lr_scale, iteration))
        epoch.append(loss)
    return epoch


def make_optimizer(config: PPOConfig, start: int, stop: int, lr: float, dtype) -> Optimizer:
    """The optimizer ``config`` chooses, for the slice ``[start, stop)`` of a parameter vector."""
    return Optimizer(config.optimizer, start, stop, lr, momentum=config.momentum, betas=tuple(config.adam_betas),
                     eps=config.adam_eps, max_grad_norm=config.max_grad_norm, dtype=dtype)
