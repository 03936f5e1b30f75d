"""Optimizers: hand-computed steps, the fused kernels against NumPy, gradient-norm scaling, state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npppo.config import OPTIMIZERS
from npppo.optim import Optimizer, adam_step, l2_norm, norm_scale, sgd_momentum_step

GRADS = [[0.5, -1.0], [-1.0, 0.25]]  # the gradients of two steps on p = [1, -2]


def make(kind: str, start: int, stop: int, lr: float, **changes) -> Optimizer:
    """An optimizer with every keyword spelled out (PPOConfig supplies them in training)."""
    settings = {"momentum": 0.9, "betas": (0.9, 0.999), "eps": 1e-8, "max_grad_norm": None, "dtype": np.float64}
    return Optimizer(kind, start, stop, lr, **{**settings, **changes})


def run(optimizer: Optimizer, grads=GRADS, start=(1.0, -2.0)) -> np.ndarray:
    params = np.array(start)
    for g in grads:
        optimizer.step(params, np.array(g))
    return params


def test_sgd_momentum_two_steps_by_hand():
    # lr 0.1, momentum 0.9, v <- 0.9 v + g, p <- p - 0.1 v
    # step 1: v = [0.5, -1.0]                       p = [1 - 0.05, -2 + 0.1]    = [0.95, -1.9]
    # step 2: v = [0.45 - 1.0, -0.9 + 0.25]         p = [0.95 + 0.055, -1.9 + 0.065]
    #           = [-0.55, -0.65]                      = [1.005, -1.835]
    optimizer = make("sgd", 0, 2, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(run(optimizer), [1.005, -1.835], rtol=1e-15)
    np.testing.assert_allclose(optimizer.state()["velocity"], [-0.55, -0.65], rtol=1e-15)


def test_adam_two_steps_by_hand():
    # lr 0.1, betas (0.9, 0.999), eps 1e-8; bias corrections 1 - 0.9^t and 1 - 0.999^t:
    #   t = 1: 0.1 and 0.001;  t = 2: 0.19 and 0.001999
    # p[0] = 1, g = 0.5 then -1:
    #   t = 1: m = 0.05,                    v = 0.00025                             step = 0.1 * 0.5 / (0.5 + eps)
    #   t = 2: m = 0.045 - 0.1 = -0.055,    v = 0.00024975 + 0.001 = 0.00124975
    # p[1] = -2, g = -1 then 0.25:
    #   t = 1: m = -0.1,                    v = 0.001                               step = -0.1 * 1 / (1 + eps)
    #   t = 2: m = -0.09 + 0.025 = -0.065,  v = 0.000999 + 0.0000625 = 0.0010615
    eps = 1e-8
    expected = [
        1.0 - 0.1 * 0.5 / (0.5 + eps) - 0.1 * (-0.055 / 0.19) / (math.sqrt(0.00124975 / 0.001999) + eps),
        -2.0 + 0.1 * 1.0 / (1.0 + eps) - 0.1 * (-0.065 / 0.19) / (math.sqrt(0.0010615 / 0.001999) + eps),
    ]
    optimizer = make("adam", 0, 2, lr=0.1, betas=(0.9, 0.999), eps=eps)
    np.testing.assert_allclose(run(optimizer), expected, rtol=1e-13)
    np.testing.assert_allclose(optimizer.state()["m"], [-0.055, -0.065], rtol=1e-13)
    np.testing.assert_allclose(optimizer.state()["v"], [0.00124975, 0.0010615], rtol=1e-13)
    assert optimizer.steps == 2


# ---------------------------------------------------------------- kernels against NumPy references


def reference_sgd(params, grad, velocity, lr, momentum, grad_scale):
    velocity[...] = momentum * velocity + grad * grad_scale
    params -= lr * velocity


def reference_adam(params, grad, m, v, lr, beta1, beta2, eps, step, grad_scale):
    g = grad * grad_scale
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    params -= lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)


KERNEL_TOLERANCES = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-13, "atol": 1e-15}}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("kernel", "reference", "hyper", "buffers"),
    [
        (sgd_momentum_step, reference_sgd, (0.05, 0.9), 1),
        (adam_step, reference_adam, (0.01, 0.9, 0.999, 1e-8), 2),
    ],
    ids=["sgd", "adam"],
)
def test_kernel_matches_numpy_reference(kernel, reference, hyper, buffers, dtype):
    rng = np.random.default_rng(0)
    params = rng.normal(size=300).astype(dtype)
    state = [np.zeros(300, dtype) for _ in range(buffers)]
    ref_params, ref_state = params.copy(), [s.copy() for s in state]
    for step in range(1, 5):
        grad = rng.normal(size=300).astype(dtype)
        extra = (step,) if kernel is adam_step else ()
        kernel(params, grad, *state, *hyper, *extra, 0.7)
        reference(ref_params, grad, *ref_state, *hyper, *extra, 0.7)
    assert params.dtype == dtype
    np.testing.assert_allclose(params, ref_params, **KERNEL_TOLERANCES[dtype])
    for s, ref in zip(state, ref_state, strict=True):
        np.testing.assert_allclose(s, ref, **KERNEL_TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_norm_matches_numpy(dtype):
    x = np.random.default_rng(0).normal(size=1001).astype(dtype)
    assert l2_norm(x) == pytest.approx(float(np.linalg.norm(x.astype(np.float64))), rel=1e-13)


def test_l2_norm_squares_float32_in_float64():
    # in float32, 1e-30^2 underflows to 0 and 1e30^2 overflows to inf
    for value in (1e-30, 1e30):
        assert l2_norm(np.full(4, value, np.float32)) == pytest.approx(2.0 * float(np.float32(value)), rel=1e-15)


# ---------------------------------------------------------------- gradient-norm scaling


def test_norm_scale_is_min_of_one_and_max_norm_over_norm():
    assert norm_scale(5.0, 1.0) == 0.2
    assert norm_scale(0.5, 1.0) == 1.0
    assert norm_scale(1.0, 1.0) == 1.0
    assert norm_scale(1e9, None) == 1.0


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_optimizer_steps_the_scaled_gradient(kind):
    grad = np.random.default_rng(1).normal(size=20) * 4.0
    clipped = make(kind, 0, 20, lr=0.1, max_grad_norm=2.0)
    free = make(kind, 0, 20, lr=0.1)
    p_clipped, p_free = np.ones(20), np.ones(20)
    norm = float(np.linalg.norm(grad))
    assert clipped.step(p_clipped, grad) == pytest.approx(norm, rel=1e-14)  # the norm before scaling
    free.step(p_free, grad * (2.0 / norm))  # the gradient scaled to norm max_grad_norm by hand
    np.testing.assert_allclose(p_clipped, p_free, rtol=1e-14)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_optimizer_touches_only_its_slice(kind):
    params, grad = np.zeros(10), np.ones(10)
    make(kind, 3, 7, lr=0.1).step(params, grad)
    assert not params[:3].any() and not params[7:].any()
    assert np.all(params[3:7] < 0)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_lr_scale_multiplies_the_learning_rate(kind):
    grad = np.random.default_rng(2).normal(size=5)
    scaled, halved = make(kind, 0, 5, lr=0.1), make(kind, 0, 5, lr=0.05)
    p_scaled, p_halved = np.zeros(5), np.zeros(5)
    scaled.step(p_scaled, grad, lr_scale=0.5)
    halved.step(p_halved, grad)
    np.testing.assert_allclose(p_scaled, p_halved, rtol=1e-15)


# ---------------------------------------------------------------- state


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_state_round_trips_through_load_state(kind):
    grads = np.random.default_rng(0).normal(size=(4, 6))

    def fresh() -> Optimizer:
        return make(kind, 0, 6, lr=0.1, max_grad_norm=1.0)

    uninterrupted, params = fresh(), np.zeros(6)
    for g in grads[:3]:
        uninterrupted.step(params, g)
    state = uninterrupted.state()
    resumed_params = params.copy()
    uninterrupted.step(params, grads[3])  # after state(): the snapshot must not follow it
    resumed = fresh()
    resumed.load_state(state)
    assert resumed.steps == 3
    resumed.step(resumed_params, grads[3])
    np.testing.assert_array_equal(resumed_params, params)


def test_load_state_refuses_a_wrong_shape():
    optimizer = make("sgd", 0, 4, lr=0.1)
    with pytest.raises(ValueError, match="optimizer state 'velocity': expected shape"):
        optimizer.load_state({"velocity": np.zeros(5), "steps": np.array(0)})


# ---------------------------------------------------------------- the scaling threshold, with c != 1
# (with c = 1, comparing the squared norm against c, or scaling by c / ||g||^2, would go unnoticed)


def gradient_of_norm(norm: float, size: int = 12, seed: int = 3) -> np.ndarray:
    grad = np.random.default_rng(seed).normal(size=size)
    return grad * (norm / np.linalg.norm(grad))


@pytest.mark.parametrize("kind", OPTIMIZERS)
@pytest.mark.parametrize("max_norm", [0.5, 3.0])
@pytest.mark.parametrize("factor", [1.0 - 1e-6, 1.0, 0.1])
def test_a_norm_at_or_below_max_norm_passes_unscaled(kind, max_norm, factor):
    grad = gradient_of_norm(max_norm * factor)
    clipped, free = (make(kind, 0, 12, lr=0.1, momentum=0.5, max_grad_norm=m) for m in (max_norm, None))
    p_clipped, p_free = np.ones(12), np.ones(12)
    for _ in range(3):
        clipped.step(p_clipped, grad)
        free.step(p_free, grad)
    np.testing.assert_array_equal(p_clipped, p_free)
    if kind == "sgd":
        plain = make("sgd", 0, 12, lr=1.0, momentum=0.0, max_grad_norm=max_norm)
        params = np.zeros(12)
        plain.step(params, grad)
        np.testing.assert_array_equal(-params, grad)
    assert norm_scale(max_norm * factor, max_norm) == 1.0


@pytest.mark.parametrize("max_norm", [0.5, 3.0])
@pytest.mark.parametrize("factor", [1.0 + 1e-6, 1.7])
def test_a_norm_just_above_max_norm_is_scaled_to_exactly_max_norm(max_norm, factor):
    grad = gradient_of_norm(max_norm * factor)
    optimizer = make("sgd", 0, 12, lr=1.0, momentum=0.0, max_grad_norm=max_norm)
    params = np.zeros(12)
    assert optimizer.step(params, grad) == pytest.approx(max_norm * factor, rel=1e-14)
    assert float(np.linalg.norm(params)) == pytest.approx(max_norm, rel=1e-13)
    np.testing.assert_allclose(-params, grad / factor, rtol=1e-12)
    assert norm_scale(max_norm * factor, max_norm) == pytest.approx(1.0 / factor, rel=1e-15)


@pytest.mark.parametrize("max_norm", [0.5, 3.0])
def test_adam_scales_the_gradient_before_both_moments(max_norm):
    # Adam's first step is invariant to the gradient's scale (m / sqrt(v)), the second is not when
    # one gradient is scaled and the other is not: 1.5 c and then 0.5 c
    grads = [gradient_of_norm(1.5 * max_norm, seed=1), gradient_of_norm(0.5 * max_norm, seed=2)]
    clipped, free = make("adam", 0, 12, lr=0.1, max_grad_norm=max_norm), make("adam", 0, 12, lr=0.1)
    p_clipped, p_free = np.zeros(12), np.zeros(12)
    for grad, scale in zip(grads, [1.0 / 1.5, 1.0], strict=True):
        clipped.step(p_clipped, grad)
        free.step(p_free, grad * scale)
    np.testing.assert_allclose(p_clipped, p_free, rtol=1e-13)
    np.testing.assert_allclose(clipped.state()["m"], free.state()["m"], rtol=1e-13)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_each_group_is_scaled_by_its_own_norm(kind):
    # two groups of one vector: the first far above c, the second below it
    grad = np.concatenate([gradient_of_norm(4.0, 6, seed=5), gradient_of_norm(0.2, 6, seed=6)])
    first, second = (make(kind, a, b, lr=0.1, max_grad_norm=0.5) for a, b in ((0, 6), (6, 12)))
    params = np.zeros(12)
    first.step(params, grad)
    second.step(params, grad)
    ref_first, ref_second = make(kind, 0, 6, lr=0.1), make(kind, 6, 12, lr=0.1)
    expected = np.zeros(12)
    ref_first.step(expected, np.concatenate([grad[:6] * (0.5 / 4.0), grad[6:]]))
    ref_second.step(expected, grad)
    np.testing.assert_allclose(params, expected, rtol=1e-13)


def test_sgd_momentum_other_than_the_seeds():
    optimizer = make("sgd", 0, 2, lr=0.1, momentum=0.5)
    # v1 = g1 = [0.5, -1]; v2 = 0.5 v1 + g2 = [-0.75, -0.25]; p = p0 - 0.1 (v1 + v2)
    np.testing.assert_allclose(run(optimizer), [1.0 - 0.1 * (0.5 - 0.75), -2.0 - 0.1 * (-1.0 - 0.25)], rtol=1e-15)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_the_state_has_the_size_of_the_group_not_of_the_vector(kind):
    optimizer = make(kind, 3, 7, lr=0.1)
    params = np.zeros(10)
    optimizer.step(params, np.ones(10))
    state = optimizer.state()
    assert all(state[key].shape == (4,) for key in state if key != "steps")
    assert all(np.all(state[key] != 0) for key in state if key != "steps")
