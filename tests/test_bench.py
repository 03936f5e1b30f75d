"""``npppo bench`` and ``scripts/sb3_compare.py``: what they write and how they refuse (no timings asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from npppo import bench

FIGURES = (
    "act_us", "update_gflops", "gemm_gflops", "update_flops", "update_s", "train_steps_per_s", "rollout_steps_per_s",
    "env_steps_per_s", "conwip_env_steps_per_s", "conwip_error", "peak_rss_mb", "rss_growth_mb", "import_s",
    "first_iteration_s", "compile_s", "workers_train_steps_per_s", "workers_rollout_steps_per_s",
    "workers_peak_rss_mb", "blas_threads", "dtype", "machine", "rollouts", "rollout_speedups",
)
SB3_COMPARE = Path(__file__).resolve().parents[1] / "scripts" / "sb3_compare.py"


def test_quick_bench_from_the_parent_of_a_folder_named_npppo_writes_every_figure(tmp_path):
    # a clone named npppo in the current folder must not shadow the installed package in the
    # benchmark's own processes (it used to be imported as an empty namespace package)
    (tmp_path / "npppo").mkdir()
    out = tmp_path / "bench.json"
    command = [str(Path(sys.executable).with_name("npppo")), "bench", "--quick", "--json", str(out)]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(FIGURES) <= set(result)
    assert all(result[name] > 0 for name in ("act_us", "update_gflops", "gemm_gflops", "train_steps_per_s",
                                             "compile_s", "workers_train_steps_per_s"))
    assert "training (env steps/s)" in proc.stdout
    assert set(result["rollouts"]) == {f"{preset}_{path}_{workers}w" for preset in ("seed", "pendulum")
                                       for path in ("gymnasium", "compiled") for workers in (1, 2)}
    assert all(value > 0 for value in result["rollouts"].values())
    assert "rollout alone, pendulum batch, 2 worker(s)" in proc.stdout


def test_update_flops_equal_a_hand_count_of_the_seed_layer_tables():
    agent = bench.seed_agent()
    # (fan_in, fan_out) of each layer: Pendulum's 3 observations, the seed's 100-80-70 trunk, its two
    # 60-50-1 heads, and its 100-100-100-80-40 critic with one output
    actor = [(3, 100), (100, 80), (80, 70), (70, 60), (60, 50), (50, 1), (70, 60), (60, 50), (50, 1)]
    critic = [(3, 100), (100, 100), (100, 100), (100, 80), (80, 40), (40, 1)]
    assert [tuple(row) for row in agent.policy.layers[["fan_in", "fan_out"]].tolist()] == actor
    assert [tuple(row) for row in agent.critic.layers[["fan_in", "fan_out"]].tolist()] == critic
    actor_macs = 3 * 100 + 100 * 80 + 80 * 70 + 2 * (70 * 60 + 60 * 50 + 50 * 1)  # 28,400 per row
    critic_macs = 3 * 100 + 2 * 100 * 100 + 100 * 80 + 80 * 40 + 40 * 1  # 31,540 per row
    rows, ends = 8000, 40
    # a step: forward, dW of every layer, dx of all but the first; 10 actor and 5 critic steps, after
    # the targets' critic forward over the batch and over the bootstrapped episode ends
    expected = 2 * (rows * 10 * (3 * actor_macs - 3 * 100) + rows * 5 * (3 * critic_macs - 3 * 100)
                    + (rows + ends) * critic_macs)
    assert bench._flops(bench._matmul_shapes(agent, rows, ends)) == expected == 21_636_763_200


def test_bench_refuses_an_unknown_flag_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--compare", "sb3"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "unrecognized arguments: --compare sb3" in error
    assert "scripts/sb3_compare.py" in error


@pytest.mark.parametrize("args", [[], ["--sb3-python", "no-such-venv/bin/python"]], ids=["omitted", "missing"])
def test_sb3_compare_without_an_sb3_interpreter_says_how_to_make_one_before_any_work(tmp_path, args):
    proc = subprocess.run([sys.executable, str(SB3_COMPARE), *args, "--json", str(tmp_path / "out.json")],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stdout == "" and proc.stderr.count("\n") == 1  # one line, and nothing measured
    assert proc.stderr.startswith("sb3_compare: error: --sb3-python")
    assert "pip install torch==2.13.0 stable-baselines3" in proc.stderr
    assert not (tmp_path / "out.json").exists()
