"""GaussianPolicy: its parameter layout, its forwards (BLAS, compiled rows, compiled acting) against the
NumPy reference (npppo.inference), and its backward against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_every_tensor_checked, kink_free_rows, randomise_biases, spread_indices

from npppo import presets
from npppo.config import SIGMA_MODES
from npppo.inference import mlp_forward, normalize_observations, tanh_squash
from npppo.nn.layers import ROWS_FORWARD_MAX
from npppo.normalization import RunningMeanStd
from npppo.policy import GaussianPolicy

TOLERANCES = {"float32": {"rtol": 2e-5, "atol": 2e-6}, "float64": {"rtol": 1e-12, "atol": 1e-13}}


@pytest.fixture
def small_policy(tiny_config):
    """``small_policy(sigma_mode, dtype, **changes)``: obs_dim 4, action_dim 2, non-zero biases and log std."""

    def make(sigma_mode: str = "relu", dtype: str = "float64", **changes) -> GaussianPolicy:
        config = tiny_config(trunk_sizes=[8, 7], head_sizes=[6, 5], sigma_mode=sigma_mode, dtype=dtype, **changes)
        policy = GaussianPolicy(4, 2, config, np.random.default_rng(0))
        randomise_biases(policy, np.random.default_rng(100))
        if sigma_mode == "state_independent":
            policy.extra["log_std"][0][...] = [-0.3, 0.4]
        return policy

    return make


def reference_distribution(policy: GaussianPolicy, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) in float64 from the policy's layer table and facts alone (npppo.inference's reading)."""
    params, table, facts = policy.params.astype(np.float64), policy.layers, policy.facts()

    def part(mlp, inputs):
        return mlp_forward(params, table[table["part"] == mlp.name], inputs)

    h = part(policy.trunk, x.astype(np.float64))
    mu = part(policy.mu_head, h)
    offset = facts["log_std_offset"]
    if offset is not None:
        return mu, np.broadcast_to(np.exp(params[offset : offset + policy.action_dim]), mu.shape)
    return mu, part(policy.sigma_head, h) + facts["sigma_min"]


@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_parameters_are_trunk_then_mu_head_then_sigma(sigma_mode, small_policy):
    policy = small_policy(sigma_mode, mu_activation="relu", actor_activation="elu")
    heads = [policy.mu_head] + ([] if sigma_mode == "state_independent" else [policy.sigma_head])
    expected = [f"{layer.name}.{kind}" for mlp in [policy.trunk, *heads] for layer in mlp.layers
                for kind in ("weight", "bias")] + (["log_std"] if sigma_mode == "state_independent" else [])
    assert list(policy.named_params()) == expected
    assert [len(mlp.layers) for mlp in [policy.trunk, *heads]] == [2, 3, 3][: 1 + len(heads)]
    # the optimizer groups: trunk and mu head, then the sigma head (or log std)
    start, stop = policy.mu_range
    assert (start, policy.sigma_range[1]) == (0, policy.params.size) and stop == policy.sigma_range[0]
    assert stop == policy.part_ranges[policy.mu_head.name][1]
    # the layer table: trunk (4 -> 8 -> 7), then each head (7 -> 6 -> 5 -> 2) with its output activation
    table, has_head = policy.layers, sigma_mode != "state_independent"
    assert table["fan_in"].tolist() == [4, 8, 7, 6, 5] + [7, 6, 5] * has_head
    assert table["fan_out"].tolist() == [8, 7, 6, 5, 2] + [6, 5, 2] * has_head
    assert table["activation"].tolist() == ["elu"] * 4 + ["relu"] + ["elu", "elu", sigma_mode] * has_head


@pytest.mark.parametrize("rows", [1, 7, ROWS_FORWARD_MAX + 1])  # the compiled rows, then BLAS
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_distribution_matches_the_numpy_reference(sigma_mode, dtype, rows, small_policy):
    policy = small_policy(sigma_mode, dtype, actor_activation="elu", elu_alpha=0.6)
    obs = np.random.default_rng(1).normal(size=(rows, 4)).astype(dtype)
    mu_ref, sigma_ref = reference_distribution(policy, obs)
    for mu, sigma in (policy.distribution(obs), policy.distribution_rows(obs)):
        assert mu.dtype == sigma.dtype == np.dtype(dtype) and mu.shape == sigma.shape == (rows, 2)
        np.testing.assert_allclose(mu, mu_ref, **TOLERANCES[dtype])
        np.testing.assert_allclose(sigma, sigma_ref, **TOLERANCES[dtype])
    mu, sigma = policy.distribution(obs)
    policy.distribution(2.0 * obs)
    np.testing.assert_allclose(mu, mu_ref, **TOLERANCES[dtype])  # fresh arrays, not layer buffers


@pytest.mark.parametrize("squash", ["clip", "tanh"])
@pytest.mark.parametrize("normalised", [False, True])
@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_act_rows_matches_the_numpy_reference(dtype, deterministic, normalised, squash, small_policy):
    # normalise (clipped), forward, sample, clip to the bounds or squash into them: the agent's acting in
    # one compiled call
    policy = small_policy("softplus", dtype)
    policy.action_squash = squash
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(9, 4)) * 3.0
    bounds = np.array([[-0.2, -1.0], [0.3, 1.0]])  # tight enough that some actions are clipped
    noise = np.zeros((0, 2)) if deterministic else rng.standard_normal((9, 2))
    x = obs
    stats = np.zeros((0, 4))
    if normalised:
        rms = RunningMeanStd((4,), clip=1.5)  # tight enough that some observations are clipped
        rms.update(rng.normal(size=(50, 4)) * 2.0 + 1.0)
        stats, x = rms.shift_scale(), normalize_observations(obs, rms.mean, rms.var, rms.clip)
        assert np.any(np.abs(x) == 1.5)
    actions = policy.act_rows(obs, stats, 1.5, noise, bounds)
    mu, sigma = reference_distribution(policy, x)
    u = mu if deterministic else mu + sigma * noise
    if squash == "tanh":
        expected = tanh_squash(u, bounds[0], bounds[1])
        assert np.all((expected > bounds[0]) & (expected < bounds[1]))
    else:
        expected = np.clip(u, bounds[0], bounds[1])
        assert np.any(expected == bounds[0]) or np.any(expected == bounds[1])
    assert actions.dtype == np.float64
    np.testing.assert_allclose(actions, expected, **TOLERANCES[dtype])


def policy_gradient_check(policy: GaussianPolicy, rows: int, indices, checked_gradient) -> None:
    """d/dθ [sum(c_mu * mu) + sum(c_sigma * sigma)] against finite differences."""
    rng = np.random.default_rng(7)
    obs = kink_free_rows(policy, policy.forward, rng.normal(size=(8 * rows, policy.obs_dim)), rows)
    c_mu, c_sigma = rng.normal(size=(2, rows, policy.action_dim))

    def loss() -> float:
        mu, sigma = policy.forward(obs)
        return float(np.sum(c_mu * mu) + np.sum(c_sigma * sigma))

    policy.forward(obs)
    policy.grad[...] = np.nan  # the backward must write every entry
    policy.backward(c_mu, c_sigma)
    grad = policy.grad.copy()
    assert np.all(np.isfinite(grad))
    result = checked_gradient(loss, policy.params, grad, indices)
    assert result.max_rel_error < 1e-6, result
    assert_every_tensor_checked(policy, result)


@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_small_policy_gradients_match_finite_differences(sigma_mode, small_policy, checked_gradient):
    policy_gradient_check(small_policy(sigma_mode, mu_activation="relu"), 6, None, checked_gradient)


@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_seed_sized_policy_gradients_match_finite_differences(sigma_mode, checked_gradient):
    config = presets.get("seed").replace(sigma_mode=sigma_mode, dtype="float64")
    policy = GaussianPolicy(8, 1, config, np.random.default_rng(1))
    randomise_biases(policy, np.random.default_rng(2))
    indices = spread_indices(policy, np.random.default_rng(3), total=200)
    policy_gradient_check(policy, 8, indices, checked_gradient)


# ---------------------------------------------------------------- the forward written out from the named parameters
# (independent of npppo.inference's activation table and layer-table reading)

ACT = {
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "softplus": lambda z: np.logaddexp(0.0, z),
    "identity": lambda z: z,
}


def written_out(params: dict, prefix: str, x: np.ndarray, hidden: str, output: str) -> np.ndarray:
    names = sorted({name.rsplit(".", 1)[0] for name in params if name.startswith(prefix + ".")},
                   key=lambda n: int(n.rsplit(".", 1)[1]))
    for k, layer in enumerate(names):
        x = ACT[output if k == len(names) - 1 else hidden](x @ params[f"{layer}.weight"] + params[f"{layer}.bias"])
    return x


@pytest.mark.parametrize(("sigma_mode", "mu_activation", "hidden"), [
    ("relu", "relu", "elu"), ("softplus", "identity", "tanh"), ("state_independent", "identity", "elu"),
])
def test_distribution_is_the_documented_forward(sigma_mode, mu_activation, hidden, tiny_config):
    config = tiny_config(trunk_sizes=[7, 6], head_sizes=[5], actor_activation=hidden, mu_activation=mu_activation,
                         sigma_mode=sigma_mode, sigma_min=0.05, log_std_init=-0.3, dtype="float64")
    policy = GaussianPolicy(4, 3, config, np.random.default_rng(1))
    params = policy.named_params()
    rng = np.random.default_rng(2)
    for view in params.values():  # nonzero biases and log-std, so that each one matters
        view[...] = rng.normal(size=view.shape)
    obs = rng.normal(size=(30, 4))
    h = written_out(params, "trunk", obs, hidden, hidden)
    mu = written_out(params, "mu_head", h, hidden, mu_activation)
    if sigma_mode == "state_independent":
        sigma = np.broadcast_to(np.exp(params["log_std"]), mu.shape)
    else:
        sigma = written_out(params, "sigma_head", h, hidden, sigma_mode) + 0.05
    for got_mu, got_sigma in (policy.distribution(obs), policy.distribution_rows(obs[:5])):
        rows = got_mu.shape[0]
        np.testing.assert_allclose(got_mu, mu[:rows], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got_sigma, sigma[:rows], rtol=1e-12, atol=1e-14)


def test_a_relu_sigma_head_is_floored_at_exactly_sigma_min(tiny_config):
    config = tiny_config(trunk_sizes=[8], head_sizes=[], sigma_mode="relu", sigma_min=1e-3, dtype="float64")
    policy = GaussianPolicy(3, 2, config, np.random.default_rng(0))
    _, sigma = policy.distribution(np.random.default_rng(1).normal(size=(200, 3)))
    assert sigma.min() == 1e-3 and np.mean(sigma == 1e-3) > 0.1
