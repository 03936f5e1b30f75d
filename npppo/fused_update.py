"""The fused update: a network's k passes of minibatch steps as one compiled call.

The update's Python loop (:mod:`npppo.passes`) crosses the interpreter at every minibatch step: the gather,
each layer's products and kernels, the loss, the norms and each optimizer step are separate calls, and on the
tuned presets' 64-256-row minibatches those calls cost more than their arithmetic. Here one call
per iteration and network runs every epoch's steps, in the order of that loop::

    for each epoch e, for each minibatch (rows order[e, b : b + batch_size]):
        gather the rows; forward through the layer table; loss and dL/d(outputs); backward
        norms ||g_group||; stop with the step's number if the loss or a norm is not finite
        (actor, with kl_limit) stop before stepping once the minibatch's approx KL > kl_limit
        each group: g * min(1, max_norm / ||g||), then its Adam or momentum-SGD step

It reuses the kernels of the Python loop rather than restating them: the layer table
(:attr:`npppo.nn.layers.FlatModel.kernel_layout`), the bias + activation and activation-derivative
kernels (:mod:`npppo.nn.activations`), the clipped surrogate's loss and gradient
(:func:`npppo.losses.clipped_surrogate_grad`), the squared error's (:func:`npppo.losses.squared_error_grad`),
and the optimizers' steps and norms (:mod:`npppo.optim`). The matrix products are ``np.dot`` inside
Numba, which calls SciPy's BLAS: SciPy is the optional extra ``fused`` (scripts/fused_blas.py, two
runs on 64-256-row steps: 4-12x faster than compiled loops, 1.5-8x faster than one BLAS call per
product from Python; docs/performance.md). Without SciPy, or with ``fused_update="off"``, the update takes
the Python loop; :func:`fallback_reason` says when and why.

Results equal the Python loop's to rounding, not bit for bit: sums of one column (a one-output layer's
bias gradient, the state-independent log-std's gradient) run in row order here where NumPy sums
pairwise, and sigma's exp is Numba's rather than NumPy's SIMD one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from npppo import losses
from npppo.jit import njit
from npppo.losses import ActorLossInfo, clipped_surrogate_grad, squared_error_grad
from npppo.nn.activations import activation_backward, bias_activation_forward
from npppo.optim import Optimizer, adam_step, l2_norm, nonfinite_error, norm_scale, sgd_momentum_step

SGD, ADAM = 0, 1
OK, NONFINITE, KL_STOP = 0, 1, 2
ACTOR_GROUPS = 2  # the policy's optimizer groups, mu and sigma (PPO.optimizers)
# per step: loss, entropy, approx KL, clip fraction, mean ratio, sigma mean, then each group's norm
ACTOR_RECORD = ("loss", "entropy", "approx_kl", "clip_fraction", "ratio", "sigma_mean")


@functools.cache  # asked at every update: a missing SciPy would cost a failed import each time
def blas_available() -> bool:
    """Whether Numba can call BLAS from compiled code (it needs SciPy's Cython BLAS)."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        return False
    return True


def fallback_reason(config, rows_per_step: int) -> str | None:
    """Why ``config``'s update takes the Python loop instead of the fused one (None: it is fused).

    ``rows_per_step``: the minibatch size, or the batch's length for full-batch steps.
    """
    if config.fused_update == "off":
        return 'fused_update is "off"'
    if config.target_kl is not None:
        # the kernel implements SB3's rule (kl_limit = 1.5 target_kl, before each step) as the Python
        # loop now does, tested against a reference; it stays off until it is checked against that loop
        return "target_kl is set"
    if config.recompute_advantages:
        return "recompute_advantages alternates actor and critic epochs, one epoch at a time"
    if losses.block_count(rows_per_step) > 1:
        return f"steps of more than {losses.BLOCK_ROWS} rows go in row blocks (their cost is BLAS's, not Python's)"
    if not blas_available():
        return "SciPy is not installed (pip install 'npppo[fused]')"
    return None


# ---------------------------------------------------------------------------------------- kernels


@njit
def _matrix(vector, start, rows, cols):
    """vector[start : start + rows * cols] as a C-contiguous (rows, cols) view."""
    return vector[start : start + rows * cols].reshape(rows, cols)


@njit
def _forward(params, layout, alphas, first, stop, x, pre, out, starts, rows):
    """Layers [first, stop) of the table on x (rows, fan_in of ``first``); layer k's pre-activation
    and output are the (rows, fan_out) views at ``starts[k]`` of the flat buffers ``pre`` and ``out``.
    Returns the last output."""
    y = x
    for k in range(first, stop):
        offset, fan_in, fan_out, code = layout[k, 0], layout[k, 1], layout[k, 2], layout[k, 3]
        z = _matrix(pre, starts[k], rows, fan_out)
        a = _matrix(out, starts[k], rows, fan_out)
        np.dot(y, _matrix(params, offset, fan_in, fan_out), z)
        bias_activation_forward(z, params[offset + fan_in * fan_out : offset + fan_in * fan_out + fan_out],
                                code, alphas[k], a)
        y = a
    return y


@njit
def _backward(params, grad, layout, alphas, first, stop, x, grad_y, pre, out, grad_pre, starts, grad_x,
              rows, need_input_grad):
    """The chain rule back through layers [first, stop), as :meth:`npppo.nn.layers.Dense.backward`
    does it layer by layer: from grad_y = dL/d(output of layer stop - 1) (rows, fan_out), writes each
    layer's dL/dW, dL/db into ``grad`` and, with ``need_input_grad``, dL/dx into grad_x (rows, fan_in
    of ``first``). ``x`` is the input of layer ``first``; ``grad_pre`` is a flat buffer laid out like
    ``pre``. Layer k's dL/dx is written into layer k-1's grad_pre view, which layer k-1's derivative
    kernel then reads and overwrites element by element (each element read before it is written)."""
    g = grad_y
    for k in range(stop - 1, first - 1, -1):
        offset, fan_in, fan_out, code = layout[k, 0], layout[k, 1], layout[k, 2], layout[k, 3]
        w_end = offset + fan_in * fan_out
        gz = _matrix(grad_pre, starts[k], rows, fan_out)
        activation_backward(_matrix(pre, starts[k], rows, fan_out), _matrix(out, starts[k], rows, fan_out), g,
                            code, alphas[k], gz, grad[w_end : w_end + fan_out])
        x_k = x if k == first else _matrix(out, starts[k - 1], rows, fan_in)
        np.dot(x_k.T, gz, _matrix(grad, offset, fan_in, fan_out))
        if k == first and not need_input_grad:
            return
        g = grad_x if k == first else _matrix(grad_pre, starts[k - 1], rows, fan_in)
        weight = _matrix(params, offset, fan_in, fan_out)
        if fan_out == 1:  # an outer product, as in Dense.backward: the very same products
            for i in range(rows):
                for r in range(fan_in):
                    g[i, r] = gz[i, 0] * weight[r, 0]
        else:
            np.dot(gz, weight.T, g)


@njit
def _gather(source, order, begin, rows, target):
    """target[i] = source[order[begin + i]] for i < rows (2-D source and target)."""
    for i in range(rows):
        src = source[order[begin + i]]
        dst = target[i]
        for j in range(source.shape[1]):
            dst[j] = src[j]


@njit
def _gather_rows(order, begin, rows, obs, obs_rows, first, first_rows, second, second_rows):
    """A minibatch's observations (rows, obs_dim) and two per-row vectors (rows,), by ``order``."""
    _gather(obs, order, begin, rows, obs_rows)
    for i in range(rows):
        first_rows[i] = first[order[begin + i]]
        second_rows[i] = second[order[begin + i]]


@njit
def _layer_starts(layout, rows):
    """Where each layer's (rows, fan_out) buffer starts in a flat buffer, and the buffer's length."""
    starts = np.empty(layout.shape[0], np.int64)
    total = 0
    for k in range(layout.shape[0]):
        starts[k] = total
        total += rows * layout[k, 2]
    return starts, total


@njit
def _layer_buffers(params, layout, rows):
    """Flat buffers (pre-activations, outputs, dL/d pre-activations) for every layer at up to ``rows`` rows."""
    _, length = _layer_starts(layout, rows)
    return np.empty(length, params.dtype), np.empty(length, params.dtype), np.empty(length, params.dtype)


@njit
def _groups_step(params, grad, groups, kind, state, lrs, steps, momentum, beta1, beta2, eps, max_norm, norms):
    """Each group's step from its norm (already in ``norms``), as :meth:`npppo.optim.Optimizer.step`:
    the gradient scaled by min(1, max_norm / ||g||), then Adam (state[2g], state[2g+1] = m, v) or
    momentum SGD (state[2g] = velocity); steps[g] counts the group's steps."""
    for group in range(groups.shape[0]):
        start, stop = groups[group, 0], groups[group, 1]
        if stop == start:
            continue
        scale = norm_scale(norms[group], max_norm)
        steps[group] += 1
        if kind == SGD:
            sgd_momentum_step(params[start:stop], grad[start:stop], state[2 * group], lrs[group], momentum, scale)
        else:
            adam_step(params[start:stop], grad[start:stop], state[2 * group], state[2 * group + 1], lrs[group],
                      beta1, beta2, eps, steps[group], scale)


@njit(inline="always")
def _typed_constants():
    """(0, True, False) typed int64 and bool rather than as literals: Numba compiles a callee once per
    literal argument value, so ``_forward(..., 0, ...)`` beside ``_forward(..., n_trunk, ...)`` would
    compile _forward twice (and _backward twice more for its True and False), seconds of a first run."""
    return np.int64(0), np.bool_(True), np.bool_(False)


@njit(inline="always")
def _record(records, step, first, values):
    """records[step, first : first + len(values)] = values, as a loop: a slice assignment compiles
    Numba's shape-mismatch message (its repr and string code: about 3 s of a first run's compile)."""
    for j in range(values.shape[0]):
        records[step, first + j] = values[j]


@njit
def _norms_finite(loss, grad, groups, norms):
    finite = math.isfinite(loss)
    for group in range(groups.shape[0]):
        norms[group] = l2_norm(grad[groups[group, 0] : groups[group, 1]])
        finite = finite and math.isfinite(norms[group])
    return finite


@njit(error_model="numpy")
def actor_epochs(params, grad, layout, alphas, parts, sigma_min, obs, actions, old_log_prob, advantages,
                 orders, batch_size, clip_eps, ent_coef, squash_bounds, kl_limit, groups, kind, state, lrs, steps,
                 momentum, beta1, beta2, eps, max_norm, records):
    """Every epoch's minibatch steps of the actor; returns (steps done, status OK | NONFINITE | KL_STOP).

    params, grad (P,) the policy's flat vectors; layout, alphas its kernel layout; parts = (trunk
    layers, mu-head layers, log_std offset or -1); obs (N, obs_dim), actions (N, D), old_log_prob,
    advantages (N,); orders (epochs, N) each epoch's row order; squash_bounds (2, D) or (0, D);
    kl_limit: stop before a step whose minibatch's approx KL exceeds it (inf: never); groups (G, 2)
    each optimizer group's [start, stop); state: per group its (m, v) or (velocity, unused); lrs (G,)
    float64; steps (G,) int64 updated; records (epochs * minibatches, 6 + G) receives each step's
    :data:`ACTOR_RECORD` and group norms (a NONFINITE or KL_STOP step's row too, without its step).
    """
    n, dims = actions.shape
    n_trunk, n_mu, log_std_offset = parts[0], parts[1], parts[2]
    n_layers = layout.shape[0]
    rows_max = min(batch_size, n)
    pre, out, grad_pre = _layer_buffers(params, layout, rows_max)
    obs_rows = np.empty((rows_max, obs.shape[1]), params.dtype)
    # the stored actions and their log pi_old stay float64, as in the Python steps (float32 and small sigma)
    action_rows = np.empty((rows_max, dims), np.float64)
    old_rows = np.empty(rows_max, np.float64)
    advantage_rows = np.empty(rows_max, params.dtype)
    sigma_all = np.empty((rows_max, dims), params.dtype)
    grad_mu_all = np.empty((rows_max, dims), params.dtype)
    grad_sigma_all = np.empty((rows_max, dims), params.dtype)
    grad_h_sigma_all = np.empty((rows_max, layout[n_trunk - 1, 2]), params.dtype)
    stats = np.zeros(4)
    norms = np.empty(groups.shape[0])
    first_layer, with_input_grad, without_input_grad = _typed_constants()
    step = 0
    for epoch in range(orders.shape[0]):
        order = orders[epoch]
        for begin in range(0, n, batch_size):
            rows = min(batch_size, n - begin)
            x = obs_rows[:rows]
            _gather_rows(order, begin, rows, obs, x, old_log_prob, old_rows, advantages, advantage_rows)
            _gather(actions, order, begin, rows, action_rows[:rows])
            starts_rows, _ = _layer_starts(layout, rows)
            h = _forward(params, layout, alphas, first_layer, n_trunk, x, pre, out, starts_rows, rows)
            mu = _forward(params, layout, alphas, n_trunk, n_trunk + n_mu, h, pre, out, starts_rows, rows)
            sigma = sigma_all[:rows]
            if log_std_offset >= 0:
                for d in range(dims):
                    value = math.exp(params[log_std_offset + d])
                    for i in range(rows):
                        sigma[i, d] = value
            else:
                head = _forward(params, layout, alphas, n_trunk + n_mu, n_layers, h, pre, out, starts_rows, rows)
                for i in range(rows):
                    for d in range(dims):
                        sigma[i, d] = head[i, d] + sigma_min
            grad_mu, grad_sigma = grad_mu_all[:rows], grad_sigma_all[:rows]
            loss = clipped_surrogate_grad(action_rows[:rows], mu, sigma, old_rows[:rows], advantage_rows[:rows],
                                          clip_eps, ent_coef, grad_mu, grad_sigma, stats, squash_bounds)
            sigma_sum = 0.0
            for i in range(rows):
                for d in range(dims):
                    sigma_sum += sigma[i, d]
            records[step, 0] = loss
            _record(records, step, 1, stats)
            records[step, 5] = sigma_sum / (rows * dims)
            if stats[1] > kl_limit:
                records[step, 6:] = np.nan
                return step + 1, KL_STOP
            # the trunk's dL/dh: the mu head's dL/dx, plus the sigma head's
            grad_h = _matrix(grad_pre, starts_rows[n_trunk - 1], rows, layout[n_trunk - 1, 2])
            _backward(params, grad, layout, alphas, n_trunk, n_trunk + n_mu, h, grad_mu, pre, out, grad_pre,
                      starts_rows, grad_h, rows, with_input_grad)
            if log_std_offset >= 0:
                for d in range(dims):
                    total = grad_sigma[0, d] * sigma[0, d]
                    for i in range(1, rows):
                        total += grad_sigma[i, d] * sigma[i, d]
                    grad[log_std_offset + d] = total
            else:
                grad_h_sigma = grad_h_sigma_all[:rows]
                _backward(params, grad, layout, alphas, n_trunk + n_mu, n_layers, h, grad_sigma, pre, out,
                          grad_pre, starts_rows, grad_h_sigma, rows, with_input_grad)
                for i in range(rows):
                    for j in range(grad_h.shape[1]):
                        grad_h[i, j] += grad_h_sigma[i, j]
            _backward(params, grad, layout, alphas, first_layer, n_trunk, x, grad_h, pre, out, grad_pre, starts_rows,
                      grad_h, rows, without_input_grad)
            finite = _norms_finite(loss, grad, groups, norms)
            _record(records, step, 6, norms)
            if not finite:
                return step + 1, NONFINITE
            _groups_step(params, grad, groups, kind, state, lrs, steps, momentum, beta1, beta2, eps, max_norm, norms)
            step += 1
    return step, OK


@njit(error_model="numpy")
def critic_epochs(params, grad, layout, alphas, obs, targets, old_values, value_clip, orders, batch_size, groups,
                  kind, state, lrs, steps, momentum, beta1, beta2, eps, max_norm, records):
    """Every epoch's minibatch steps of the critic (squared error, optionally value-clipped around
    old_values when value_clip > 0); returns (steps done, OK | NONFINITE). Arguments as for
    :func:`actor_epochs`; targets, old_values (N,); records (steps, 1 + G): loss, group norms."""
    n = obs.shape[0]
    rows_max = min(batch_size, n)
    pre, out, grad_pre = _layer_buffers(params, layout, rows_max)
    obs_rows = np.empty((rows_max, obs.shape[1]), params.dtype)
    target_rows = np.empty(rows_max, params.dtype)
    old_rows = np.empty(rows_max, params.dtype)
    grad_values = np.empty((rows_max, 1), params.dtype)
    norms = np.empty(groups.shape[0])
    first_layer, _, without_input_grad = _typed_constants()
    step = 0
    for epoch in range(orders.shape[0]):
        order = orders[epoch]
        for begin in range(0, n, batch_size):
            rows = min(batch_size, n - begin)
            x = obs_rows[:rows]
            _gather_rows(order, begin, rows, obs, x, targets, target_rows, old_values, old_rows)
            starts_rows, _ = _layer_starts(layout, rows)
            values = _forward(params, layout, alphas, first_layer, layout.shape[0], x, pre, out, starts_rows, rows)
            loss = squared_error_grad(values[:, 0], target_rows[:rows], old_rows[:rows], value_clip,
                                      grad_values[:rows, 0])
            _backward(params, grad, layout, alphas, first_layer, layout.shape[0], x, grad_values[:rows], pre, out,
                      grad_pre, starts_rows, x, rows, without_input_grad)
            finite = _norms_finite(loss, grad, groups, norms)
            records[step, 0] = loss
            _record(records, step, 1, norms)
            if not finite:
                return step + 1, NONFINITE
            _groups_step(params, grad, groups, kind, state, lrs, steps, momentum, beta1, beta2, eps, max_norm, norms)
            step += 1
    return step, OK


# ---------------------------------------------------------------------------------------- drivers


@dataclass
class _Groups:
    """What the kernels need of a network's optimizers, in their order."""

    names: list[str]
    bounds: np.ndarray  # (G, 2) int64
    kind: int
    state: tuple  # per group two arrays: (m, v) or (velocity, an empty one)
    lrs: np.ndarray  # (G,) float64
    steps: np.ndarray  # (G,) int64
    hyper: tuple  # momentum, beta1, beta2, eps, max_norm (inf: no scaling)


def _groups(optimizers: dict[str, Optimizer], lr_scale: float, dtype) -> _Groups:
    first = next(iter(optimizers.values()))
    state = []
    for optimizer in optimizers.values():
        buffers = optimizer.buffers
        state += [buffers["m"], buffers["v"]] if first.kind == "adam" else [buffers["velocity"], np.empty(0, dtype)]
    # padded to the actor's two groups, so that the critic's one group shares the actor's compiled _groups_step
    state += [np.empty(0, dtype)] * (2 * ACTOR_GROUPS - len(state))
    max_norm = math.inf if first.max_grad_norm is None else float(first.max_grad_norm)
    return _Groups(list(optimizers), np.array([[o.start, o.stop] for o in optimizers.values()], np.int64),
                   ADAM if first.kind == "adam" else SGD, tuple(state),
                   np.array([o.lr * lr_scale for o in optimizers.values()]),
                   np.array([o.steps for o in optimizers.values()], np.int64),
                   (float(first.momentum), float(first.betas[0]), float(first.betas[1]), float(first.eps), max_norm))


def _orders(n: int, batch_size: int | None, epochs: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Each epoch's row order as :func:`npppo.passes.minibatches` draws it (a permutation per epoch, or
    the rows in order for full-batch steps), and the step's row count. ``rng`` is the iteration's own
    stream, so drawing every epoch's order up front changes no other draw."""
    if batch_size is None or batch_size >= n:
        # a writable C array, not a broadcast view: the kernels' one signature for both branches (a first
        # run's warm-up, on a made-up batch shorter than a minibatch, would otherwise compile another)
        return np.tile(np.arange(n, dtype=np.int64), (epochs, 1)), n
    return np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64), batch_size


def _finish(groups: _Groups, optimizers: dict[str, Optimizer], done: int, status: int, records: np.ndarray,
            norm_column: int, network: str, iteration: int) -> None:
    """Count the steps taken in each optimizer; a non-finite step raises the Python loop's TrainingError."""
    for optimizer, steps in zip(optimizers.values(), groups.steps, strict=True):
        optimizer.steps = int(steps)
    if status == NONFINITE:
        row = records[done - 1]
        raise nonfinite_error(iteration, network, float(row[0]),
                              dict(zip(groups.names, map(float, row[norm_column:]), strict=True)))


def actor_passes(policy, optimizers: dict[str, Optimizer], config, obs: np.ndarray, actions: np.ndarray,
                 old_log_prob: np.ndarray, advantages: np.ndarray, ent_coef: float, lr_scale: float,
                 rng: np.random.Generator, iteration: int, squash_bounds: np.ndarray | None = None,
                 kl_limit: float = math.inf) -> tuple[list[ActorLossInfo], list[list[float]]]:
    """The actor's ``config.actor_epochs`` passes fused: (the last epoch's diagnostics per step, every
    step's group norms [mu, sigma]), as :func:`npppo.passes.actor_passes`' loop returns them.

    obs (N, obs_dim), actions (N, D), old_log_prob, advantages (N,) in the policy's dtype; ``rng``
    the actor's shuffle stream; ``kl_limit``: SB3's target-KL rule (1.5 target_kl; inf: none).
    """
    n = obs.shape[0]
    orders, rows = _orders(n, config.batch_size, config.actor_epochs, rng)
    per_epoch = -(-n // rows)
    groups = _groups(optimizers, lr_scale, policy.dtype)
    records = np.zeros((orders.shape[0] * per_epoch, len(ACTOR_RECORD) + len(groups.names)))
    bounds = (np.empty((0, policy.action_dim)) if squash_bounds is None
              else np.ascontiguousarray(squash_bounds, dtype=np.float64))
    parts = np.array([len(policy.trunk.layers), len(policy.mu_head.layers),
                      -1 if policy.log_std_offset is None else policy.log_std_offset], np.int64)
    done, status = actor_epochs(policy.params, policy.grad, *policy.kernel_layout, parts,
                                policy.dtype.type(policy.sigma_min), obs, actions, old_log_prob, advantages, orders,
                                rows, float(config.clip_eps), float(ent_coef), bounds, float(kl_limit),
                                groups.bounds, groups.kind, groups.state, groups.lrs, groups.steps, *groups.hyper,
                                records)
    _finish(groups, optimizers, done, status, records, len(ACTOR_RECORD), "actor", iteration)
    stepped = done - (status == KL_STOP)
    last_epoch = records[(max(done - 1, 0) // per_epoch) * per_epoch : done]
    infos = [ActorLossInfo(*map(float, row[: len(ACTOR_RECORD)])) for row in last_epoch]
    return infos, [list(map(float, row[len(ACTOR_RECORD):])) for row in records[:stepped]]


def critic_passes(critic, optimizer: Optimizer, config, obs: np.ndarray, targets: np.ndarray,
                  old_values: np.ndarray, lr_scale: float, rng: np.random.Generator, iteration: int
                  ) -> tuple[list[float], list[list[float]]]:
    """The critic's ``config.critic_epochs`` passes fused: (the last epoch's losses, every step's
    norm), as :func:`npppo.passes.critic_passes` returns them. obs (N, obs_dim), targets, old_values (N,)."""
    n = obs.shape[0]
    orders, rows = _orders(n, config.batch_size, config.critic_epochs, rng)
    per_epoch = -(-n // rows)
    optimizers = {"critic": optimizer}
    groups = _groups(optimizers, lr_scale, critic.dtype)
    records = np.zeros((orders.shape[0] * per_epoch, 2))
    value_clip = critic.dtype.type(0.0 if config.value_clip is None else config.value_clip)
    done, status = critic_epochs(critic.params, critic.grad, *critic.kernel_layout, obs, targets, old_values,
                                 value_clip, orders, rows, groups.bounds, groups.kind, groups.state, groups.lrs,
                                 groups.steps, *groups.hyper, records)
    _finish(groups, optimizers, done, status, records, 1, "critic", iteration)
    last = records[((done - 1) // per_epoch) * per_epoch : done]
    return [float(row[0]) for row in last], [[float(row[1])] for row in records[:done]]

