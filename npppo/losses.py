"""PPO's losses with their gradients, by hand, through the whole network.

Actor (clipped surrogate with entropy bonus), over a batch of N samples::

    r_t   = exp(log pi_θ(a_t|s_t) - log pi_θold(a_t|s_t))
    L     = -(1/N) sum_t [ min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t) + c H_t ]

    d min(...) / d r_t = A_t  where the unclipped term is the minimum:
                              A_t >= 0 and r_t <= 1+eps,  or  A_t < 0 and r_t >= 1-eps
                       = 0    elsewhere (the clipped term is constant in θ)
    dL/dlog pi_t = -(1/N) (d min / d r_t) r_t          (since dr/dlog pi = r)
    dL/dmu, dL/dsigma  follow from d log pi / d(mu, sigma) and dH/dsigma = 1/sigma
                       (:mod:`npppo.distributions`, each beside its value), then the policy's backward.

With a tanh-squashed policy (``squash_bounds``), log pi includes the log-determinant of the squash,
which depends on the stored sample alone: it cancels in r_t and leaves every derivative unchanged.

Critic (squared error), over N samples, optionally clipped around the old values (PPO2-style)::

    L = (1/N) sum_t (V_t - G_t)^2                      dL/dV_t = (2/N)(V_t - G_t)
    clipped: L = (1/N) sum_t max((V_t - G_t)^2, (V'_t - G_t)^2),  V'_t = V_old + clip(V_t - V_old, ±c)

The kernels use NumPy's error model: a division by sigma = 0 gives inf, which the trainer reports
as a non-finite loss, instead of raising ZeroDivisionError from inside compiled code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from npppo.critic import Critic
from npppo.distributions import add_log_prob, normal_entropy, normal_entropy_backward, normal_log_density_backward
from npppo.jit import njit
from npppo.policy import GaussianPolicy


@njit(error_model="numpy")
def clipped_surrogate_grad(actions, mu, sigma, old_log_prob, advantages, clip_eps, ent_coef,
                           grad_mu, grad_sigma, stats, squash_bounds):
    """Fused actor-loss kernel: returns L and writes dL/dmu, dL/dsigma (batch, D).

    squash_bounds (2, D) float64: the tanh squash's low and high (log pi is then the squashed
    action's), or (0, D) for an unsquashed Gaussian.

    stats (4,) receives: mean entropy, approx KL (the k3 estimator E[(r - 1) - log r]),
    clip fraction (share of |r - 1| > eps), mean ratio.
    """
    n, dims = actions.shape
    inv_n = 1.0 / n
    loss = 0.0
    entropy_sum = 0.0
    kl_sum = 0.0
    clipped_count = 0.0
    ratio_sum = 0.0
    squash = squash_bounds.shape[0] > 0
    bounds = squash_bounds if squash else np.zeros((2, dims))  # read only when squashed
    for i in range(n):
        log_prob = 0.0
        entropy = 0.0
        for d in range(dims):
            log_prob = add_log_prob(log_prob, actions[i, d], mu[i, d], sigma[i, d], bounds[0, d], bounds[1, d],
                                    squash)
            entropy += normal_entropy(sigma[i, d])
        log_ratio = log_prob - old_log_prob[i]
        ratio = math.exp(log_ratio)
        advantage = advantages[i]
        clipped_ratio = min(max(ratio, 1.0 - clip_eps), 1.0 + clip_eps)
        surrogate = min(ratio * advantage, clipped_ratio * advantage)
        loss -= (surrogate + ent_coef * entropy) * inv_n
        unclipped = ratio <= 1.0 + clip_eps if advantage >= 0.0 else ratio >= 1.0 - clip_eps
        grad_log_prob = -inv_n * advantage * ratio if unclipped else 0.0
        for d in range(dims):
            std = sigma[i, d]  # once: a store to grad_mu could alias it, so a second read would be a second load
            from_mu, from_sigma = normal_log_density_backward(actions[i, d], mu[i, d], std, grad_log_prob)
            grad_mu[i, d] = from_mu
            grad_sigma[i, d] = from_sigma - normal_entropy_backward(std, ent_coef * inv_n)
        entropy_sum += entropy
        kl_sum += (ratio - 1.0) - log_ratio
        ratio_sum += ratio
        if abs(ratio - 1.0) > clip_eps:
            clipped_count += 1.0
    stats[0] = entropy_sum * inv_n
    stats[1] = kl_sum * inv_n
    stats[2] = clipped_count * inv_n
    stats[3] = ratio_sum * inv_n
    return loss


# a full batch longer than this is computed in fixed blocks of rows (a property of the batch alone,
# so results do not depend on how many cores compute the blocks)
BLOCK_ROWS = 4096


@dataclass
class ActorLossInfo:
    """Diagnostics of one actor-loss evaluation (all batch means)."""

    loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    ratio: float
    sigma_mean: float


def actor_loss_terms(
    policy: GaussianPolicy,
    obs: np.ndarray,
    actions: np.ndarray,
    old_log_prob: np.ndarray,
    advantages: np.ndarray,
    clip_eps: float,
    ent_coef: float,
    squash_bounds: np.ndarray | None = None,
) -> ActorLossInfo:
    """Forward, loss and backward: leaves dL/dθ in ``policy.grad`` and returns the diagnostics.

    obs (N, obs_dim) in the policy's dtype, actions (N, D) and old_log_prob (N,) float64 as the
    rollout stored them, advantages (N,); squash_bounds (2, D) the action space's low and high for a
    tanh-squashed policy (then actions are pre-squash samples u). The log-density is computed in
    float64 (:func:`rollout_distribution` says which mu and sigma it reads).
    """
    mu, sigma = rollout_distribution(policy, obs, *policy.forward(obs))
    grad_mu = np.empty_like(mu)
    grad_sigma = np.empty_like(sigma)
    stats = np.zeros(4)
    bounds = (np.empty((0, mu.shape[1])) if squash_bounds is None
              else np.ascontiguousarray(squash_bounds, dtype=np.float64))
    loss = clipped_surrogate_grad(actions, mu, sigma, old_log_prob, advantages, clip_eps, ent_coef,
                                  grad_mu, grad_sigma, stats, bounds)
    policy.backward(grad_mu, grad_sigma)
    return ActorLossInfo(float(loss), *map(float, stats), float(np.mean(sigma)))


# below this sigma / max|mu|, a float32 policy's log-density reads mu and sigma computed row by row
SMALL_SIGMA = 1e-2


def reads_rollout_distribution(policy: GaussianPolicy, mu: np.ndarray, sigma: np.ndarray) -> bool:
    """Whether :func:`rollout_distribution` reads the row-by-row pass for these (mu, sigma) (N, D)."""
    return policy.dtype == np.float32 and sigma.size > 0 and sigma.min() < SMALL_SIGMA * np.abs(mu).max()


def rollout_distribution(policy: GaussianPolicy, obs: np.ndarray, mu: np.ndarray, sigma: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) (N, D) for the log-density of the stored actions: those of the forward pass, or, for
    a float32 policy whose sigma is below ``SMALL_SIGMA`` max|mu| somewhere, the same computed row by
    row as the rollout did (:meth:`npppo.policy.GaussianPolicy.distribution_rows`, a second pass).

    The batched forward's float32 mu differs from the rollout's by rounding (about 1e-7 |mu|), which
    moves log pi by about |a - mu| / sigma^2 times that: nothing while sigma is large, but at log
    sigma = -20 (2e-9) it is several units, and the ratio at θold is no longer 1. With the rollout's
    own arithmetic the ratio at θold is 1 to float64 rounding, however small sigma has become. The
    gradient still flows through the forward pass (the two differ only by rounding).
    """
    if not reads_rollout_distribution(policy, mu, sigma):
        return mu, sigma
    return policy.distribution_rows(obs)


def block_count(n: int) -> int:
    """How many row blocks a step of N rows is computed in: ceil(N / BLOCK_ROWS)."""
    return -(-n // BLOCK_ROWS)


def row_blocks(n: int) -> list[slice]:
    """N rows cut into :func:`block_count` contiguous blocks of nearly equal size: the cut depends
    on N alone, never on the worker count, so the sums over blocks are the same bits for any."""
    if block_count(n) == 1:  # every minibatch step: no linspace (a measurable share of a small update's time)
        return [slice(0, n)]
    bounds = np.linspace(0, n, block_count(n) + 1).astype(int)
    return [slice(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]


def _in_blocks(models: list, n: int, terms, combine, map_blocks):
    """``terms(model, rows)`` (forward, loss, backward of the rows ``rows``) over the row blocks of N rows.

    The losses are means over rows, so L = sum_k (n_k / N) L_k, and likewise the gradient and each
    diagnostic: leaves the weighted gradient in ``models[0].grad`` and returns ``combine(weights,
    results)`` of the weights n_k / N and each block's result (a single block's result as it is).
    Block k runs on ``models[k]``, a twin of ``models[0]`` (shared parameters, its own gradient and
    buffers: :meth:`npppo.nn.layers.FlatModel.twin`), so ``map_blocks`` may run the blocks side by
    side (a thread pool's ``map``).
    """
    blocks = row_blocks(n)
    if len(blocks) == 1:
        return terms(models[0], blocks[0])
    results = list(map_blocks(lambda k: terms(models[k], blocks[k]), range(len(blocks))))
    weights = [(block.stop - block.start) / n for block in blocks]
    grad = models[0].grad
    grad *= grad.dtype.type(weights[0])
    for model, weight in zip(models[1 : len(blocks)], weights[1:], strict=True):
        grad += grad.dtype.type(weight) * model.grad
    return combine(weights, results)


def actor_loss_blocks(
    policies: list[GaussianPolicy],
    obs: np.ndarray,
    actions: np.ndarray,
    old_log_prob: np.ndarray,
    advantages: np.ndarray,
    clip_eps: float,
    ent_coef: float,
    map_blocks=map,
    squash_bounds: np.ndarray | None = None,
) -> ActorLossInfo:
    """:func:`actor_loss_terms` over the row blocks of N rows (:func:`_in_blocks`) on ``policies``
    (twins); the gradient lands in ``policies[0].grad``. ``squash_bounds``: as for
    :func:`actor_loss_terms`."""

    def terms(policy, rows):
        return actor_loss_terms(policy, obs[rows], actions[rows], old_log_prob[rows], advantages[rows], clip_eps,
                                ent_coef, squash_bounds)

    def combine(weights, infos):
        return ActorLossInfo(*(sum(w * getattr(info, f.name) for w, info in zip(weights, infos, strict=True))
                               for f in fields(ActorLossInfo)))

    return _in_blocks(policies, obs.shape[0], terms, combine, map_blocks)


def actor_loss_and_grad(
    policy: GaussianPolicy,
    obs: np.ndarray,
    actions: np.ndarray,
    old_log_prob: np.ndarray,
    advantages: np.ndarray,
    clip_eps: float,
    ent_coef: float,
    squash_bounds: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """(L_actor, dL/dθ) with dL/dθ shaped like ``policy.params`` (a copy).

    obs (N, obs_dim), actions (N, D) as sampled, old_log_prob (N,) of π_θold, advantages (N,);
    squash_bounds (2, D): the bounds of a tanh-squashed policy (actions are then the pre-squash u).
    """
    args = [np.ascontiguousarray(obs, dtype=policy.dtype), np.ascontiguousarray(actions, dtype=np.float64),
            np.ascontiguousarray(old_log_prob, dtype=np.float64), np.ascontiguousarray(advantages, dtype=policy.dtype)]
    info = actor_loss_terms(policy, *args, clip_eps, ent_coef, squash_bounds)
    return info.loss, policy.grad.copy()


@njit(error_model="numpy")
def squared_error_grad(values, targets, old_values, value_clip, grad_values):
    """The critic's loss kernel (the fused update's; :func:`critic_loss_terms` is its NumPy
    reference): returns L and writes dL/dV (N,) into grad_values.

    values, targets, old_values (N,) of one dtype; value_clip > 0 (in that dtype) clips V around
    old_values (max-form, see the module docstring), 0 leaves it unclipped. The products run in the
    arrays' dtype, as NumPy's do; the loss is summed in float64.
    """
    n = values.shape[0]
    scale = np.empty(1, values.dtype)  # 2/N in the arrays' dtype, as NumPy rounds the Python float
    scale[0] = 2.0 / n
    two_over_n = scale[0]
    total = 0.0
    for i in range(n):
        error = values[i] - targets[i]
        square = error * error
        grad = error
        if value_clip > 0:
            change = values[i] - old_values[i]
            clipped_error = (old_values[i] + min(max(change, -value_clip), value_clip)) - targets[i]
            clipped_square = clipped_error * clipped_error
            if clipped_square > square:  # d V'/dV is 1 inside the clip range and 0 outside it
                square = clipped_square
                grad = clipped_error if abs(change) < value_clip else clipped_error * 0
        grad_values[i] = two_over_n * grad
        total += square
    return total / n


def critic_loss_terms(
    critic: Critic,
    obs: np.ndarray,
    targets: np.ndarray,
    old_values: np.ndarray | None = None,
    value_clip: float | None = None,
) -> float:
    """Forward, loss and backward: leaves dL/dφ in ``critic.grad`` and returns L.

    obs (N, obs_dim), targets (N,); with ``value_clip``, old_values (N,) are V_φold(obs).
    """
    values = critic.forward(obs)
    n = values.shape[0]
    error = values - targets
    if value_clip is None:
        loss = float(np.dot(error, error)) / n
        grad_values = (2.0 / n) * error
    else:
        clipped_values = old_values + np.clip(values - old_values, -value_clip, value_clip)
        clipped_error = clipped_values - targets
        use_clipped = clipped_error**2 > error**2
        loss = float(np.mean(np.where(use_clipped, clipped_error**2, error**2)))
        # d V'/dV is 1 inside the clip range and 0 outside it
        inside = np.abs(values - old_values) < value_clip
        grad_values = (2.0 / n) * np.where(use_clipped, clipped_error * inside, error)
    critic.backward(grad_values.astype(critic.dtype, copy=False))
    return loss


def critic_loss_blocks(
    critics: list[Critic],
    obs: np.ndarray,
    targets: np.ndarray,
    old_values: np.ndarray | None = None,
    value_clip: float | None = None,
    map_blocks=map,
) -> float:
    """:func:`critic_loss_terms` over the row blocks of N rows (:func:`_in_blocks`) on ``critics``
    (twins); the gradient lands in ``critics[0].grad``."""

    def terms(critic, rows):
        return critic_loss_terms(critic, obs[rows], targets[rows], None if old_values is None else old_values[rows],
                                 value_clip)

    return _in_blocks(critics, obs.shape[0], terms,
                      lambda weights, losses: sum(w * loss for w, loss in zip(weights, losses, strict=True)),
                      map_blocks)


def critic_loss_and_grad(
    critic: Critic,
    obs: np.ndarray,
    targets: np.ndarray,
    old_values: np.ndarray | None = None,
    value_clip: float | None = None,
) -> tuple[float, np.ndarray]:
    """(L_critic, dL/dφ) with dL/dφ shaped like ``critic.params`` (a copy); obs (N, obs_dim), targets (N,)."""
    obs = np.ascontiguousarray(obs, dtype=critic.dtype)
    targets = np.asarray(targets, dtype=critic.dtype)
    if old_values is not None:
        old_values = np.asarray(old_values, dtype=critic.dtype)
    loss = critic_loss_terms(critic, obs, targets, old_values, value_clip)
    return loss, critic.grad.copy()
