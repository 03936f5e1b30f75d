"""The update's passes: steps 4 and 5 of the seed's algorithm, and where they run.

A pass is one epoch of minibatch steps over the batch; each step is forward, loss, backward,
finite checks, then one optimizer step per parameter group::

    actor_passes:   k1 epochs of the clipped surrogate (mu and sigma optimizers), shuffled by the
                    actor's stream; SB3's target_kl rule may end them early
    critic_passes:  k2 epochs of the squared error (critic optimizer), shuffled by the critic's stream
    alternating_passes: with recompute_advantages, epoch e of each, advantages recomputed between them

Either network's epochs run fused (:mod:`npppo.fused_update`: every step in one compiled call) where
:func:`npppo.fused_update.fallback_reason` allows, else as the Python loop here. A step longer than
:data:`npppo.losses.BLOCK_ROWS` rows is computed in row blocks, each on a twin of the network
(:class:`BlockTwins`), which ``map_blocks`` may compute side by side.

The actor's and the critic's passes share nothing (separate parameters, optimizers and streams;
the targets are fixed before either), so where they run is a choice of speed alone, made once per
run (:func:`passes_for`) and giving the same bits whichever is made:

* :class:`SerialPasses`: one after the other, in the learner (one worker; or small steps on Ray or with
  ``recompute_advantages``);
* :class:`ThreadedPasses`: the critic's passes on a thread beside the actor's, and both networks' row
  blocks on two threads: for steps whose cost is BLAS's (at least ``THREADED_MIN_ROWS`` rows);
* critic in worker 0 (:class:`npppo.backends.local.WorkerCriticPasses`): for small steps, whose cost is
  Python's, the critic's passes run in the first local rollout worker's process while the actor's run
  here. What crosses to it: the critic's flat parameters, its optimizer's state, the batch's
  normalised observations, targets and old values, the learning-rate scale, the run seed and the
  iteration; what comes back: the parameters and optimizer state as they end, the last epoch's
  losses and every step's gradient norm.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from npppo import fused_update, streams
from npppo.config import PPOConfig
from npppo.losses import ActorLossInfo, actor_loss_blocks, block_count, critic_loss_blocks, reads_rollout_distribution
from npppo.optim import Optimizer, l2_norm, nonfinite_error

# with workers > 1, steps of at least this many rows run on threads; below, per-call overhead dominates
# and threads only contend for the GIL (docs/performance.md, the update on two cores)
THREADED_MIN_ROWS = 256


def make_optimizer(config: PPOConfig, start: int, stop: int, lr: float, dtype) -> Optimizer:
    """The optimizer ``config`` chooses, for the slice ``[start, stop)`` of a parameter vector."""
    return Optimizer(config.optimizer, start, stop, lr, momentum=config.momentum, betas=tuple(config.adam_betas),
                     eps=config.adam_eps, max_grad_norm=config.max_grad_norm, dtype=dtype)


def minibatches(n: int, batch_size: int | None, rng: np.random.Generator):
    """Index arrays of shuffled minibatches of ``batch_size`` rows, or a single ``None`` for the full batch."""
    if batch_size is None or batch_size >= n:
        yield None
        return
    order = rng.permutation(n)
    for begin in range(0, n, batch_size):
        yield order[begin : begin + batch_size]


def rows_per_step(config: PPOConfig, batch_rows: int) -> int:
    """How many rows each minibatch step of a ``batch_rows``-row batch has."""
    return batch_rows if config.batch_size is None else min(config.batch_size, batch_rows)


def _take(array: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    return array if idx is None else array[idx]


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


class BlockTwins:
    """A network and enough twins of it (shared parameters, own gradients) for the row blocks of the
    longest step seen so far, made once."""

    def __init__(self, model) -> None:
        self.models = [model]

    def __call__(self, rows: int) -> list:
        while len(self.models) < block_count(rows):
            self.models.append(self.models[0].twin())
        return self.models


@dataclass
class ActorData:
    """What the actor's passes read of a batch: obs (T, obs_dim) and advantages (T,) in the policy's
    dtype, the stored actions (T, D) and their log π_θold (T,) in float64."""

    obs: np.ndarray
    actions: np.ndarray
    old_log_prob: np.ndarray
    advantages: np.ndarray


@dataclass
class Actor:
    """The actor's side of an update: its twins, optimizers (mu, sigma) and the action squash's bounds."""

    twins: BlockTwins
    optimizers: dict[str, Optimizer]
    squash_bounds: np.ndarray | None

    @property
    def policy(self):
        return self.twins.models[0]


@dataclass
class CriticData:
    """What the critic's passes read of a batch: obs (T, obs_dim), targets and old values (T,), in the
    critic's dtype."""

    obs: np.ndarray
    targets: np.ndarray
    old_values: np.ndarray


def actor_epoch(actor: Actor, config: PPOConfig, data: ActorData, ent_coef: float, lr_scale: float,
                rng: np.random.Generator, iteration: int, map_blocks, norms: list) -> tuple[list[ActorLossInfo], bool]:
    """One pass of the clipped surrogate over the batch, minibatches shuffled by ``rng``; appends each
    step's gradient norms to ``norms``. target_kl as in SB3: a minibatch whose approx KL, measured
    before its step, exceeds 1.5 target_kl takes no step and ends the actor's epochs (docs/math.md).
    Returns (the minibatches' loss infos, whether target_kl stopped the epoch)."""
    kl_limit = math.inf if config.target_kl is None else 1.5 * config.target_kl
    policies = actor.twins(data.obs.shape[0])
    epoch = []
    for idx in minibatches(data.obs.shape[0], config.batch_size, rng):
        info = actor_loss_blocks(policies, _take(data.obs, idx), _take(data.actions, idx),
                                 _take(data.old_log_prob, idx), _take(data.advantages, idx), config.clip_eps,
                                 ent_coef, map_blocks, actor.squash_bounds)
        epoch.append(info)
        if info.approx_kl > kl_limit:
            return epoch, True
        norms.append(optimizer_step(actor.optimizers, actor.policy, info.loss, lr_scale, iteration))
    return epoch, False


def actor_passes(actor: Actor, config: PPOConfig, data: ActorData, ent_coef: float, lr_scale: float, seed: int,
                 iteration: int, map_blocks=map) -> tuple[list[ActorLossInfo], list[list[float]]]:
    """Step 4: k1 passes of the clipped surrogate, shuffled by the actor's stream
    (:data:`npppo.streams.ACTOR_SHUFFLE`); returns the last epoch's loss infos and every step's
    gradient norms [mu, sigma]. Fused unless :func:`npppo.fused_update.fallback_reason` says otherwise,
    or a float32 sigma is so small that the log-density must read the rollout's row-by-row mu
    (:func:`npppo.losses.rollout_distribution`), which the compiled epochs do not do."""
    rng = streams.generator(streams.ACTOR_SHUFFLE, seed, iteration)
    norms: list = []
    if (fused_update.fallback_reason(config, rows_per_step(config, data.obs.shape[0])) is None
            and not _reads_rollout_rows(actor.policy, data.obs)):
        return fused_update.actor_passes(actor.policy, actor.optimizers, config, data.obs, data.actions,
                                         data.old_log_prob, data.advantages, ent_coef, lr_scale, rng, iteration,
                                         actor.squash_bounds)
    epoch: list = []
    for _ in range(config.actor_epochs):
        epoch, stopped = actor_epoch(actor, config, data, ent_coef, lr_scale, rng, iteration, map_blocks, norms)
        if stopped:
            break
    return epoch, norms


def _reads_rollout_rows(policy, obs: np.ndarray) -> bool:
    # only a float32 policy can need them: the forward pass that decides is skipped for float64
    return policy.dtype == np.float32 and reads_rollout_distribution(policy, *policy.forward(obs))


def critic_epoch(critics: list, optimizer: Optimizer, config: PPOConfig, data: CriticData, lr_scale: float,
                 iteration: int, rng: np.random.Generator, map_blocks, norms: list) -> list[float]:
    """One pass of the critic's squared error over the batch, minibatches shuffled by ``rng``; appends
    each step's gradient norm to ``norms``, returns the losses."""
    epoch = []
    for idx in minibatches(data.obs.shape[0], config.batch_size, rng):
        loss = critic_loss_blocks(critics, _take(data.obs, idx), _take(data.targets, idx),
                                  _take(data.old_values, idx), config.value_clip, map_blocks)
        norms.append(optimizer_step({"critic": optimizer}, critics[0], loss, lr_scale, iteration))
        epoch.append(loss)
    return epoch


def critic_passes(critics: list, optimizer: Optimizer, config: PPOConfig, data: CriticData, lr_scale: float,
                  seed: int, iteration: int, map_blocks=map) -> tuple[list[float], list[list[float]]]:
    """Step 5: k2 passes of the critic's squared error on ``critics`` (the critic and its twins for
    row blocks), shuffled by the critic's own stream (:data:`npppo.streams.CRITIC_SHUFFLE`); returns the
    last epoch's losses and every step's gradient norm."""
    rng = streams.generator(streams.CRITIC_SHUFFLE, seed, iteration)
    if fused_update.fallback_reason(config, rows_per_step(config, data.obs.shape[0])) is None:
        return fused_update.critic_passes(critics[0], optimizer, config, data.obs, data.targets, data.old_values,
                                          lr_scale, rng, iteration)
    epoch, norms = [], []
    for _ in range(config.critic_epochs):
        epoch = critic_epoch(critics, optimizer, config, data, lr_scale, iteration, rng, map_blocks, norms)
    return epoch, norms


def alternating_passes(actor: Actor, critic_twins: BlockTwins, critic_optimizer: Optimizer, config: PPOConfig,
                       actor_data: ActorData, critic_data: CriticData, recompute, ent_coef: float, lr_scale: float,
                       seed: int, iteration: int, map_blocks=map) -> tuple:
    """Steps 4-5 with ``recompute_advantages``: for e = 0 .. max(k1, k2) - 1, the advantages, targets
    and old values are ``recompute()``d with the critic after e critic epochs (at e = 0 they are
    V_φold's, given), then one actor epoch (while e < k1 and target_kl has not stopped it) and one
    critic epoch (while e < k2) on them; the critic's value clip is around the recomputed V. The same
    shuffle streams as the other passes. Returns (last actor epoch's infos, actor norms, last critic
    epoch's losses, critic norms)."""
    actor_rng = streams.generator(streams.ACTOR_SHUFFLE, seed, iteration)
    critic_rng = streams.generator(streams.CRITIC_SHUFFLE, seed, iteration)
    critics = critic_twins(critic_data.obs.shape[0])
    actor_epoch_infos, actor_norms, critic_losses, critic_norms, actor_done = [], [], [], [], False
    for e in range(max(config.actor_epochs, config.critic_epochs)):
        if e > 0:
            advantages, targets, old_values = recompute()
            actor_data = ActorData(actor_data.obs, actor_data.actions, actor_data.old_log_prob, advantages)
            critic_data = CriticData(critic_data.obs, targets, old_values)
        if e < config.actor_epochs and not actor_done:
            actor_epoch_infos, actor_done = actor_epoch(actor, config, actor_data, ent_coef, lr_scale, actor_rng,
                                                        iteration, map_blocks, actor_norms)
        if e < config.critic_epochs:
            critic_losses = critic_epoch(critics, critic_optimizer, config, critic_data, lr_scale, iteration,
                                         critic_rng, map_blocks, critic_norms)
    return actor_epoch_infos, actor_norms, critic_losses, critic_norms


# ------------------------------------------------------------------------ where the passes run


class Passes(Protocol):
    """Where the critic's passes run beside the actor's (chosen once per run: :func:`passes_for`)."""

    map_blocks: object  # how a long step's row blocks are mapped: ``map`` or a thread pool's

    def start_critic(self, twins: BlockTwins, optimizer: Optimizer, data: CriticData, lr_scale: float, seed: int,
                     iteration: int) -> None:
        """Begin the critic's passes (they may run while the caller runs the actor's)."""

    def finish_critic(self) -> tuple[list[float], list[list[float]]]:
        """The started passes' (last epoch's losses, gradient norms), the critic and its optimizer
        updated in place."""

    def abandon(self) -> None:
        """After a failure between start and finish: let nothing of the started passes run on."""

    def close(self) -> None:
        """Release what the passes hold (threads)."""


class SerialPasses:
    """The critic's passes in the caller's thread, when their result is asked for."""

    map_blocks = map

    def __init__(self, config: PPOConfig) -> None:
        self.config, self.job = config, None

    def start_critic(self, twins, optimizer, data, lr_scale, seed, iteration) -> None:
        self.job = (twins(data.obs.shape[0]), optimizer, self.config, data, lr_scale, seed, iteration)

    def finish_critic(self):
        job, self.job = self.job, None
        return critic_passes(*job, self.map_blocks)

    def abandon(self) -> None:
        self.job = None

    def close(self) -> None:
        pass


class ThreadedPasses(SerialPasses):
    """The critic's passes on a thread of their own; both networks' row blocks on two threads."""

    def __init__(self, config: PPOConfig) -> None:
        super().__init__(config)
        self.critic_thread, self.block_threads = ThreadPoolExecutor(1), ThreadPoolExecutor(2)
        self.map_blocks = self.block_threads.map

    def start_critic(self, twins, optimizer, data, lr_scale, seed, iteration) -> None:
        self.job = self.critic_thread.submit(critic_passes, twins(data.obs.shape[0]), optimizer, self.config, data,
                                             lr_scale, seed, iteration, self.map_blocks)

    def finish_critic(self):
        job, self.job = self.job, None
        return job.result()

    def abandon(self) -> None:
        if self.job is not None:  # a thread cannot be stopped: wait until it no longer changes the critic
            self.job.exception()
            self.job = None

    def close(self) -> None:
        self.abandon()
        self.critic_thread.shutdown()
        self.block_threads.shutdown()


class ByStepRows:
    """For whole-episode batches, whose length only the batch tells: the threads for steps of at least
    ``THREADED_MIN_ROWS`` rows, ``small`` (the critic in a worker, or serial) below. Both are made once."""

    def __init__(self, threaded: ThreadedPasses, small) -> None:
        self.threaded, self.small, self.current = threaded, small, threaded
        self.map_blocks = threaded.map_blocks

    def start_critic(self, twins, optimizer, data, lr_scale, seed, iteration) -> None:
        rows = rows_per_step(self.threaded.config, data.obs.shape[0])
        self.current = self.threaded if rows >= THREADED_MIN_ROWS else self.small
        self.current.start_critic(twins, optimizer, data, lr_scale, seed, iteration)

    def finish_critic(self):
        return self.current.finish_critic()

    def abandon(self) -> None:
        self.current.abandon()

    def close(self) -> None:
        self.threaded.close()
        self.small.close()


def passes_for(config: PPOConfig, workers: int, critic_worker=None) -> Passes:
    """Where the critic's passes run for this run (see the module docstring), with workers > 1: threads
    for steps of at least ``THREADED_MIN_ROWS`` rows, ``critic_worker`` (a local rollout worker that
    takes the critic's passes) for smaller ones, decided per batch for a full batch of whole episodes
    (:class:`ByStepRows`); with one worker, or Ray and small steps, serially. ``recompute_advantages``
    alternates the two in the learner: only the row blocks use threads then."""
    if workers == 1:
        return SerialPasses(config)
    small = critic_worker if critic_worker is not None and not config.recompute_advantages else SerialPasses(config)
    if config.steps_per_batch is None:
        return ByStepRows(ThreadedPasses(config), small)
    return ThreadedPasses(config) if rows_per_step(config, config.steps_per_batch) >= THREADED_MIN_ROWS else small
