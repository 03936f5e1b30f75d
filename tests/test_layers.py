"""Dense layers, MLPs, flat parameter vectors and their layer table, the compiled row-by-row forward,
and the initialisers: forwards against the NumPy reference (npppo.inference), backwards against
finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_every_tensor_checked, flat_offset, kink_free_rows, randomise_biases

from npppo.config import INITIALISERS
from npppo.inference import ACTIVATIONS, mlp_forward
from npppo.nn.layers import MLP, FlatModel, forward_rows, init_weight

CASES = [("identity", 1.0), ("relu", 1.0), ("elu", 1.0), ("elu", 0.4), ("softplus", 1.0), ("tanh", 1.0)]
IDS = [name if name != "elu" else f"elu-{alpha}" for name, alpha in CASES]
TOLERANCES = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-13}}


def two_part_model(dtype=np.float64, seed: int = 0) -> FlatModel:
    """A trunk and a head (with their own alphas) and a loose vector, biases non-zero: every kind of row
    a layer table can hold."""
    trunk = MLP([6, 9, 8], ["elu", "tanh"], "trunk", alpha=0.4)
    head = MLP([8, 7, 3], ["softplus", "relu"], "head")
    model = FlatModel([trunk, head], [("log_std", 3)], dtype)
    rng = np.random.default_rng(seed)
    trunk.init(rng, "glorot_normal")
    head.init(rng, "glorot_normal")
    randomise_biases(model, rng)
    model.extra["log_std"][0][...] = [0.1, -0.2, 0.3]
    return model


def dense_model(name: str, alpha: float, dtype=np.float64, seed: int = 0) -> tuple[FlatModel, MLP]:
    mlp = MLP([4, 3], [name], "layer", alpha)
    model = FlatModel([mlp], [], dtype)
    rng = np.random.default_rng(seed)
    mlp.init(rng, "glorot_normal")
    randomise_biases(model, rng)
    return model, mlp


# ---------------------------------------------------------------- dense layer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "alpha"), CASES, ids=IDS)
def test_dense_forward_is_matmul_plus_bias_then_activation(name, alpha, dtype):
    _, mlp = dense_model(name, alpha, dtype)
    x = np.random.default_rng(1).normal(size=(9, 4)).astype(dtype)
    layer = mlp.layers[0]
    y = layer.forward(x)
    assert y.shape == (9, 3) and y.dtype == dtype
    np.testing.assert_allclose(y, ACTIVATIONS[name][0](x @ layer.weight + layer.bias, alpha), **TOLERANCES[dtype])


@pytest.mark.parametrize(("name", "alpha"), CASES, ids=IDS)
def test_dense_gradients_match_finite_differences(name, alpha, checked_gradient):
    model, mlp = dense_model(name, alpha)
    layer = mlp.layers[0]
    rng = np.random.default_rng(2)
    x = kink_free_rows(model, mlp.forward, rng.normal(size=(40, 4)), 5)
    weights = rng.normal(size=(5, 3))

    def loss() -> float:
        return float(np.sum(weights * layer.forward(x)))

    layer.forward(x)
    model.grad[...] = np.nan  # the backward must write every entry, not accumulate into stale ones
    grad_x = layer.backward(weights).copy()
    grad = model.grad.copy()
    assert np.all(np.isfinite(grad))

    result = checked_gradient(loss, model.params, grad)  # W and b
    assert result.max_rel_error < 1e-6, result
    result = checked_gradient(loss, x, grad_x)
    assert result.max_rel_error < 1e-6, result


# ---------------------------------------------------------------- initialisers

INIT_SHAPE = (300, 500)  # 150 000 draws: the sample std is within ~0.2% of the true one


@pytest.mark.parametrize(
    ("scheme", "std"),
    [
        ("glorot_normal", math.sqrt(2.0 / (300 + 500))),
        ("glorot_uniform", math.sqrt(6.0 / (300 + 500)) / math.sqrt(3.0)),
        ("he_normal", math.sqrt(2.0 / 300)),
    ],
)
def test_initialiser_has_the_documented_std(scheme, std):
    w = init_weight(INIT_SHAPE, scheme, np.random.default_rng(0))
    assert w.shape == INIT_SHAPE
    assert abs(w.std() / std - 1.0) < 0.015
    assert abs(w.mean()) < 5.0 * std / math.sqrt(w.size)


def test_glorot_uniform_stays_within_its_limits():
    limit = math.sqrt(6.0 / (300 + 500))
    w = init_weight(INIT_SHAPE, "glorot_uniform", np.random.default_rng(0))
    assert np.all(np.abs(w) <= limit)
    assert w.max() > 0.99 * limit and w.min() < -0.99 * limit


@pytest.mark.parametrize("scheme", INITIALISERS)
def test_initialiser_is_reproducible_from_a_seeded_generator(scheme):
    first = init_weight((7, 5), scheme, np.random.default_rng(42))
    again = init_weight((7, 5), scheme, np.random.default_rng(42))
    other = init_weight((7, 5), scheme, np.random.default_rng(43))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("scheme", INITIALISERS)
def test_gain_multiplies_the_draw(scheme):
    plain = init_weight((6, 4), scheme, np.random.default_rng(3))
    np.testing.assert_allclose(init_weight((6, 4), scheme, np.random.default_rng(3), gain=0.01), 0.01 * plain)


@pytest.mark.parametrize("shape", [(9, 4), (4, 9), (6, 6)])
def test_orthogonal_gives_orthonormal_columns_or_rows(shape):
    gain = 1.7
    w = init_weight(shape, "orthogonal", np.random.default_rng(0), gain)
    assert w.shape == shape
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T  # columns of a tall W, rows of a wide one
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(shape)), atol=1e-12)


def test_mlp_init_zeroes_biases_and_scales_only_the_output_layer():
    sizes, activations = [5, 6, 4, 2], ["tanh"] * 3
    plain, scaled = (FlatModel([MLP(sizes, activations, "m")], [], np.float64) for _ in range(2))
    plain.params[...] = scaled.params[...] = 1.0
    plain.parts[0].init(np.random.default_rng(0), "glorot_normal")
    scaled.parts[0].init(np.random.default_rng(0), "glorot_normal", output_gain=0.01)
    for p, s in zip(plain.parts[0].layers, scaled.parts[0].layers, strict=True):
        assert not p.bias.any() and not s.bias.any()
    np.testing.assert_array_equal(plain.parts[0].layers[0].weight, scaled.parts[0].layers[0].weight)
    np.testing.assert_allclose(scaled.parts[0].layers[-1].weight, 0.01 * plain.parts[0].layers[-1].weight)


# ---------------------------------------------------------------- flat parameter vectors and the layer table


def test_named_params_are_views_of_params_in_forward_order():
    model = two_part_model()
    named = model.named_params()
    expected = {}
    for part, sizes in (("trunk", [6, 9, 8]), ("head", [8, 7, 3])):
        for i in range(len(sizes) - 1):
            expected[f"{part}.{i}.weight"] = (sizes[i], sizes[i + 1])
            expected[f"{part}.{i}.bias"] = (sizes[i + 1],)
    expected["log_std"] = (3,)
    assert {name: view.shape for name, view in named.items()} == expected
    assert list(named) == list(expected)

    offset = 0
    for name, view in named.items():
        assert np.shares_memory(view, model.params), name
        assert flat_offset(model, view) == offset, name  # back to back, no gaps, in forward order
        offset += view.size
    assert offset == model.params.size
    assert model.part_ranges == {"trunk": (0, 143), "head": (143, 230), "log_std": (230, 233)}


def test_gradient_views_share_memory_with_grad_at_the_params_offsets():
    model = two_part_model()
    model.params[...] = np.arange(model.params.size)
    model.grad[...] = np.arange(model.params.size)
    for part in model.parts:
        for layer in part.layers:
            assert np.shares_memory(layer.grad_weight, model.grad)
            assert np.shares_memory(layer.grad_bias, model.grad)
            np.testing.assert_array_equal(layer.grad_weight, layer.weight)
            np.testing.assert_array_equal(layer.grad_bias, layer.bias)
    for value, grad in model.extra.values():
        assert np.shares_memory(grad, model.grad)
        np.testing.assert_array_equal(grad, value)


def test_layer_table_describes_every_layer():
    model = two_part_model()
    table = model.layers
    assert table["part"].tolist() == ["trunk", "trunk", "head", "head"]
    assert table["fan_in"].tolist() == [6, 9, 8, 7] and table["fan_out"].tolist() == [9, 8, 7, 3]
    assert table["activation"].tolist() == ["elu", "tanh", "softplus", "relu"]
    assert table["alpha"].tolist() == [0.4, 0.4, 1.0, 1.0]
    named = model.named_params()
    for row in table:
        layer = next(layer for part in model.parts for layer in part.layers if layer.offset == row["offset"])
        assert flat_offset(model, named[f"{layer.name}.weight"]) == row["offset"]
    # the NumPy reference reads only the table and the flat vector, and gives the model's own forward
    x = np.random.default_rng(1).normal(size=(5, 6))
    h = mlp_forward(model.params, table[table["part"] == "trunk"], x)
    np.testing.assert_allclose(h, model.parts[0].forward(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(mlp_forward(model.params, table[table["part"] == "head"], h), model.parts[1].forward(h),
                               rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_set_params_keeps_views_valid(dtype):
    model = two_part_model(dtype)
    views = model.named_params()
    params = model.params
    new = np.random.default_rng(5).normal(size=params.size).astype(dtype)
    model.set_params(new)
    assert model.params is params
    np.testing.assert_array_equal(np.concatenate([v.ravel() for v in views.values()]), new)
    x = np.random.default_rng(6).normal(size=(3, 6)).astype(dtype)
    reference = mlp_forward(new.astype(np.float64), model.layers[model.layers["part"] == "trunk"], x)
    np.testing.assert_allclose(model.parts[0].forward(x), reference, **TOLERANCES[dtype])
    assert model.params.dtype == dtype and all(v.dtype == dtype for v in views.values())


def test_set_params_refuses_a_wrong_shape():
    model = two_part_model()
    with pytest.raises(ValueError, match="expected a parameter vector of shape"):
        model.set_params(np.zeros(model.params.size + 1))


# ---------------------------------------------------------------- whole networks against finite differences


@pytest.mark.parametrize(
    ("activations", "alpha"),
    [
        (["elu", "relu", "tanh", "identity"], 1.0),
        (["relu", "softplus", "elu", "relu"], 0.4),
        (["tanh", "elu", "softplus", "softplus"], 1.0),
    ],
)
def test_mlp_gradients_match_finite_differences(activations, alpha, checked_gradient):
    mlp = MLP([5, 8, 7, 6, 3], activations, "mlp", alpha)
    model = FlatModel([mlp], [], np.float64)
    rng = np.random.default_rng(0)
    mlp.init(rng, "glorot_normal")
    randomise_biases(model, rng)
    x = kink_free_rows(model, mlp.forward, rng.normal(size=(48, 5)), 6)
    weights = rng.normal(size=(6, 3))

    def loss() -> float:
        return float(np.sum(weights * mlp.forward(x)))

    mlp.forward(x)
    model.grad[...] = np.nan
    grad_x = mlp.backward(weights).copy()
    grad = model.grad.copy()
    result = checked_gradient(loss, model.params, grad)
    assert result.max_rel_error < 1e-6, result
    assert_every_tensor_checked(model, result)
    result = checked_gradient(loss, x, grad_x)
    assert result.max_rel_error < 1e-6, result


# ---------------------------------------------------------------- compiled row-by-row forward


def part_layout(model, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The compiled forward's (layout, alphas) of one part: rows ``(offset, fan_in, fan_out, code)``."""
    rows = model.layers["part"] == part
    return model.kernel_layout[0][rows], model.kernel_layout[1][rows]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_rows_matches_the_numpy_reference(dtype):
    model = two_part_model(dtype)
    x = np.random.default_rng(0).normal(size=(11, 6)).astype(dtype)
    h, out = np.empty((11, 8), dtype), np.empty((11, 3), dtype)
    forward_rows(model.params, *part_layout(model, "trunk"), x, h)
    forward_rows(model.params, *part_layout(model, "head"), h, out)
    params, table = model.params.astype(np.float64), model.layers
    reference = mlp_forward(params, table[table["part"] == "trunk"], x.astype(np.float64))
    np.testing.assert_allclose(h, reference, **TOLERANCES[dtype])
    reference = mlp_forward(params, table[table["part"] == "head"], reference)
    np.testing.assert_allclose(out, reference, **TOLERANCES[dtype])
