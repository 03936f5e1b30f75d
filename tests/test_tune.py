"""npppo tune: the search space file, and real studies on Pendulum-v1 with tiny budgets: reproducible
with one job, interrupted by a real SIGINT and resumed from SQLite with the finished trials kept, a
trial pruned below the median, the best config training, and no process outliving the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from test_backends_local import HERE, processes_tagged

from npppo import presets
from npppo.cli import main
from npppo.config import PPOConfig
from npppo.errors import ConfigError
from npppo.tune import SPACE_FILE, config_for, load_space

STEPS, EVALS = 6000, 2  # three whole-episode batches of the pendulum preset per trial, two evaluations


def study_args(folder, *extra) -> list[str]:
    return ["tune", "--preset", "pendulum", "--steps", str(STEPS), "--evals", str(EVALS), "--eval-episodes", "2",
            "--seed", "3", "--study", "s", "--storage", f"sqlite:///{folder / 'study.db'}", "--out", str(folder),
            *extra]


def load(folder) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=f"sqlite:///{folder / 'study.db'}")


def finished(study: optuna.Study) -> list:
    return [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def threads_of(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for process {pid}")


def interrupt(folder, extra, started: list[int], trial_processes: int) -> tuple[str, dict[int, int]]:
    """Run a study in a real process, send it SIGINT once trials ``started`` have started and
    ``trial_processes`` trial processes besides it are alive; check it exits with 130 and that none
    of its processes outlives it (a /proc scan). Returns its stderr and {pid: threads} of its children."""
    tag = uuid.uuid4().hex
    command = [sys.executable, "-c", "import sys; from npppo.cli import main; sys.exit(main(sys.argv[1:]))",
               *study_args(folder, *extra)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "NPPPO_TEST_TAG": tag})
    deadline = time.monotonic() + 120
    lines: list[str] = []
    while not all(any(line.startswith(f"trial {n}: started") for line in lines) for n in started):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        lines.append(process.stdout.readline())
    seen: dict[int, int] = {}
    while len(seen) < trial_processes:  # the trial processes: children of the coordinator or of its forkserver
        assert time.monotonic() < deadline
        for pid in processes_tagged(tag):
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if pid != process.pid and b"resource_tracker" not in handle.read():
                    seen[pid] = threads_of(pid)
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    gone = time.monotonic() + 10
    while processes_tagged(tag) and time.monotonic() < gone:
        time.sleep(0.05)
    assert processes_tagged(tag) == []
    return err, seen


# ---------------------------------------------------------------------------------------- the space
@pytest.mark.parametrize("preset", presets.names())
def test_every_end_of_the_default_space_makes_a_valid_config_from_every_preset(preset):
    space = load_space()
    base = presets.get(preset)
    for pick in (0, -1):
        params = {p.name: (list(p.choices)[pick] if p.choices else (p.low, p.high)[pick]) for p in space}
        config = config_for(base, space, params)
        assert isinstance(config, PPOConfig)
    assert config.steps_per_batch == 8192 and config.episodes_per_batch is None  # "set" clears the other kind


def test_a_parameter_sets_its_fields_and_a_label_stands_for_its_value():
    space = load_space()
    config = config_for(presets.get("pendulum"), space, {"net": "256x256", "activation": "relu", "epochs": 20,
                                                         "learning_rate": 2e-5})
    assert config.trunk_sizes == config.critic_sizes == [256, 256]  # ReLU 256x256 (the Zoo's HalfCheetah net)
    assert config.actor_activation == config.critic_activation == "relu"
    assert config.actor_epochs == config.critic_epochs == 20
    assert config.mu_lr == config.sigma_lr == config.critic_lr == 2e-5
    assert config.gamma == presets.get("pendulum").gamma  # not searched here: the base's value


@pytest.mark.parametrize(("spec", "message"), [
    ({"lr": {"type": "float", "low": 1e-5, "high": 1e-3, "fields": ["critic_lrr"]}}, "did you mean 'critic_lr'"),
    ({"gamma": {"type": "uniform", "low": 0.9, "high": 0.99}}, "\"type\" one of"),
    ({"gamma": {"type": "float", "low": 0.99, "high": 0.9}}, "\"low\" < \"high\""),
    ({"mu_lr": {"type": "float", "low": 0.0, "high": 1e-3, "log": True}}, "> 0 with"),
    ({"gamma": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"gamma": {"type": "categorical", "choices": [0.9], "step": 1}}, "unknown key"),
    ({"actor_epochs": {"type": "int", "low": 1.5, "high": 4}}, "whole numbers"),
])
def test_a_mistake_in_a_space_file_names_the_parameter(tmp_path, spec, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"params": spec}))
    with pytest.raises(ConfigError, match=message) as error:
        load_space(path)
    assert str(path) in str(error.value)


def test_the_default_space_is_the_one_in_the_package():
    names = [p.name for p in load_space(SPACE_FILE)]
    for name in ("learning_rate", "batch_size", "steps_per_batch", "epochs", "gamma", "gae_lambda", "clip_eps",
                 "ent_coef", "net", "activation", "log_std_init", "normalize_obs"):
        assert name in names


# ---------------------------------------------------------------------------------------- studies
def test_an_interrupted_study_resumes_with_its_trials_kept_and_ends_as_an_uninterrupted_one(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    extra = ("--trials", "3", "--startup-trials", "2")  # the third trial is TPE's first modelled one
    assert main(study_args(straight, *extra)) == 0

    err, seen = interrupt(interrupted, extra, started=[1], trial_processes=1)
    assert "trial 1: interrupted by SIGINT; marked failed" in err
    assert len(seen) >= 2

    study = load(interrupted)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "WAITING"]  # consistent: nothing left running, the failed one queued
    assert study.trials[2].params == {} and study.trials[2].system_attrs["fixed_params"] == study.trials[1].params
    kept = study.trials[0]

    assert main(study_args(interrupted, *extra)) == 0
    study = load(interrupted)
    assert study.trials[0].datetime_start == kept.datetime_start and study.trials[0].value == kept.value
    resumed, uninterrupted = finished(study), finished(load(straight))
    assert [t.params for t in resumed] == [t.params for t in uninterrupted]  # one job and a seed: reproducible
    assert [t.value for t in resumed] == [t.value for t in uninterrupted]
    assert [t.intermediate_values for t in resumed] == [t.intermediate_values for t in uninterrupted]
    assert list(resumed[0].intermediate_values) == [STEPS // 2, STEPS]  # the periodic evaluations, reported
    assert resumed[-1].value == resumed[-1].intermediate_values[STEPS]  # the value is the last evaluation

    best = max(resumed, key=lambda t: t.value)
    document = json.loads((interrupted / "best_config.json").read_text())
    assert document["env"] == "Pendulum-v1" and document["steps"] == STEPS
    assert document["config"] == study.trials[best.number].user_attrs["config"]
    rows = (interrupted / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,value") and len(rows) == 1 + len(study.trials)
    run = tmp_path / "best-run"
    assert main(["train", "--config", str(interrupted / "best_config.json"), "--steps", "2000", "--out", str(run),
                 "--workers", "1"]) == 0
    assert (run / "model.npz").is_file()


def test_a_trial_below_the_median_is_pruned_at_its_evaluation(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    # a finished trial that scored 0 at both evaluations: every Pendulum return is below it
    study.add_trial(optuna.trial.create_trial(value=0.0, intermediate_values={STEPS // 2: 0.0, STEPS: 0.0}))
    assert main(study_args(tmp_path, "--trials", "2", "--pruner-startup", "1", "--pruner-warmup", "0")) == 0
    trial = load(tmp_path).trials[1]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [STEPS // 2] and trial.intermediate_values[STEPS // 2] < 0
    assert f"trial 1: pruned at {STEPS // 2:,} steps" in capsys.readouterr().out


def test_a_study_resumed_with_other_settings_is_refused(tmp_path, capsys):
    assert main(study_args(tmp_path, "--trials", "1")) == 0
    capsys.readouterr()
    changed = study_args(tmp_path, "--trials", "2")
    changed[changed.index("--steps") + 1] = str(2 * STEPS)
    assert main(changed) == 1
    err = capsys.readouterr().err
    assert "was run with steps = 6000, not 12000" in err and "--study" in err
    assert len(load(tmp_path).trials) == 1


def test_more_jobs_than_cores_is_refused(tmp_path, capsys):
    from npppo.backends import usable_cores

    assert main(study_args(tmp_path, "--jobs", str(usable_cores() + 1))) == 1
    assert "usable cores" in capsys.readouterr().err
    assert not (tmp_path / "study.db").exists()


def test_without_optuna_the_command_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(study_args(tmp_path)) == 1
    assert "pip install 'npppo[tune]'" in capsys.readouterr().err


def test_two_jobs_run_side_by_side_with_one_thread_each_and_sigint_ends_both(tmp_path):
    from npppo.backends import usable_cores

    jobs = min(2, usable_cores())
    err, seen = interrupt(tmp_path, ("--trials", "4", "--jobs", str(jobs), "--steps", "60000"),
                          started=list(range(jobs)), trial_processes=jobs + 1)  # + the forkserver
    assert set(seen.values()) == {1}  # one BLAS thread (and no other) in every trial process
    study = load(tmp_path)
    states = [t.state.name for t in study.trials]
    assert states.count("FAIL") == states.count("WAITING") == jobs and "RUNNING" not in states
    for n in range(jobs):
        assert f"trial {n}: interrupted by SIGINT; marked failed" in err


def test_a_trial_whose_training_diverges_is_pruned_and_the_study_goes_on(tmp_path, capsys):
    base = presets.get("pendulum").replace(optimizer="sgd", momentum=0.0, max_grad_norm=None)
    (tmp_path / "base.json").write_text(json.dumps({"env": "Pendulum-v1", "steps": STEPS, "config": base.to_dict()}))
    (tmp_path / "space.json").write_text(json.dumps({"params": {"learning_rate": {
        "type": "categorical", "choices": [1e30], "fields": ["mu_lr", "sigma_lr", "critic_lr"]}}}))
    args = study_args(tmp_path, "--trials", "2", "--space", str(tmp_path / "space.json"))
    args[args.index("--preset"):args.index("--preset") + 2] = ["--config", str(tmp_path / "base.json")]
    assert main(args) == 0
    trials = load(tmp_path).trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert trials[0].user_attrs["stopped"].startswith("TrainingError: iteration 1: the actor loss (nan)")
    assert "trial 1: diverged (iteration 1" in capsys.readouterr().out


def test_a_trial_that_raises_ends_the_study_with_its_error_and_every_process(tmp_path):
    from npppo.backends import usable_cores

    tag = uuid.uuid4().hex
    jobs = str(min(2, usable_cores()))
    command = [sys.executable, "-c", "import sys; from npppo.cli import main; sys.exit(main(sys.argv[1:]))",
               *study_args(tmp_path, "--env", "envs_for_tests:FailingPendulum-v0", "--trials", "4", "--jobs", jobs)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=HERE,
                          env={**os.environ, "NPPPO_TEST_TAG": tag, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 1, done.stderr
    assert "npppo: error: trial " in done.stderr and "RuntimeError: the simulator fell over" in done.stderr
    states = [t.state.name for t in load(tmp_path).trials]
    assert "RUNNING" not in states and states.count("FAIL") == int(jobs)  # the failed one, and any stopped with it
    gone = time.monotonic() + 10
    while processes_tagged(tag) and time.monotonic() < gone:
        time.sleep(0.05)
    assert processes_tagged(tag) == []
