"""The ``npppo`` command line: train / eval / plot / bench, progress output, Ctrl-C and --resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest
from configs_for_tests import SMALL

from npppo import PPOConfig, presets
from npppo.checkpoint import read_checkpoint
from npppo.cli import _fresh, build_parser, main
from npppo.progress import ProgressLine, read_progress
from npppo.threads import ENV_VARS

ENV_ID = "ShortPendulumForCliTests-v0"  # Pendulum-v1 cut to 20-step episodes
TINY = {**SMALL, "mu_activation": "identity", "sigma_mode": "state_independent", "normalize_obs": True}
STEPS_PER_ITERATION = 40
REGISTER = textwrap.dedent(f"""
    import time
    import gymnasium as gym

    class Slow(gym.Wrapper):  # slow enough that a test can interrupt the run half-way
        def step(self, action):
            time.sleep(SLEEP)
            return self.env.step(action)

    if "{ENV_ID}" not in gym.registry:
        gym.register("{ENV_ID}", entry_point=lambda **_: Slow(gym.make("Pendulum-v1", max_episode_steps=20)))
""")


@pytest.fixture(autouse=True)
def short_pendulum():
    exec(REGISTER, {"SLEEP": 0.0})
    environment = {name: os.environ.get(name) for name in ENV_VARS}
    yield
    for name, value in environment.items():  # `train --threads` sets these: give them back
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def tiny_config(config_file):  # here: the path of a tiny config file
    return config_file(**TINY)


def train(tiny_config, out, *extra: str) -> int:
    # one worker: the test environment is registered in this process only (worker processes would not see it)
    return main(["train", "--env", ENV_ID, "--config", tiny_config, "--out", str(out), "--workers", "1", *extra])


def test_train_writes_progress_config_and_checkpoints(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    assert train(tiny_config, out, "--steps", "120", "--checkpoint-every", "2") == 0
    printed = capsys.readouterr().out
    assert "evaluation: return" in printed and "over 10 episodes" in printed and str(out / "model.npz") in printed
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json", "model.npz", "progress.csv",
                                                     "run.json"]
    rows, fields = read_progress(out / "progress.csv")
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3]
    assert {"steps", "return_mean", "approx_kl", "explained_variance", "steps_per_s"} <= set(fields)
    assert PPOConfig.from_json(out / "config.json") == presets.get("pendulum").replace(**TINY)
    _, meta = read_checkpoint(out / "checkpoint.npz")
    assert meta["iteration"] == 3 and meta["run"] == {
        "env": ENV_ID, "preset": "tiny", "total_steps": 120, "checkpoint_every": 2, "eval_every": None,
        "eval_episodes": 10}
    assert "iter    3  steps 120/120" in printed  # not a terminal: one plain line per iteration


@pytest.mark.parametrize("extra", [(), ("--eval-every", "40")], ids=["at-the-end", "every-iteration"])
def test_the_final_evaluation_printed_is_the_saved_policys(tmp_path, tiny_config, capsys, extra):
    """Without --eval-every the run evaluates once at its end; with it, the last iteration's
    evaluation is reused. Either way the printed return is the saved model's."""
    from npppo import PPO

    out = tmp_path / "run"
    assert train(tiny_config, out, "--steps", "80", *extra) == 0
    mean, std = PPO.load(out / "model.npz", env=ENV_ID).evaluate(10)
    assert np.isfinite(mean)
    assert f"evaluation: return {mean:.1f} ± {std:.1f} over 10 episodes" in capsys.readouterr().out


@pytest.mark.parametrize(("every", "evaluated"), [("70", [False, True, False, True]),
                                                  ("200", [False, False, False, True])])
def test_evaluations_at_each_multiple_of_eval_every_passed_and_at_the_last_iteration(tmp_path, tiny_config, every,
                                                                                     evaluated):
    """40 steps an iteration, 160 in all. --eval-every 70: after 80 steps (past 70; the next point is
    then 140, the first multiple of 70 above 80) and after 160. --eval-every 200 reaches no multiple,
    but the last iteration (steps == total steps exactly) is evaluated."""
    out = tmp_path / "run"
    assert train(tiny_config, out, "--steps", "160", "--eval-every", every) == 0
    rows, _ = read_progress(out / "progress.csv")
    assert [row["steps"] for row in rows] == ["40", "80", "120", "160"]
    assert [not np.isnan(float(row["eval_mean"])) for row in rows] == evaluated
    assert (out / "best.npz").is_file()


def test_train_without_arguments_means_the_pendulum_preset_on_pendulum(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent, out, run = _fresh(build_parser().parse_args(["train"]))
    assert run.to_dict() == {"env": "Pendulum-v1", "preset": "pendulum", "total_steps": 100_000, "checkpoint_every": 10,
                   "eval_every": None, "eval_episodes": 10}
    assert agent.config == presets.get("pendulum") and agent.seed == 0
    assert out.parent.name == "runs" and out.name.startswith("Pendulum-v1-pendulum-0-")
    assert not out.exists()


@pytest.mark.parametrize("preset, steps", [("pendulum", 100_000), ("seed", 400_000), ("lunarlander", 1_000_000)])
def test_each_preset_has_a_default_step_count(preset, steps):
    assert presets.load(preset)[1]["steps"] == steps


def test_resume_with_more_steps_extends_a_finished_run(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    assert train(tiny_config, out, "--steps", "80") == 0
    assert main(["train", "--resume", str(out), "--steps", "160", "--workers", "1"]) == 0
    assert "resumed at iteration 2" in capsys.readouterr().out
    rows, _ = read_progress(out / "progress.csv")
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3, 4]
    assert read_checkpoint(out / "model.npz")[1]["run"]["total_steps"] == 160


def test_resume_refuses_settings_that_would_change_the_run(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    assert train(tiny_config, out, "--steps", "40") == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--seed", "4"]) == 1
    assert "drop --seed" in capsys.readouterr().err


def test_ctrl_c_saves_the_last_iteration_and_resume_finishes_the_run_exactly(tmp_path, tiny_config):
    iterations = 40
    total = str(iterations * STEPS_PER_ITERATION)
    script = tmp_path / "train_slowly.py"
    script.write_text("SLEEP = 0.002\n" + REGISTER + "import sys\nfrom npppo.cli import main\n"
                      "if __name__ == '__main__':\n    sys.exit(main())\n")
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        [sys.executable, str(script), "train", "--env", ENV_ID, "--config", tiny_config, "--out", str(interrupted),
         "--steps", total, "--checkpoint-every", "1000", "--seed", "7", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    progress = interrupted / "progress.csv"
    deadline = time.monotonic() + 60
    while not (progress.exists() and len(progress.read_text().splitlines()) > 3):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"resume with: npppo train --resume {interrupted}" in stderr.strip().splitlines()[-1]
    _, meta = read_checkpoint(interrupted / "checkpoint.npz")
    rows, _ = read_progress(progress)
    assert 3 <= meta["iteration"] < iterations and len(rows) - meta["iteration"] in (0, 1)

    assert main(["train", "--resume", str(interrupted), "--workers", "1"]) == 0
    straight = tmp_path / "straight"
    assert train(tiny_config, straight, "--steps", total, "--seed", "7") == 0
    resumed_model, _ = read_checkpoint(interrupted / "model.npz")
    straight_model, _ = read_checkpoint(straight / "model.npz")
    for name in ("policy.params", "critic.params", "obs_rms.mean", "obs_rms.var"):
        assert np.array_equal(resumed_model[name], straight_model[name]), name
    resumed_rows, _ = read_progress(progress)
    straight_rows, _ = read_progress(straight / "progress.csv")
    assert [r["return_mean"] for r in resumed_rows] == [r["return_mean"] for r in straight_rows]


def test_eval_prints_mean_and_std_of_the_deterministic_policy(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    assert train(tiny_config, out, "--steps", "40") == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"{out / 'model.npz'} on {ENV_ID}: return " in printed and "± " in printed and "over 3 episodes" in printed


def test_bench_forwards_its_arguments(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "npppo.bench", types.SimpleNamespace(main=lambda argv: calls.append(argv) or 0))
    assert main(["bench", "--quick", "--help"]) == 0
    assert calls == [["--quick", "--help"]]


@pytest.mark.parametrize("command", ["train", "eval", "plot"])
def test_each_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_progress_line_rewrites_itself_on_a_terminal_and_prints_lines_otherwise():
    metrics = [{"iteration": i, "steps": 100 * i, "return_mean": -500.0 + i} for i in (1, 2)]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, live in ((Terminal(), True), (io.StringIO(), False)):
        line = ProgressLine(200, stream=stream)
        for m in metrics:
            line.update(m)
        line.close()
        text = stream.getvalue()
        assert ("\r" in text) == live
        assert text.count("\n") == (1 if live else 2)
        assert "steps 200/200" in text and "return    -498.0" in text and "steps/s" in text and "left" in text


def test_config_file_in_preset_form_supplies_env_and_steps(tmp_path):
    preset_like = {"env": ENV_ID, "steps": 80, "config": presets.get("pendulum").replace(**TINY).to_dict()}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(preset_like))
    _, _, run = _fresh(build_parser().parse_args(["train", "--config", str(path), "--out", str(tmp_path / "r")]))
    assert run.to_dict() == {"env": ENV_ID, "preset": "mine", "total_steps": 80, "checkpoint_every": 10,
                             "eval_every": None, "eval_episodes": 10}


@pytest.mark.parametrize("env, preset, header", [
    ("Hopper-v5", "mujoco", "mujoco (the preset for Hopper-v5)"),
    ("LunarLanderContinuous-v3", "lunarlander", "lunarlander (the preset for LunarLanderContinuous-v3)"),
    ("MountainCarContinuous-v0", "mountaincar", "mountaincar (the preset for MountainCarContinuous-v0)"),
    ("npppo/Pendulum-v1", "pendulum_compiled", "pendulum_compiled (the preset for npppo/Pendulum-v1)"),
    ("InvertedPendulum-v5", None, "default config"),
])
def test_train_with_env_alone_picks_the_preset_made_for_it_or_the_defaults(tmp_path, env, preset, header):
    pytest.importorskip("mujoco")
    agent, _, run = _fresh(build_parser().parse_args(["train", "--env", env, "--out", str(tmp_path / "r")]))
    assert agent.config == (presets.get(preset) if preset else PPOConfig())
    assert run.preset == header and run.env == env
    if preset:
        assert run.total_steps == presets.load(preset)[1]["steps"]


def test_the_header_line_says_which_preset_was_chosen(tmp_path, capsys, monkeypatch):
    import npppo.train

    monkeypatch.setattr(npppo.train, "train", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    main(["train", "--env", "Pendulum-v1", "--workers", "1", "--out", str(tmp_path / "r")])
    assert "npppo: training pendulum (the preset for Pendulum-v1) on Pendulum-v1, seed 0" in capsys.readouterr().out


def test_every_preset_for_an_env_exists_and_names_that_env():
    for env, name in presets.FOR_ENV.items():
        # mountaincar trains on the compiled twin of the Gymnasium id it also serves
        assert presets.load(name)[1]["env"] in (env, f"npppo/{env}") or name == "mujoco", (env, name)
    assert presets.load("mujoco")[1]["env"] == "HalfCheetah-v5"


def test_eval_of_several_runs_prints_each_and_their_iqm_with_a_confidence_interval(tmp_path, tiny_config, capsys):
    runs = [tmp_path / f"run{seed}" for seed in range(3)]
    for seed, out in enumerate(runs):
        assert train(tiny_config, out, "--steps", "40", "--seed", str(seed)) == 0
    capsys.readouterr()
    assert main(["eval", *map(str, runs), "--episodes", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(f"{run / 'model.npz'} on {ENV_ID}: return " in line
                                   for run, line in zip(runs, lines, strict=False))
    scores = [float(line.split("return ")[1].split(" ±")[0]) for line in lines[:3]]
    assert lines[3].startswith(f"over 3 runs (each scored by its mean return): mean {np.mean(scores):.1f} ± ")
    assert f"IQM {np.mean(scores):.1f} [95% CI " in lines[3]  # 3 runs: the IQM drops none


def test_steps_help_says_whole_episode_batches_may_overshoot(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "overshoot N by less than one batch" in text
    assert "--eval-every N" in text and "--eval-episodes K" in text


def _slow_run(tmp_path, out, *extra: str) -> subprocess.Popen:
    """``npppo train`` of the tiny config in a subprocess, slow enough to be stopped half-way; returns
    once it has written two rows of progress.csv."""
    script = tmp_path / "train_slowly.py"
    script.write_text("SLEEP = 0.002\n" + REGISTER + "import sys\nfrom npppo.cli import main\n"
                      "if __name__ == '__main__':\n    sys.exit(main())\n")
    process = subprocess.Popen(
        [sys.executable, str(script), "train", "--env", ENV_ID, "--config", str(tmp_path / "tiny.json"), "--out",
         str(out), "--steps", str(40 * STEPS_PER_ITERATION), "--workers", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not ((out / "progress.csv").exists() and len((out / "progress.csv").read_text().splitlines()) > 2):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    return process


def test_sigterm_saves_the_last_iteration_exits_143_and_says_how_to_resume(tmp_path, tiny_config):
    out = tmp_path / "run"
    process = _slow_run(tmp_path, out, "--checkpoint-every", "1000")
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    saved = read_checkpoint(out / "checkpoint.npz")[1]["iteration"]
    assert last == (f"npppo: interrupted by SIGTERM; saved iteration {saved} to {out / 'checkpoint.npz'}; "
                    f"resume with: npppo train --resume {out}")
    assert saved >= 2


def test_a_run_killed_before_its_first_checkpoint_is_restarted_by_resume_and_then_refused_by_out(
        tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    process = _slow_run(tmp_path, out, "--checkpoint-every", "1000", "--seed", "3")
    process.kill()  # SIGKILL: nothing can be saved
    process.communicate(timeout=60)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "progress.csv", "run.json"]
    assert main(["train", "--resume", str(out), "--workers", "1", "--steps", "80"]) == 0
    printed = capsys.readouterr().out
    assert f"npppo: {out} holds no checkpoint (the run ended before its first one): starting it afresh" in printed
    assert "resumed at" not in printed
    rows, _ = read_progress(out / "progress.csv")
    assert [int(row["iteration"]) for row in rows] == [1, 2]
    straight = tmp_path / "straight"
    assert train(tiny_config, straight, "--steps", "80", "--seed", "3") == 0
    assert np.array_equal(read_checkpoint(out / "model.npz")[0]["policy.params"],
                          read_checkpoint(straight / "model.npz")[0]["policy.params"])
    capsys.readouterr()
    assert train(tiny_config, out, "--steps", "80") == 1  # now it holds a checkpoint: continue, not redo
    assert "already holds a run" in capsys.readouterr().err


def test_out_reuses_a_folder_without_a_checkpoint_saying_so(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"gamma": 0.5}')
    (out / "progress.csv").write_text("iteration,steps\n1,40\n2,80\n3,120\n")
    assert train(tiny_config, out, "--steps", "40") == 0
    printed = capsys.readouterr().out
    assert printed.count("ended before its first checkpoint") == 1
    assert f"npppo: {out} holds a run that ended before its first checkpoint (progress.csv, config.json)" in printed
    rows, _ = read_progress(out / "progress.csv")
    assert [int(row["iteration"]) for row in rows] == [1]
    assert PPOConfig.from_json(out / "config.json") == presets.get("pendulum").replace(**TINY)


# ---------------------------------------------------------------- issue 22: a new user's rough edges
@pytest.mark.parametrize("argv", [["train", "--steps", "-5"], ["train", "--workers", "0"], ["train", "--bogus"],
                                  ["evaluate"], []])
def test_usage_errors_are_one_line_pointing_to_help_with_status_2(argv):
    proc = subprocess.run([sys.executable, "-m", "npppo.cli", *argv], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and lines[0].endswith("--help)"), proc.stderr


def test_version_and_the_list_of_presets(capsys):
    from npppo import __version__

    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0 and capsys.readouterr().out.strip() == f"npppo {__version__}"
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in presets.names():
        line = next(line for line in lines if line.split()[0] == name)
        assert presets.load(name)[1]["env"] in line and f"{presets.load(name)[1]['steps']:,}" in line
    assert "--preset NAME" in lines[-1]


def test_printed_commands_are_shell_quoted_for_a_path_with_spaces(tmp_path, tiny_config, capsys):
    import shlex

    out = tmp_path / "my runs" / "quick"
    assert train(tiny_config, out, "--steps", "40") == 0
    next_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("next:"))
    eval_command, plot_command = next_line.removeprefix("next:").split("|")
    assert shlex.split(eval_command) == ["npppo", "eval", str(out)]
    assert shlex.split(plot_command) == ["npppo", "plot", str(out)]


@pytest.mark.parametrize("under", ["a-file/run", "a-file"])
def test_an_impossible_out_folder_is_one_line_naming_it_and_why(tmp_path, tiny_config, capsys, under):
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / under
    assert train(tiny_config, out, "--steps", "40") == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(tmp_path / "a-file") in error[0] and "is a file, not a folder" in error[0]
    assert "Errno" not in error[0]


def test_eval_of_a_seeds_folder_evaluates_each_seed_then_their_iqm(tmp_path, tiny_config, capsys):
    out = tmp_path / "three"
    assert main(["train", "--env", ENV_ID, "--config", tiny_config, "--seeds", "0", "1", "--steps", "40",
                 "--workers", "1", "--parallel", "1", "--eval-episodes", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" on ")[0] for line in lines[:2]] == [str(out / f"seed_{s}" / "model.npz") for s in (0, 1)]
    assert lines[2].startswith("over 2 runs") and "IQM" in lines[2] and "95% CI" in lines[2]


def test_periodic_evaluations_show_on_the_console_and_the_saved_line_names_best_npz(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    assert train(tiny_config, out, "--steps", "120", "--eval-every", "80", "--eval-episodes", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    evals = [line for line in lines if line.startswith("eval at ")]
    assert [line.split(" steps:")[0] for line in evals] == ["eval at 80", "eval at 120"]
    assert "the best so far, saved as best.npz" in evals[0]
    rows, _ = read_progress(out / "progress.csv")
    assert f"return {float(rows[1]['eval_mean']):.1f} ± {float(rows[1]['eval_std']):.1f} over 2" in evals[0]
    assert lines.index(evals[0]) == lines.index(next(line for line in lines if line.startswith("iter    2"))) + 1
    saved = next(line for line in lines if line.startswith("saved:"))
    assert f"{out / 'best.npz'} (the best evaluation)" in saved


def test_more_workers_than_usable_cores_get_a_one_line_note(monkeypatch, capsys):
    from npppo import cli

    monkeypatch.setattr("npppo.backends.usable_cores", lambda: 2)
    cli._note_oversubscribed(2)
    assert capsys.readouterr().err == ""
    cli._note_oversubscribed(4)
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("npppo: note: 4 workers on 2 usable cores")


def test_a_closed_stdout_does_not_stop_training(tmp_path, tiny_config):
    # `npppo train ... | head -1`: a real pipe whose reader goes away after the first line
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "npppo.cli", "train", "--env", "Pendulum-v1", "--config",
                             tiny_config, "--max-episode-steps", "20", "--steps", "400", "--workers", "1",
                             "--eval-episodes", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    _, stderr = proc.communicate(timeout=300)
    assert first.startswith("npppo: training")
    assert proc.returncode == 0, stderr
    assert "Broken pipe" not in stderr and "Traceback" not in stderr
    rows, _ = read_progress(out / "progress.csv")
    assert int(rows[-1]["steps"]) == 400
    assert (out / "model.npz").is_file() and (out / "checkpoint.npz").is_file()


def test_an_environment_whose_episodes_never_end_gives_an_error_not_a_hang(tmp_path, config_file, capsys):
    """Fixed-step batches train on (each progress line says no episode finished), then the final
    evaluation stops at --episode-step-limit with the fix; `npppo eval` too; whole-episode batches
    stop in the rollout."""
    env = ["--env", "envs_for_tests:EndlessForTests-v0", "--workers", "1", "--episode-step-limit", "40"]
    fixed = config_file(**{**TINY, "episodes_per_batch": None, "steps_per_batch": 32})
    out = tmp_path / "fixed"
    assert main(["train", *env, "--config", fixed, "--steps", "64", "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert "iter    2  steps 64/64  no episode finished" in printed.out and "nan" not in printed.out
    error = printed.err.strip().splitlines()[-1]
    assert error.startswith("npppo: error: environment 'EndlessForTests-v0': an episode ran 40 steps without")
    assert "--max-episode-steps N" in error and "--episode-step-limit N" in error
    assert (out / "model.npz").exists()
    assert main(["eval", str(out), "--episode-step-limit", "25", "--episodes", "1"]) == 1
    assert "an episode ran 25 steps without terminating or truncating" in capsys.readouterr().err
    assert main(["eval", str(out), "--max-episode-steps", "25", "--episodes", "2"]) == 0  # with a TimeLimit
    assert "over 2 episodes" in capsys.readouterr().out
    whole = config_file(**TINY)
    assert main(["train", *env, "--config", whole, "--steps", "64", "--out", str(tmp_path / "whole")]) == 1
    assert "an episode ran 40 steps without" in capsys.readouterr().err
