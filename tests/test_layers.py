"""Dense layers, MLPs, flat parameter vectors, the compiled row-by-row forward, and the two models
built on them (GaussianPolicy, Critic): forward against plain NumPy, backward against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npppo.critic import Critic
from npppo.nn.activations import Activation
from npppo.nn.layers import INITIALISERS, MLP, FlatModel, forward_rows, init_weight
from npppo.policy import SIGMA_MODES, GaussianPolicy

ACTIVATIONS = [Activation(name) for name in ("identity", "relu", "elu", "softplus", "tanh")] + [
    Activation("elu", alpha=0.4)
]
IDS = [a.name if a.alpha == 1.0 else f"{a.name}-{a.alpha}" for a in ACTIVATIONS]
KINK_MARGIN = 1e-3  # pre-activations of relu/elu stay this far from 0, well beyond the stencil's 2h = 2e-4


# ---------------------------------------------------------------- helpers


def reference_forward(mlp: MLP, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The MLP in plain NumPy: its output and every layer's pre-activation z = x W + b."""
    pres = []
    for layer in mlp.layers:
        z = x @ layer.weight + layer.bias
        pres.append(z)
        x = layer.activation.reference(z)
    return x, pres


def kink_gap(mlps: list[MLP], pres: list[np.ndarray]) -> np.ndarray:
    """Per row, the smallest |z| over layers whose activation has a kink at 0 (relu, elu)."""
    layers = [layer for mlp in mlps for layer in mlp.layers]
    gap = np.full(pres[0].shape[0], np.inf)
    for layer, z in zip(layers, pres, strict=True):
        if layer.activation.name in ("relu", "elu"):
            gap = np.minimum(gap, np.min(np.abs(z), axis=1))
    return gap


def policy_preactivations(policy: GaussianPolicy, obs: np.ndarray) -> tuple[list[MLP], list[np.ndarray]]:
    h, pres = reference_forward(policy.trunk, obs)
    heads = [policy.mu_head] + ([policy.sigma_head] if policy.sigma_head is not None else [])
    for head in heads:
        pres += reference_forward(head, h)[1]
    return [policy.trunk, *heads], pres


def kink_free_rows(preactivations, rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """``rows`` random inputs (rows, dim) at which no relu/elu pre-activation is near its kink."""
    x = rng.normal(size=(8 * rows, dim))
    x = x[kink_gap(*preactivations(x)) > KINK_MARGIN][:rows]
    assert x.shape[0] == rows, "too few kink-free inputs: change the seed"
    return x


def randomise_biases(model: FlatModel, rng: np.random.Generator) -> None:
    """Non-zero biases, so that the bias path of the forward is exercised too."""
    for name, view in model.named_params().items():
        if name.endswith(".bias"):
            view[...] = rng.normal(0.0, 0.3, size=view.shape)


def flat_offset(model: FlatModel, view: np.ndarray) -> int:
    return (view.__array_interface__["data"][0] - model.params.__array_interface__["data"][0]) // view.itemsize


def spread_indices(model: FlatModel, rng: np.random.Generator, total: int = 200, per_tensor: int = 4):
    """About ``total`` flat indices: ``per_tensor`` from every weight and bias, the rest at random."""
    chosen = set()
    for view in model.named_params().values():
        start = flat_offset(model, view)
        chosen.update(start + rng.choice(view.size, size=min(per_tensor, view.size), replace=False))
    rest = rng.permutation(model.params.size)
    chosen.update(rest[: max(total - len(chosen), 0)])
    return np.array(sorted(chosen))


def assert_every_tensor_checked(model: FlatModel, result) -> None:
    """Each weight and bias has checked coordinates, and not only zero-gradient ones."""
    for name, view in model.named_params().items():
        start = flat_offset(model, view)
        mask = (result.indices >= start) & (result.indices < start + view.size)
        assert mask.any(), f"{name} was not checked"
        assert np.any(result.analytic[mask] != 0.0), f"{name}: only zero gradients were checked"


def dense_model(fan_in: int, fan_out: int, activation: Activation, dtype=np.float64, seed: int = 0):
    mlp = MLP([fan_in, fan_out], [activation], "layer")
    model = FlatModel([mlp], dtype=dtype)
    rng = np.random.default_rng(seed)
    mlp.init(rng, "glorot_normal")
    randomise_biases(model, rng)
    return model, mlp


# ---------------------------------------------------------------- dense layer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=IDS)
def test_dense_forward_is_matmul_plus_bias_then_activation(activation, dtype):
    _, mlp = dense_model(6, 4, activation, dtype)
    x = np.random.default_rng(1).normal(size=(9, 6)).astype(dtype)
    layer = mlp.layers[0]
    y = layer.forward(x)
    assert y.shape == (9, 4) and y.dtype == dtype
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-13, "atol": 1e-14}
    np.testing.assert_allclose(y, activation.reference(x @ layer.weight + layer.bias), **tolerance)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=IDS)
def test_dense_gradients_match_finite_differences(activation, checked_gradient):
    model, mlp = dense_model(4, 3, activation)
    layer = mlp.layers[0]
    rng = np.random.default_rng(2)
    x = kink_free_rows(lambda x: ([mlp], reference_forward(mlp, x)[1]), rng, 5, 4)
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


def test_unknown_initialiser_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown initialiser 'lecun'"):
        init_weight((3, 3), "lecun", np.random.default_rng(0))


def test_mlp_init_zeroes_biases_and_scales_only_the_output_layer():
    sizes, activations = [5, 6, 4, 2], [Activation("tanh")] * 3
    plain, scaled = (FlatModel([MLP(sizes, activations, "m")]) for _ in range(2))
    plain.params[...] = scaled.params[...] = 1.0
    plain.parts[0].init(np.random.default_rng(0), "glorot_normal")
    scaled.parts[0].init(np.random.default_rng(0), "glorot_normal", output_gain=0.01)
    for p, s in zip(plain.parts[0].layers, scaled.parts[0].layers, strict=True):
        assert not p.bias.any() and not s.bias.any()
    np.testing.assert_array_equal(plain.parts[0].layers[0].weight, scaled.parts[0].layers[0].weight)
    np.testing.assert_allclose(scaled.parts[0].layers[-1].weight, 0.01 * plain.parts[0].layers[-1].weight)


def test_mlp_needs_one_activation_per_layer():
    with pytest.raises(ValueError, match="2 layers need as many activations, got 1"):
        MLP([3, 4, 2], [Activation("relu")], "m")


# ---------------------------------------------------------------- flat parameter vectors


def small_policy(sigma_mode: str = "relu", dtype=np.float64, seed: int = 0, **kwargs) -> GaussianPolicy:
    kwargs = {"trunk_sizes": (8, 7), "head_sizes": (6, 5), **kwargs}
    policy = GaussianPolicy(4, 2, sigma_mode=sigma_mode, dtype=dtype, rng=np.random.default_rng(seed), **kwargs)
    randomise_biases(policy, np.random.default_rng(seed + 100))
    if sigma_mode == "state_independent":
        policy.extra["log_std"][0][...] = [-0.3, 0.4]
    return policy


@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_named_params_are_views_of_params_in_forward_order(sigma_mode):
    policy = small_policy(sigma_mode)
    named = policy.named_params()
    heads = ["mu_head"] + (["sigma_head"] if sigma_mode != "state_independent" else [])
    sizes = {"trunk": [4, 8, 7], "mu_head": [7, 6, 5, 2], "sigma_head": [7, 6, 5, 2]}
    expected = {}
    for part in ["trunk", *heads]:
        s = sizes[part]
        for i in range(len(s) - 1):
            expected[f"{part}.{i}.weight"] = (s[i], s[i + 1])
            expected[f"{part}.{i}.bias"] = (s[i + 1],)
    if sigma_mode == "state_independent":
        expected["log_std"] = (2,)
    assert list(named) == list(expected)
    assert {name: view.shape for name, view in named.items()} == expected

    offset = 0
    for name, view in named.items():
        assert np.shares_memory(view, policy.params), name
        assert flat_offset(policy, view) == offset, name  # back to back, no gaps, in forward order
        offset += view.size
    assert offset == policy.params.size
    np.testing.assert_array_equal(np.concatenate([v.ravel() for v in named.values()]), policy.params)


@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_gradient_views_share_memory_with_grad_at_the_params_offsets(sigma_mode):
    policy = small_policy(sigma_mode)
    policy.params[...] = np.arange(policy.params.size)
    policy.grad[...] = np.arange(policy.params.size)
    for part in policy.parts:
        for layer in part.layers:
            assert np.shares_memory(layer.grad_weight, policy.grad)
            assert np.shares_memory(layer.grad_bias, policy.grad)
            np.testing.assert_array_equal(layer.grad_weight, layer.weight)
            np.testing.assert_array_equal(layer.grad_bias, layer.bias)
    for value, grad in policy.extra.values():
        assert np.shares_memory(grad, policy.grad)
        np.testing.assert_array_equal(grad, value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_set_params_keeps_views_valid(dtype):
    policy = small_policy("softplus", dtype)
    views = policy.named_params()
    params = policy.params
    new = np.random.default_rng(5).normal(size=params.size).astype(dtype)
    policy.set_params(new)
    assert policy.params is params
    np.testing.assert_array_equal(np.concatenate([v.ravel() for v in views.values()]), new)
    obs = np.random.default_rng(6).normal(size=(3, 4)).astype(dtype)
    mu, sigma = policy.distribution(obs)
    h = reference_forward(policy.trunk, obs)[0]
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12}
    np.testing.assert_allclose(mu, reference_forward(policy.mu_head, h)[0], **tolerance)
    np.testing.assert_allclose(sigma, reference_forward(policy.sigma_head, h)[0] + policy.sigma_min, **tolerance)
    assert policy.params.dtype == dtype and all(v.dtype == dtype for v in views.values())


def test_set_params_refuses_a_wrong_shape():
    policy = small_policy()
    with pytest.raises(ValueError, match="expected a parameter vector of shape"):
        policy.set_params(np.zeros(policy.params.size + 1))


# ---------------------------------------------------------------- whole networks against finite differences


@pytest.mark.parametrize(
    "activations",
    [
        ["elu", "relu", "tanh", "identity"],
        ["relu", "softplus", "elu-0.4", "relu"],
        ["tanh", "elu", "softplus", "softplus"],
    ],
)
def test_mlp_gradients_match_finite_differences(activations, checked_gradient):
    acts = [Activation("elu", 0.4) if a == "elu-0.4" else Activation(a) for a in activations]
    mlp = MLP([5, 8, 7, 6, 3], acts, "mlp")
    model = FlatModel([mlp])
    rng = np.random.default_rng(0)
    mlp.init(rng, "glorot_normal")
    randomise_biases(model, rng)
    x = kink_free_rows(lambda x: ([mlp], reference_forward(mlp, x)[1]), rng, 6, 5)
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


def policy_gradient_check(policy: GaussianPolicy, rows: int, indices_rng, checked_gradient):
    """d/dθ [sum(c_mu * mu) + sum(c_sigma * sigma)] against finite differences."""
    rng = np.random.default_rng(7)
    obs = kink_free_rows(lambda x: policy_preactivations(policy, x), rng, rows, policy.obs_dim)
    c_mu, c_sigma = rng.normal(size=(2, rows, policy.action_dim))

    def loss() -> float:
        mu, sigma = policy.forward(obs)
        return float(np.sum(c_mu * mu) + np.sum(c_sigma * sigma))

    policy.forward(obs)
    policy.grad[...] = np.nan
    policy.backward(c_mu, c_sigma)
    grad = policy.grad.copy()
    assert np.all(np.isfinite(grad))
    indices = None if indices_rng is None else spread_indices(policy, indices_rng)
    result = checked_gradient(loss, policy.params, grad, indices)
    assert result.max_rel_error < 1e-6, result
    assert_every_tensor_checked(policy, result)


@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_small_policy_gradients_match_finite_differences(sigma_mode, checked_gradient):
    policy_gradient_check(small_policy(sigma_mode), 6, None, checked_gradient)


@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_seed_sized_policy_gradients_match_finite_differences(sigma_mode, checked_gradient):
    policy = GaussianPolicy(8, 1, sigma_mode=sigma_mode, rng=np.random.default_rng(1))  # the seed's sizes
    randomise_biases(policy, np.random.default_rng(2))
    policy_gradient_check(policy, 8, np.random.default_rng(3), checked_gradient)


@pytest.mark.parametrize(("hidden_sizes", "subset"), [((8, 7, 6), False), ((100, 100, 100, 80, 40), True)])
def test_critic_gradients_match_finite_differences(hidden_sizes, subset, checked_gradient):
    critic = Critic(5, hidden_sizes, rng=np.random.default_rng(0))
    randomise_biases(critic, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    obs = kink_free_rows(lambda x: ([critic.mlp], reference_forward(critic.mlp, x)[1]), rng, 8, 5)
    weights = rng.normal(size=8)

    def loss() -> float:
        return float(weights @ critic.forward(obs))

    np.testing.assert_allclose(critic.value(obs), reference_forward(critic.mlp, obs)[0][:, 0], rtol=1e-12)
    critic.forward(obs)
    critic.grad[...] = np.nan
    critic.backward(weights)
    grad = critic.grad.copy()
    indices = spread_indices(critic, np.random.default_rng(3)) if subset else None
    result = checked_gradient(loss, critic.params, grad, indices)
    assert result.max_rel_error < 1e-6, result
    assert_every_tensor_checked(critic, result)


# ---------------------------------------------------------------- compiled row-by-row forward

ROW_TOLERANCES = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-13}}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_rows_equals_the_blas_forward(dtype):
    acts = [Activation("elu", 0.4), Activation("tanh"), Activation("relu"), Activation("softplus")]
    mlp = MLP([6, 9, 8, 7, 3], acts, "mlp")
    model = FlatModel([mlp], dtype=dtype)
    rng = np.random.default_rng(0)
    mlp.init(rng, "glorot_normal")
    randomise_biases(model, rng)
    x = rng.normal(size=(11, 6)).astype(dtype)
    out = np.empty((11, 3), dtype)
    forward_rows(model.params, mlp.layout(), mlp.alphas(), x, out)
    np.testing.assert_allclose(out, mlp.forward(x), **ROW_TOLERANCES[dtype])


@pytest.mark.parametrize("rows", [1, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_distribution_rows_equals_distribution(sigma_mode, dtype, rows):
    policy = small_policy(sigma_mode, dtype, hidden_activation="elu", elu_alpha=0.6, mu_activation="identity")
    obs = np.random.default_rng(1).normal(size=(rows, 4)).astype(dtype)
    mu_rows, sigma_rows = policy.distribution_rows(obs)
    mu, sigma = policy.distribution(obs)
    assert mu_rows.dtype == dtype and sigma_rows.dtype == dtype
    np.testing.assert_allclose(mu_rows, mu, **ROW_TOLERANCES[dtype])
    np.testing.assert_allclose(sigma_rows, sigma, **ROW_TOLERANCES[dtype])
