"""Smoke test of the benchmark's smallest setting: it runs and its JSON holds every figure (no timings asserted)."""

from __future__ import annotations

import json

from npppo import bench

FIGURES = (
    "act_us", "act_sample_value_us", "update_gflops", "gemm_gflops", "update_s", "train_steps_per_s",
    "env_steps_per_s", "peak_rss_mb", "rss_growth_mb", "import_s", "first_iteration_s", "compile_s",
    "blas_threads", "dtype", "machine", "targets",
)


def test_quick_bench_writes_every_figure(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert set(FIGURES) <= set(result)
    assert all(result[name] > 0 for name in ("act_us", "update_gflops", "gemm_gflops", "train_steps_per_s"))
    assert {"update_gflops", "train_steps_per_s", "act_us", "import_s"} <= set(result["targets"])
    assert "training (env steps/s)" in capsys.readouterr().out


def test_update_flops_count_the_seed_networks_products():
    agent = bench._seed_agent()
    shapes = bench._matmul_shapes(agent, 8000, 0)
    # actor: forward + dW for every layer, dx for all but the trunk's first; critic likewise
    actor = sum(layer.fan_in * layer.fan_out for mlp in (agent.policy.trunk, agent.policy.mu_head,
                                                          agent.policy.sigma_head) for layer in mlp.layers)
    first = agent.policy.trunk.layers[0]
    critic = sum(layer.fan_in * layer.fan_out for layer in agent.critic.mlp.layers)
    first_critic = agent.critic.mlp.layers[0]
    expected = 2 * 8000 * (10 * (3 * actor - first.fan_in * first.fan_out)
                           + 5 * (3 * critic - first_critic.fan_in * first_critic.fan_out) + critic)
    assert bench._flops(shapes) == expected
