"""The finite-difference check itself: it accepts right gradients, catches wrong ones, refuses float32."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npppo import gradcheck


def cubic_loss(x: np.ndarray) -> float:
    """f(x) = sum(x^3) + x_0 x_1, whose gradient is 3 x^2 + (x_1, x_0, 0, ...)."""
    return float(np.sum(x**3) + x[0] * x[1])


def cubic_grad(x: np.ndarray) -> np.ndarray:
    grad = 3.0 * x**2
    grad[0] += x[1]
    grad[1] += x[0]
    return grad


def test_accepts_a_right_gradient():
    x = np.random.default_rng(0).normal(size=7)
    result = gradcheck(lambda: cubic_loss(x), x, cubic_grad(x))
    assert result.max_rel_error < 1e-9
    np.testing.assert_array_equal(result.indices, np.arange(7))


def test_catches_a_wrong_gradient_and_names_its_index():
    x = np.random.default_rng(1).normal(size=7)
    wrong = cubic_grad(x)
    wrong[4] *= 1.01  # a 1% error in one coordinate
    result = gradcheck(lambda: cubic_loss(x), x, wrong)
    assert result.worst_index == 4
    assert result.max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-6)
    assert "index 4" in str(result)


def test_catches_a_missing_term():
    x = np.random.default_rng(2).normal(size=(2, 3))
    wrong = 3.0 * x**2  # forgets the x_0 x_1 term
    result = gradcheck(lambda: cubic_loss(x.reshape(-1)), x, wrong)
    assert result.max_rel_error > 1e-2
    assert result.worst_index in (0, 1)


def test_checks_only_the_given_indices():
    x = np.random.default_rng(3).normal(size=10)
    wrong = cubic_grad(x)
    wrong[9] += 1.0
    result = gradcheck(lambda: cubic_loss(x), x, wrong, indices=[0, 2, 5])
    np.testing.assert_array_equal(result.indices, [0, 2, 5])
    assert result.analytic.shape == result.numeric.shape == (3,)
    assert result.max_rel_error < 1e-9  # the wrong coordinate 9 was not checked


def test_restores_the_parameters_it_perturbs():
    x = np.random.default_rng(4).normal(size=6)
    before = x.copy()
    gradcheck(lambda: cubic_loss(x), x, cubic_grad(x))
    np.testing.assert_array_equal(x, before)


def test_difference_is_fourth_order_accurate():
    # the truncation error of the 4-point formula is h^4 f^(5) / 30: with f = exp, x = 0.3 and h = 0.01
    # it is ~4.5e-10, where a 2-point central difference would be off by h^2 f'''/6 ~ 2.2e-5
    x = np.array([0.3])
    result = gradcheck(lambda: math.exp(x[0]), x, np.exp(x), h=1e-2)
    assert abs(result.numeric[0] - math.exp(0.3)) == pytest.approx(1e-8 / 30 * math.exp(0.3), rel=0.05)


def test_refuses_float32():
    x = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="gradcheck needs float64 parameters, got float32"):
        gradcheck(lambda: float(np.sum(x)), x, np.ones(3))


def test_refuses_an_array_it_cannot_perturb_in_place():
    x = np.ones((3, 4)).T  # not contiguous: reshape(-1) would perturb a copy
    with pytest.raises(ValueError, match="contiguous"):
        gradcheck(lambda: float(np.sum(x)), x, np.ones((4, 3)))
