"""Actor and critic losses: gradients through the whole networks against finite differences (float64)."""

import numpy as np
import pytest
from conftest import kink_free_rows, spread_indices

import npppo.losses
from npppo import presets
from npppo.config import SIGMA_MODES
from npppo.critic import Critic
from npppo.distributions import normal_log_density
from npppo.inference import gaussian_entropy, gaussian_log_prob, tanh_log_det
from npppo.losses import actor_loss_and_grad, clipped_surrogate_grad, critic_loss_and_grad
from npppo.policy import GaussianPolicy

CLIP = 0.2


def actor_problem(config, seed=0, ratios=None):
    """A float64 policy (obs_dim 5, action_dim 2) with actions sampled from it and chosen probability ratios."""
    rng = np.random.default_rng(seed)
    policy = GaussianPolicy(5, 2, config, np.random.default_rng(seed + 1))
    obs = kink_free_rows(policy, policy.forward, rng.normal(size=(10 * len(ratios), 5)), len(ratios))
    mu, sigma = policy.distribution(obs)
    actions = mu + sigma * rng.normal(size=mu.shape)
    # old log-probs that put each ratio r = π/π_old at the chosen value
    old_log_prob = gaussian_log_prob(actions, mu, sigma) - np.log(ratios)
    advantages = np.where(np.arange(len(ratios)) % 2 == 0, 1.0, -1.0) * rng.uniform(0.5, 2.0, len(ratios))
    return policy, obs, actions, old_log_prob, advantages


# ratios on both sides of the clip range [0.8, 1.2] and inside it, none near its edges
RATIOS = np.array([0.5, 0.6, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.5, 2.0, 0.7, 1.3])


def check_actor_gradient(problem, ent_coef, indices_seed, checked_gradient):
    policy, obs, actions, old_log_prob, advantages = problem
    _, grad = actor_loss_and_grad(policy, obs, actions, old_log_prob, advantages, CLIP, ent_coef)

    def f():
        return actor_loss_and_grad(policy, obs, actions, old_log_prob, advantages, CLIP, ent_coef)[0]

    indices = spread_indices(policy, np.random.default_rng(indices_seed), per_tensor=12)
    result = checked_gradient(f, policy.params, grad, indices)
    assert result.max_rel_error < 1e-6, result


@pytest.mark.parametrize("sigma_mode", SIGMA_MODES)
def test_actor_loss_gradient_matches_finite_differences(sigma_mode, tiny_config, checked_gradient):
    config = tiny_config(sigma_mode=sigma_mode, sigma_min=0.3, dtype="float64")
    check_actor_gradient(actor_problem(config, ratios=RATIOS), 0.05, 0, checked_gradient)


def test_actor_loss_gradient_of_the_seed_network_with_relu_outputs(checked_gradient):
    config = presets.get("seed").replace(sigma_min=0.3, dtype="float64")
    assert (config.mu_activation, config.sigma_mode) == ("relu", "relu")
    check_actor_gradient(actor_problem(config, seed=3, ratios=RATIOS), 1.0, 1, checked_gradient)


def surrogate_grad(ratio, advantage):
    """d L / d log π for one sample (N = 1) from the fused kernel."""
    actions = np.zeros((1, 1))
    mu = np.zeros((1, 1))
    sigma = np.ones((1, 1))
    logp = float(gaussian_log_prob(actions, mu, sigma)[0])
    grad_mu, grad_sigma, stats = np.empty((1, 1)), np.empty((1, 1)), np.zeros(4)
    loss = clipped_surrogate_grad(actions, mu, sigma, np.array([logp - np.log(ratio)]), np.array([advantage]),
                                  CLIP, 0.0, grad_mu, grad_sigma, stats, np.empty((0, 1)))
    # at a = mu, sigma = 1: d log π / d sigma = -1, so dL/dsigma = -dL/dlog π
    return loss, -grad_sigma[0, 0], stats


@pytest.mark.parametrize(
    ("ratio", "advantage", "gradient_flows"),
    [
        (1.1, 1.0, True),  # inside the clip range
        (1.5, 1.0, False),  # A > 0 and r > 1 + eps: clipped, no gradient
        (0.5, 1.0, True),  # A > 0 and r < 1 - eps: the unclipped term is the minimum
        (0.5, -1.0, False),  # A < 0 and r < 1 - eps: clipped
        (1.5, -1.0, True),  # A < 0 and r > 1 + eps: the unclipped term is the minimum
    ],
)
def test_clipped_surrogate_on_both_sides_of_the_clip(ratio, advantage, gradient_flows):
    loss, grad_log_prob, stats = surrogate_grad(ratio, advantage)
    clipped = np.clip(ratio, 1 - CLIP, 1 + CLIP)
    assert loss == pytest.approx(-min(ratio * advantage, clipped * advantage), rel=1e-12)
    expected = -advantage * ratio if gradient_flows else 0.0
    assert grad_log_prob == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert stats[2] == (1.0 if abs(ratio - 1) > CLIP else 0.0)  # clip fraction


@pytest.mark.parametrize(("ratio", "advantage"), [(1.25, 1.0), (0.75, -1.0)])
def test_a_ratio_exactly_at_the_clip_edge_keeps_its_gradient(ratio, advantage):
    """The edge belongs to the unclipped side (the module docstring): r <= 1+eps for A >= 0, r >= 1-eps for A < 0."""
    actions, mu, sigma = np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1))
    old_log_prob = np.array([normal_log_density(0.0, 0.0, 1.0) - np.log(ratio)])
    grad_mu, grad_sigma, stats = np.empty((1, 1)), np.empty((1, 1)), np.zeros(4)
    loss = clipped_surrogate_grad(actions, mu, sigma, old_log_prob, np.array([advantage]), 0.25, 0.0,
                                  grad_mu, grad_sigma, stats, np.empty((0, 1)))
    assert stats[3] == ratio  # the kernel's ratio is exactly 1 + eps or 1 - eps (these are exact in binary)
    assert loss == -ratio * advantage
    assert -grad_sigma[0, 0] == -advantage * ratio  # dL/dlog pi = -A r, as inside the range


def test_approx_kl_is_zero_when_policies_agree():
    _, _, stats = surrogate_grad(1.0, 1.0)
    assert stats[1] == pytest.approx(0.0, abs=1e-15)
    assert stats[3] == pytest.approx(1.0, rel=1e-15)


def critic_problem(config, seed=0, batch=10):
    rng = np.random.default_rng(seed)
    critic = Critic(6, config, np.random.default_rng(seed + 1))
    obs = kink_free_rows(critic, critic.forward, rng.normal(size=(20 * batch, 6)), batch)
    targets = rng.normal(size=batch)  # a loss of order 1 keeps round-off small
    return critic, obs, targets


def test_critic_loss_gradient_matches_finite_differences(tiny_config, checked_gradient):
    critic, obs, targets = critic_problem(tiny_config(dtype="float64"))
    loss, grad = critic_loss_and_grad(critic, obs, targets)
    assert loss == pytest.approx(np.mean((critic.value(obs) - targets) ** 2), rel=1e-12)
    result = checked_gradient(lambda: critic_loss_and_grad(critic, obs, targets)[0], critic.params, grad,
                              spread_indices(critic, np.random.default_rng(0), per_tensor=12))
    assert result.max_rel_error < 1e-6, result


def test_clipped_critic_loss_gradient_matches_finite_differences(tiny_config, checked_gradient):
    critic, obs, targets = critic_problem(tiny_config(dtype="float64"), seed=4)
    values = critic.value(obs)
    # old values on both sides, none within the finite-difference step of the clip edge
    old_values = values + np.where(np.arange(values.size) % 2 == 0, 0.5, -0.05)
    loss, grad = critic_loss_and_grad(critic, obs, targets, old_values, value_clip=0.2)
    clipped = old_values + np.clip(values - old_values, -0.2, 0.2)
    assert loss == pytest.approx(np.mean(np.maximum((values - targets) ** 2, (clipped - targets) ** 2)), rel=1e-12)

    def f():
        return critic_loss_and_grad(critic, obs, targets, old_values, value_clip=0.2)[0]

    result = checked_gradient(f, critic.params, grad, spread_indices(critic, np.random.default_rng(2), per_tensor=12))
    assert result.max_rel_error < 1e-6, result


def test_loss_functions_return_gradients_shaped_like_params(tiny_config):
    config = tiny_config(dtype="float64")
    policy, obs, actions, old_log_prob, advantages = actor_problem(config, ratios=RATIOS)
    _, grad = actor_loss_and_grad(policy, obs, actions, old_log_prob, advantages, CLIP, 0.0)
    assert grad.shape == policy.params.shape
    critic, obs, targets = critic_problem(config)
    _, grad = critic_loss_and_grad(critic, obs, targets)
    assert grad.shape == critic.params.shape


def reference_clipped_surrogate_grad(actions, mu, sigma, old_log_prob, advantages, clip_eps, ent_coef,
                                     squash_bounds=None):
    """(loss, dL/dmu, dL/dsigma, stats) of :func:`clipped_surrogate_grad` in plain NumPy."""
    n = actions.shape[0]
    log_prob = gaussian_log_prob(actions, mu, sigma)
    if squash_bounds is not None:
        log_prob = log_prob - tanh_log_det(actions, squash_bounds[0], squash_bounds[1])
    entropy = gaussian_entropy(sigma)
    log_ratio = log_prob - old_log_prob
    ratio = np.exp(log_ratio)
    clipped_ratio = np.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = -np.mean(np.minimum(ratio * advantages, clipped_ratio * advantages) + ent_coef * entropy)
    unclipped = np.where(advantages >= 0, ratio <= 1.0 + clip_eps, ratio >= 1.0 - clip_eps)
    grad_log_prob = np.where(unclipped, -advantages * ratio / n, 0.0)[:, None]
    diff = actions - mu  # d log pi / d mu = diff / sigma^2, d log pi / d sigma = diff^2 / sigma^3 - 1 / sigma
    grad_mu = grad_log_prob * diff / sigma**2
    grad_sigma = grad_log_prob * (diff**2 / sigma**3 - 1.0 / sigma) - ent_coef / (n * sigma)
    stats = np.array([entropy.mean(), np.mean((ratio - 1.0) - log_ratio),
                      np.mean(np.abs(ratio - 1.0) > clip_eps), ratio.mean()])
    return loss, grad_mu, grad_sigma, stats


@pytest.mark.parametrize("squash", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clipped_surrogate_kernel_matches_numpy_reference(dtype, squash):
    rng = np.random.default_rng(5)
    n, dims = 64, 3
    mu = rng.normal(size=(n, dims))
    sigma = rng.uniform(0.3, 2.0, size=(n, dims))
    actions = mu + sigma * rng.normal(size=(n, dims))
    bounds = np.array([[-1.0, -2.0, 0.0], [1.0, 0.5, 3.0]]) if squash else None
    old_log_prob = gaussian_log_prob(actions, mu, sigma) - np.log(rng.uniform(0.5, 1.6, size=n))
    if squash:
        old_log_prob -= tanh_log_det(actions, *bounds)
    advantages = rng.normal(size=n)
    args = [x.astype(dtype) for x in (actions, mu, sigma, old_log_prob, advantages)]
    grad_mu, grad_sigma, stats = np.empty((n, dims), dtype), np.empty((n, dims), dtype), np.zeros(4)
    loss = clipped_surrogate_grad(*args, CLIP, 0.03, grad_mu, grad_sigma, stats,
                                  bounds if squash else np.empty((0, dims)))
    ref_loss, ref_mu, ref_sigma, ref_stats = reference_clipped_surrogate_grad(
        *[x.astype(np.float64) for x in args], CLIP, 0.03, bounds)
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss, ref_loss, **tol)
    np.testing.assert_allclose(grad_mu, ref_mu, **tol)
    np.testing.assert_allclose(grad_sigma, ref_sigma, **tol)
    np.testing.assert_allclose(stats, ref_stats, **tol)
    if squash:  # the ratios of the squashed actions are those of their pre-squash samples
        np.testing.assert_allclose(ref_stats[3], np.mean(np.exp(gaussian_log_prob(actions, mu, sigma) - (
            old_log_prob + tanh_log_det(actions, *bounds)))), **tol)


def squashed_actor_problem(config, seed=0):
    """:func:`actor_problem` for a tanh-squashed policy with bounds [-1, 1] x [0, 3]: the batch stores u,
    and the old log-probabilities are those of the squashed actions."""
    policy, obs, actions, old_log_prob, advantages = actor_problem(config, seed, ratios=RATIOS)
    bounds = np.array([[-1.0, 0.0], [1.0, 3.0]])
    actions = actions * 2.0  # some samples deep in tanh's saturation
    mu, sigma = policy.distribution(obs)
    old_log_prob = gaussian_log_prob(actions, mu, sigma) - tanh_log_det(actions, *bounds) - np.log(RATIOS)
    return policy, obs, actions, old_log_prob, advantages, bounds


@pytest.mark.parametrize("sigma_mode", ["softplus", "state_independent"])
def test_squashed_actor_loss_gradient_matches_finite_differences(sigma_mode, tiny_config, checked_gradient):
    config = tiny_config(sigma_mode=sigma_mode, sigma_min=0.3, dtype="float64", action_squash="tanh")
    policy, obs, actions, old_log_prob, advantages, bounds = squashed_actor_problem(config)
    _, grad = actor_loss_and_grad(policy, obs, actions, old_log_prob, advantages, CLIP, 0.05, bounds)

    def f():
        return actor_loss_and_grad(policy, obs, actions, old_log_prob, advantages, CLIP, 0.05, bounds)[0]

    result = checked_gradient(f, policy.params, grad, spread_indices(policy, np.random.default_rng(3), per_tensor=12))
    assert result.max_rel_error < 1e-6, result
    # the correction depends on u alone: it cancels in the ratio, so the loss and gradient are those of the
    # unsquashed Gaussian with the correction taken out of the old log-probabilities
    unsquashed_old = old_log_prob + tanh_log_det(actions, *bounds)
    loss_plain, grad_plain = actor_loss_and_grad(policy, obs, actions, unsquashed_old, advantages, CLIP, 0.05)
    np.testing.assert_allclose(grad_plain, grad, rtol=1e-9, atol=1e-12)
    assert loss_plain == pytest.approx(f(), rel=1e-9)


def test_actor_loss_in_row_blocks_equals_one_pass_and_threads_change_no_bit(tiny_config):
    from concurrent.futures import ThreadPoolExecutor

    from npppo.losses import BLOCK_ROWS, actor_loss_blocks, actor_loss_terms
    from npppo.policy import GaussianPolicy

    policy = GaussianPolicy(3, 2, tiny_config(sigma_mode="softplus", dtype="float64"), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    n = 2 * BLOCK_ROWS + 7  # three blocks
    obs, actions = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    old_log_prob, advantages = rng.normal(size=n) - 2.0, rng.normal(size=n)
    whole = actor_loss_terms(policy, obs, actions, old_log_prob, advantages, 0.2, 0.01)
    whole_grad = policy.grad.copy()
    twins = [policy, policy.twin(), policy.twin()]
    blocks = actor_loss_blocks(twins, obs, actions, old_log_prob, advantages, 0.2, 0.01)
    np.testing.assert_allclose(policy.grad, whole_grad, rtol=1e-10, atol=1e-14)
    for name in ("loss", "entropy", "approx_kl", "clip_fraction", "ratio", "sigma_mean"):
        assert getattr(blocks, name) == pytest.approx(getattr(whole, name), rel=1e-12), name
    serial_grad = policy.grad.copy()
    with ThreadPoolExecutor(2) as pool:
        actor_loss_blocks(twins, obs, actions, old_log_prob, advantages, 0.2, 0.01, pool.map)
    np.testing.assert_array_equal(policy.grad, serial_grad)


def test_critic_loss_in_row_blocks_equals_one_pass_and_threads_change_no_bit(tiny_config):
    from concurrent.futures import ThreadPoolExecutor

    from npppo.critic import Critic
    from npppo.losses import BLOCK_ROWS, critic_loss_blocks, critic_loss_terms

    critic = Critic(3, tiny_config(dtype="float64"), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    n = BLOCK_ROWS + 5  # two blocks
    obs, targets = rng.normal(size=(n, 3)), rng.normal(size=n)
    old_values = critic.value(obs) + 0.05 * rng.normal(size=n)
    for value_clip in (None, 0.02):
        whole = critic_loss_terms(critic, obs, targets, old_values, value_clip)
        whole_grad = critic.grad.copy()
        twins = [critic, critic.twin()]
        blocks = critic_loss_blocks(twins, obs, targets, old_values, value_clip)
        assert blocks == pytest.approx(whole, rel=1e-12)
        np.testing.assert_allclose(critic.grad, whole_grad, rtol=1e-10, atol=1e-14)
        serial_grad = critic.grad.copy()
        with ThreadPoolExecutor(2) as pool:
            assert critic_loss_blocks(twins, obs, targets, old_values, value_clip, pool.map) == blocks
        np.testing.assert_array_equal(critic.grad, serial_grad)


def test_the_clipped_critic_loss_takes_the_larger_of_the_two_squared_errors_row_by_row(tiny_config):
    from npppo.critic import Critic
    from npppo.losses import critic_loss_terms

    critic = Critic(3, tiny_config(dtype="float64"), np.random.default_rng(0))
    obs = np.random.default_rng(1).normal(size=(4, 3))
    values = critic.value(obs)
    old = values - np.array([0.5, -0.5, 0.05, 0.3])  # V - V_old: outside, outside, inside, outside the clip 0.1
    targets = values - np.array([0.5, 0.2, -0.4, -0.1])  # e = V - G
    error = values - targets
    clipped = old + np.clip(values - old, -0.1, 0.1) - targets
    expected = np.mean(np.maximum(error**2, clipped**2))
    assert critic_loss_terms(critic, obs, targets, old, 0.1) == pytest.approx(expected, rel=1e-12)
    assert expected != pytest.approx(np.mean(error**2))  # the clip matters in this case


@pytest.mark.parametrize("log_std", [-12.0, -20.0])
@pytest.mark.parametrize("normalize_obs", [False, True])
def test_float32_ratio_at_theta_old_is_one_even_for_a_tiny_sigma(log_std, normalize_obs):
    """σ is learned and can shrink below any initial bound: at log σ = -12 and -20 a float32 policy's
    update still sees r = 1 at θold (the log-density in float64, from the stored float64 actions and the
    rollout's own μ), not the rounding of the action or of the batched forward."""
    from npppo import PPO, PPOConfig

    config = PPOConfig(log_std_init=log_std, dtype="float32", steps_per_batch=300, num_envs=2,
                       normalize_obs=normalize_obs, trunk_sizes=[16, 16])
    agent = PPO("Pendulum-v1", config, seed=1)
    agent.learn(300)  # one update first: the statistics and parameters are no longer the initial ones
    batch = agent.collect()
    obs = agent.normalize_obs(batch.obs)
    for rows in (slice(None), slice(0, 64)):  # the full batch and a minibatch
        _, sigma = agent.policy.forward(obs[rows])
        assert np.log(sigma).max() < log_std + 0.1
        info = npppo.losses.actor_loss_terms(agent.policy, obs[rows], batch.actions[rows], batch.log_prob[rows],
                                             np.ones(sigma.shape[0], np.float32), CLIP, 0.0)
        # approx KL = mean((r - 1) - log r) ≈ mean((log r)^2) / 2: below 1e-20 every |log r| is below ~1e-9
        assert info.approx_kl < 1e-20
        assert abs(info.ratio - 1.0) < 1e-12 and info.clip_fraction == 0.0


def test_value_clip_is_the_max_form():
    """max((V - G)², (V' - G)²) (CleanRL's clip_vloss, OpenAI baselines), not the clipped term alone (SB3)."""
    critic = Critic(3, presets.get("pendulum").replace(dtype="float64"), np.random.default_rng(0))
    obs = np.random.default_rng(1).normal(size=(6, 3))
    values = critic.value(obs)
    old_values = values + np.array([1.0, -1.0, 1.0, -1.0, 0.01, 0.0])  # V moved from V_old by these
    targets = values + np.array([2.0, -2.0, -2.0, 2.0, 0.5, 0.5])
    clipped = old_values + np.clip(values - old_values, -0.1, 0.1)
    expected = np.mean(np.maximum((values - targets) ** 2, (clipped - targets) ** 2))
    assert critic_loss_and_grad(critic, obs, targets, old_values, value_clip=0.1)[0] == pytest.approx(expected)
    assert expected != pytest.approx(np.mean((clipped - targets) ** 2))
