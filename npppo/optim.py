"""Optimizers over a contiguous group of a flat parameter vector, with gradient-norm scaling.

Each step is one fused Numba kernel: it scales the gradient, updates the optimizer's state and the
parameters in a single pass over memory.

Gradient-norm scaling (the seed's "gradient norm scaling 1"): with ``g`` the group's gradient and
``c`` the maximum norm, the step uses ``g * s`` with ``s = min(1, c / ||g||_2)``, so the scaled
gradient has norm exactly ``c`` when ``||g|| > c`` and is untouched otherwise.

Momentum SGD, in the convention of PyTorch's ``torch.optim.SGD``::

    v <- mu * v + g
    p <- p - lr * v

Keras writes ``v <- mu * v - lr * g; p <- p + v`` instead. With a constant learning rate the two
give identical parameters (Keras's v is -lr times ours); we keep the velocity free of ``lr`` so
that a learning-rate schedule changes the step size at once rather than through the velocity.

Adam (Kingma & Ba 2015), with bias correction at step ``t`` (from 1)::

    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""

from __future__ import annotations

import math

import numpy as np

from npppo.errors import TrainingError
from npppo.jit import njit


@njit
def l2_norm(x):
    """sqrt(sum(x^2)), squared and accumulated in float64."""
    total = 0.0
    for i in range(x.shape[0]):
        value = np.float64(x[i])  # Numba's float() keeps a float32 a float32: the square would round
        total += value * value
    return math.sqrt(total)


@njit
def sgd_momentum_step(params, grad, velocity, lr, momentum, grad_scale):
    """Fused: g <- grad * grad_scale; v <- momentum v + g; p <- p - lr v (all (n,))."""
    for i in range(params.shape[0]):
        v = momentum * velocity[i] + grad[i] * grad_scale
        velocity[i] = v
        params[i] -= lr * v


@njit
def adam_step(params, grad, m, v, lr, beta1, beta2, eps, step, grad_scale):
    """Fused Adam step number ``step`` (1-based) on (n,) arrays, gradient scaled by ``grad_scale``."""
    correction1 = 1.0 - beta1**step
    correction2 = 1.0 - beta2**step
    for i in range(params.shape[0]):
        g = grad[i] * grad_scale
        m[i] = beta1 * m[i] + (1.0 - beta1) * g
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g
        params[i] -= lr * (m[i] / correction1) / (math.sqrt(v[i] / correction2) + eps)


@njit
def norm_scale(grad_norm: float, max_norm: float | None) -> float:
    """The factor s = min(1, max_norm / ||g||) that brings the norm down to ``max_norm`` (None or inf:
    no scaling); compiled, so that the fused update (:mod:`npppo.fused_update`) steps with it too."""
    if max_norm is None:
        return 1.0
    if grad_norm <= max_norm:
        return 1.0
    return max_norm / grad_norm


class Optimizer:
    """Steps the slice ``[start, stop)`` of a flat parameter vector.

    ``kind`` is ``"sgd"`` (momentum SGD) or ``"adam"`` (:data:`npppo.config.OPTIMIZERS`). The state
    (``velocity`` or ``m``, ``v``, and ``step``) is plain arrays, so a checkpoint can hold it
    (:meth:`state` / :meth:`load_state`).
    """

    def __init__(
        self,
        kind: str,
        start: int,
        stop: int,
        lr: float,
        *,
        momentum: float,
        betas: tuple[float, float],
        eps: float,
        max_grad_norm: float | None,
        dtype,
    ) -> None:
        self.kind, self.start, self.stop, self.lr = kind, start, stop, lr
        self.momentum, self.betas, self.eps, self.max_grad_norm = momentum, betas, eps, max_grad_norm
        n = stop - start
        if kind == "sgd":
            self.buffers = {"velocity": np.zeros(n, dtype)}
        else:
            self.buffers = {"m": np.zeros(n, dtype), "v": np.zeros(n, dtype)}
        self.steps = 0

    def step(self, params: np.ndarray, grad: np.ndarray, lr_scale: float = 1.0, grad_norm: float | None = None
             ) -> float:
        """One step on ``params[start:stop]`` from ``grad[start:stop]``; returns the norm before scaling
        (``grad_norm``: that norm, when the caller has computed it already)."""
        p, g = params[self.start : self.stop], grad[self.start : self.stop]
        if grad_norm is None:
            grad_norm = l2_norm(g)
        scale = norm_scale(grad_norm, self.max_grad_norm)
        lr = self.lr * lr_scale
        self.steps += 1
        if self.kind == "sgd":
            sgd_momentum_step(p, g, self.buffers["velocity"], lr, self.momentum, scale)
        else:
            beta1, beta2 = self.betas
            adam_step(p, g, self.buffers["m"], self.buffers["v"], lr, beta1, beta2, self.eps, self.steps, scale)
        return grad_norm

    def state(self) -> dict[str, np.ndarray]:
        return {**{k: b.copy() for k, b in self.buffers.items()}, "steps": np.array(self.steps, np.int64)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for key, buffer in self.buffers.items():
            if state[key].shape != buffer.shape:
                raise ValueError(f"optimizer state {key!r}: expected shape {buffer.shape}, got {state[key].shape}")
            buffer[...] = state[key]
        self.steps = int(state["steps"])


def nonfinite_error(iteration: int, network: str, loss: float, norms: dict[str, float]) -> TrainingError:
    """The error of a step of iteration ``iteration`` (0-based; the message counts from 1, as the progress line
    does) whose loss or gradient norms (group name -> norm) are not finite."""
    return TrainingError(
        f"iteration {iteration + 1}: the {network} loss ({loss}) or its gradient norms {norms} became non-finite; "
        "lower the learning rate or enable gradient-norm scaling (max_grad_norm); the last saved checkpoint is "
        "unchanged"
    )
