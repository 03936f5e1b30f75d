"""``npppo train --seeds``: one run per seed in OUT/seed_S, never more processes than cores, and
``npppo plot OUT`` drawing them all (issue 14, point 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from configs_for_tests import SMALL

from npppo.checkpoint import read_checkpoint
from npppo.cli import main
from npppo.errors import NpppoError
from npppo.plotting import expand_runs
from npppo.progress import read_progress
from npppo.seeds import seed_plan

TINY = {**SMALL, "actor_epochs": 1, "critic_epochs": 1}


@pytest.fixture
def config(config_file):
    return config_file(**TINY)


def seeds(config, out, *extra: str) -> int:
    return main(["train", "--env", "Pendulum-v1", "--config", config, "--max-episode-steps", "20", "--steps", "80",
                 "--eval-episodes", "1", "--out", str(out), *extra])


@pytest.mark.parametrize(("runs", "workers", "parallel", "cores", "plan"), [
    (3, "auto", None, 2, (2, 1)),  # auto: one core per run, two side by side
    (1, "auto", None, 2, (1, 2)),  # one run gets both cores as workers
    (3, 1, None, 2, (2, 1)),
    (3, 2, None, 2, (1, 2)),  # two workers per run: one run at a time
    (3, 2, None, 8, (3, 2)),
    (4, "auto", 1, 2, (1, 2)),
    (2, 1, 1, 2, (1, 1)),
])
def test_seed_plan_never_runs_more_processes_than_cores(runs, workers, parallel, cores, plan):
    assert seed_plan(runs, workers, parallel, cores) == plan
    assert plan[0] * plan[1] <= cores


def test_seed_plan_refuses_more_processes_than_cores():
    with pytest.raises(NpppoError, match=r"--parallel 2 runs × --workers 2 = 4 processes, more than the 2 usable"):
        seed_plan(3, 2, 2, 2)


def test_seeds_run_side_by_side_each_in_its_folder_and_plot_draws_them_all(config, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr("npppo.backends.usable_cores", lambda: 2)
    out = tmp_path / "three"
    assert seeds(config, out, "--seeds", "0", "1", "2") == 0
    printed = capsys.readouterr().out
    assert "training seeds 0 1 2 (2 side by side, 1 worker each)" in printed
    runs = expand_runs([out])
    assert [run.name for run in runs] == ["seed_0", "seed_1", "seed_2"]
    returns = []
    for seed, run in enumerate(runs):
        assert {"model.npz", "checkpoint.npz", "progress.csv", "config.json", "train.log"} <= {
            p.name for p in run.iterdir()}
        assert f"seed {seed}," in (run / "train.log").read_text()
        assert f"seed {seed}: evaluation: return" in printed
        returns.append([row["return_mean"] for row in read_progress(run / "progress.csv")[0]])
    assert returns[0] != returns[1]  # different seeds, different runs
    assert main(["plot", str(out)]) == 0
    assert f"wrote {out / 'returns.png'} (3 runs)" in capsys.readouterr().out


def test_seeds_one_after_another_in_this_process(config, tmp_path, capsys):
    out = tmp_path / "two"
    assert seeds(config, out, "--seeds", "4", "5", "--parallel", "1", "--workers", "1") == 0
    printed = capsys.readouterr().out
    assert "training seeds 4 5 (one after another, 1 worker each)" in printed
    assert printed.count("evaluation: return") == 2
    assert sorted(p.name for p in out.iterdir()) == ["seed_4", "seed_5", "seeds.json"]


def test_seeds_refuse_a_folder_that_already_holds_one_of_the_runs(config, tmp_path, capsys):
    out = tmp_path / "again"
    (out / "seed_1").mkdir(parents=True)
    (out / "seed_1" / "checkpoint.npz").write_bytes(b"")
    assert seeds(config, out, "--seeds", "0", "1") == 1
    assert "seed_1 already holds a run" in capsys.readouterr().err
    assert not (out / "seed_0").exists()


def test_sigterm_to_a_batch_side_by_side_is_passed_on_and_each_run_saves(config, tmp_path):
    out = tmp_path / "batch"
    environment = {**os.environ, "NPPPO_TEST_SLEEP": "0.002"}  # SlowPendulum: slow enough to stop half-way
    batch = subprocess.Popen(
        [sys.executable, "-m", "npppo.cli", "train", "--env", "envs_for_tests:SlowPendulum-v0", "--config", config,
         "--steps", "100000", "--checkpoint-every", "1000", "--seeds", "0", "1", "--parallel", "2", "--workers", "1",
         "--out", str(out)], cwd=Path(__file__).parent, env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    progress = [out / f"seed_{seed}" / "progress.csv" for seed in (0, 1)]
    deadline = time.monotonic() + 90
    while not all(path.exists() and len(path.read_text().splitlines()) > 1 for path in progress):
        assert batch.poll() is None and time.monotonic() < deadline, batch.communicate()
        time.sleep(0.05)
    batch.terminate()
    _, stderr = batch.communicate(timeout=60)
    assert batch.returncode == 143, stderr
    for path in progress:
        log = (path.parent / "train.log").read_text()
        saved = read_checkpoint(path.parent / "checkpoint.npz")[1]["iteration"]
        assert f"npppo: interrupted by SIGTERM; saved iteration {saved}" in log
        assert f"resume with: npppo train --resume {path.parent}" in log


SLOW_SCRIPT = textwrap.dedent("""
    import sys
    import time

    import gymnasium as gym

    from npppo.cli import main

    class Slow(gym.Wrapper):  # slow enough to be interrupted half-way
        def step(self, action):
            time.sleep(0.003)
            return self.env.step(action)

    # at module level: the side-by-side seed processes (spawn) import this script too
    gym.register("SlowPendulumForSeedTests-v0",
                 entry_point=lambda **_: Slow(gym.make("Pendulum-v1", max_episode_steps=20)))
    if __name__ == "__main__":
        sys.exit(main())
""")


def test_ctrl_c_on_a_seeds_batch_says_each_seeds_state_and_resume_finishes_them_all(config, tmp_path):
    """Issue 22, point 3: with 2 side by side, Ctrl-C (SIGINT to the process group, as a terminal
    sends it) saves seeds 0 and 1 and names seed 2 as not started; --resume OUT resumes the two and
    starts the third."""
    script = tmp_path / "train_seeds.py"
    script.write_text(SLOW_SCRIPT)
    out = tmp_path / "batch"
    total = 40 * 40  # 40 iterations of 2 episodes of 20 steps
    command = [sys.executable, str(script), "train", "--env", "SlowPendulumForSeedTests-v0", "--config", config,
               "--steps", str(total), "--eval-episodes", "1", "--checkpoint-every", "1", "--workers", "1",
               "--parallel", "2", "--out", str(out)]
    process = subprocess.Popen([*command, "--seeds", "0", "1", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not all((out / f"seed_{s}" / "checkpoint.npz").exists() for s in (0, 1)):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert any(line.startswith("seed 0: interrupted; iteration ") and line.endswith(" saved") for line in lines), stderr
    assert any(line.startswith("seed 1: interrupted; iteration ") for line in lines), stderr
    assert "seed 2: not started (or interrupted before its first iteration): nothing saved" in lines
    assert lines[-1].endswith(f"npppo train --resume {out}")
    assert not (out / "seed_2" / "checkpoint.npz").exists()

    resumed = subprocess.run([sys.executable, str(script), "train", "--resume", str(out), "--workers", "1",
                              "--parallel", "2"], capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming seeds 0 from its checkpoint, 1 from its checkpoint, 2 from the start" in resumed.stdout
    for seed in (0, 1, 2):
        rows, _ = read_progress(out / f"seed_{seed}" / "progress.csv")
        assert [int(row["iteration"]) for row in rows] == list(range(1, 41)), seed
        assert (out / f"seed_{seed}" / "model.npz").is_file()
    again = subprocess.run([sys.executable, str(script), "train", "--resume", str(out)], capture_output=True,
                           text=True, timeout=120, check=False)
    assert again.returncode == 1 and "every seed in" in again.stderr and "nothing to do" in again.stderr
