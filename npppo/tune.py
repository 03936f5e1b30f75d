"""``npppo tune``: a hyperparameter study on Optuna (``pip install 'npppo[tune]'``).

    npppo tune --preset pendulum --trials 50 --steps 50000 --jobs 2 \\
               --storage sqlite:///tune.db --study pendulum-1 --out runs/tune-pendulum

Who does what:

* this process, the *coordinator*, is the only one that talks to the study's database: it asks the
  seeded TPE sampler for a trial's parameters, turns them into a PPOConfig (:func:`config_for`),
  starts a trial process, reports each of the trial's evaluations to the median pruner as an
  intermediate value and tells the study the result;
* each *trial process* (forkserver or spawn, at most one per usable core, one BLAS thread, the
  rollout in the same process) trains one config with the study's seed and evaluates the
  deterministic policy ``--evals`` times on fixed reset seeds; after each evaluation but the last
  it waits for the coordinator's word to go on or stop (pruned). The trial's value is its last
  evaluation's mean return.

The study lives in an Optuna RDB storage (SQLite by default), so the same command resumes it by
name: ``--trials N`` is the study's total of finished (complete or pruned) trials. Ctrl-C (or
SIGTERM) ends every trial process; the trials that were running are marked failed and enqueued with
the same parameters, so a resumed study runs them first. A trial whose training diverges (a
non-finite loss) is pruned. One ``npppo tune`` at a time per study: trials still marked running
when a study starts were left by a run that was killed, and are failed and enqueued the same way.

Reproducible with ``--jobs 1``: each trial's sampler is seeded by ``--seed`` and the number of
trials finished before it, the median pruner reads finished trials only and every trial trains
with the same seed, so the same command gives the same trials, interrupted and resumed or not.
With ``--jobs`` > 1 the order in which trials finish decides what the sampler and pruner see:
such a study is not reproducible.

Written into ``--out``: ``best_config.json`` (the best trial's config, preset-style, for ``npppo
train --config``), ``trials.csv`` (every trial's state, value and parameters) and, with matplotlib
(``npppo[plot]``), ``history.png`` (Optuna's optimization history), and MuJoCo's warnings, if
any, in ``MUJOCO_LOG.TXT``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import multiprocessing.connection
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npppo.config import PPOConfig, reject_unknown
from npppo.errors import ConfigError, NpppoError, TrainingError
from npppo.interrupts import INTERRUPTED

SPACE_FILE = Path(__file__).parent / "tune_space.json"
PARAM_KEYS = {"float": ("type", "low", "high", "log", "fields", "set"),
              "int": ("type", "low", "high", "log", "fields", "set"),
              "categorical": ("type", "choices", "fields", "set")}
SETTINGS_ATTR = "npppo_settings"  # the study's user attribute holding what its trials were run with


# ---------------------------------------------------------------------------------------- search space
@dataclass(frozen=True)
class Param:
    """One searched parameter: how Optuna samples it and which PPOConfig fields it sets."""

    name: str
    kind: str  # "float", "int" or "categorical"
    fields: tuple[str, ...]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: dict[str, Any] | None = None  # label -> value (labels are what Optuna stores)
    fixed: tuple[tuple[str, Any], ...] = ()  # other fields set with it

    def suggest(self, trial) -> Any:
        """This parameter's value in ``trial`` (an optuna.Trial), as Optuna stores it."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def value(self, stored: Any) -> Any:
        """The config value of a stored parameter (a categorical's label becomes its value)."""
        return self.choices[stored] if self.choices is not None and isinstance(stored, str) else stored


def load_space(path: str | Path = SPACE_FILE) -> list[Param]:
    """The search space in a JSON file ``{"description": ..., "params": {name: spec}}``, checked; see
    ``npppo/tune_space.json`` for the format. A mistake raises ConfigError naming the parameter."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the search space {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("params"), dict) or not document["params"]:
        raise ConfigError(f"search space {path}: expected an object with a non-empty \"params\" object")
    reject_unknown(document, ["description", "params"], f"key in search space {path}:")
    known = [f.name for f in PPOConfig.__dataclass_fields__.values()]
    return [_param(name, spec, known, path) for name, spec in document["params"].items()]


def _param(name: str, spec: Any, known: list[str], path) -> Param:
    where = f"search space {path}, parameter {name!r}"
    if not isinstance(spec, dict) or spec.get("type") not in PARAM_KEYS:
        raise ConfigError(f"{where}: expected an object with \"type\" one of {sorted(PARAM_KEYS)}")
    kind = spec["type"]
    reject_unknown(spec, list(PARAM_KEYS[kind]), f"key in {where}:")
    fields = spec.get("fields", [name])
    fixed = spec.get("set", {})
    if not isinstance(fields, list) or not fields or not isinstance(fixed, dict):
        raise ConfigError(f"{where}: \"fields\" must be a non-empty list of config fields and \"set\" an object")
    reject_unknown({f: None for f in [*fields, *fixed]}, known, f"config field in {where}:")
    if kind == "categorical":
        choices = spec.get("choices")
        if isinstance(choices, list) and choices and all(isinstance(c, (bool, int, float, str)) for c in choices):
            choices = {c: c for c in choices}
        if not isinstance(choices, dict) or not choices:
            raise ConfigError(f"{where}: \"choices\" must be a non-empty list of numbers, strings or booleans, or "
                              "an object of label: value (for values such as layer lists)")
        return Param(name, kind, tuple(fields), choices=choices, fixed=tuple(fixed.items()))
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    if not numbers or not low < high or not isinstance(log, bool) or (log and low <= 0) or (
            kind == "int" and not all(float(v).is_integer() for v in (low, high))):
        raise ConfigError(f"{where}: needs numbers \"low\" < \"high\" (whole numbers for an int; > 0 with "
                          f"\"log\": true), got low={low!r}, high={high!r}, log={log!r}")
    return Param(name, kind, tuple(fields), float(low), float(high), log, fixed=tuple(fixed.items()))


def config_for(base: PPOConfig, space: list[Param], params: dict[str, Any]) -> PPOConfig:
    """``base`` with each parameter's fields set to its value in ``params`` (name -> stored value),
    validated (ConfigError if the combination is out of range)."""
    changes: dict[str, Any] = {}
    for param in space:
        if param.name in params:
            changes.update(param.fixed)
            changes.update({f: param.value(params[param.name]) for f in param.fields})
    return base.replace(**changes)


# ---------------------------------------------------------------------------------------- trial process
def _trial_process(conn, env_spec, config_dict: dict, steps: int, seed: int, evals: int, episodes: int) -> None:
    """One trial's whole life: train, evaluate at steps·k/evals for k = 1..evals, send each result and,
    before the last, wait for go on (True) or stop (False). Ends when the coordinator's pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    from npppo.threads import set_num_threads

    set_num_threads(1)
    try:
        from npppo.ppo import PPO

        agent = PPO(env_spec, PPOConfig.from_dict(config_dict), seed=seed)
        done, start = [0], time.perf_counter()

        def after_iteration(agent, metrics) -> bool:
            if conn.poll():  # nothing is sent between evaluations: this is the coordinator gone
                conn.recv()
            reached = min(evals, agent.num_timesteps * evals // steps)
            if reached <= done[0]:
                return True
            done[0] = reached
            mean, _ = agent.evaluate(episodes)
            step = steps * reached // evals
            if reached == evals:
                conn.send(("done", step, mean, {"train_s": time.perf_counter() - start,
                                                "env_steps": agent.num_timesteps}))
                return False
            conn.send(("eval", step, mean))
            return bool(conn.recv())

        agent.learn(steps, callback=after_iteration)
    except (EOFError, BrokenPipeError):
        return  # the coordinator is gone
    except BaseException as exc:
        try:
            conn.send(("error", type(exc).__name__, str(exc), traceback.format_exc(),
                       isinstance(exc, TrainingError)))
        except (BrokenPipeError, OSError):
            pass


# ---------------------------------------------------------------------------------------- the study
@dataclass(eq=False)
class Running:
    trial: Any  # optuna.Trial
    process: Any
    conn: Any
    params: dict[str, Any]


class Study:
    """The coordinator of one study (see the module docstring)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import optuna

        from npppo.backends import usable_cores
        from npppo.backends.local import START_METHOD
        from npppo.cli import _source, env_spec

        self.optuna = optuna
        self.args = args
        cores = usable_cores()
        if args.jobs > cores:
            raise NpppoError(f"--jobs {args.jobs} is more than the {cores} usable cores: trials run one per core")
        self.space = load_space(args.space or SPACE_FILE)
        self.base, facts, self.base_name, _ = _source(args)
        self.env = args.env or facts.get("env")
        if self.env is None:
            raise ConfigError(f"config file {args.config} names no environment: pass --env ID")
        self.env_kwargs = facts.get("env_kwargs", {})
        self.env_spec = env_spec(self.env, self.env_kwargs, None)
        self.steps = int(args.steps or facts.get("steps") or 0)
        if self.steps < args.evals:
            raise NpppoError(f"--steps {self.steps} is fewer than --evals {args.evals}: give each trial more steps")
        self.name = args.study or f"{self.env.replace('/', '_')}-{self.base_name}"
        self.out = args.out or Path("runs") / f"tune-{self.name}"
        self.storage_url = args.storage or f"sqlite:///{self.out / 'study.db'}"
        if self.storage_url.startswith("sqlite:///"):
            Path(self.storage_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.context = multiprocessing.get_context(START_METHOD)
        if START_METHOD == "forkserver":
            self.context.set_forkserver_preload(["npppo.tune", "npppo.ppo"])
        warmup = args.evals // 3 if args.pruner_warmup is None else args.pruner_warmup
        self.pruner = optuna.pruners.MedianPruner(
            n_startup_trials=args.pruner_startup, n_warmup_steps=self.steps * warmup // args.evals + (warmup > 0))
        self.storage = optuna.storages.RDBStorage(self.storage_url)
        self.study = optuna.create_study(storage=self.storage, study_name=self.name, direction="maximize",
                                         sampler=self._sampler(0), pruner=self.pruner, load_if_exists=True)
        self._check_settings()
        self.running: list[Running] = []
        self.stop_signal: int | None = None

    def settings(self) -> dict[str, Any]:
        """What the study's trials depend on: a resumed study must run with the same."""
        return {"env": self.env, "env_kwargs": self.env_kwargs, "base_config": self.base.to_dict(),
                "steps": self.steps, "evals": self.args.evals, "eval_episodes": self.args.eval_episodes,
                "seed": self.args.seed, "space": [p.name for p in self.space]}

    def _check_settings(self) -> None:
        mine, stored = self.settings(), self.study.user_attrs.get(SETTINGS_ATTR)
        if stored is None:
            self.study.set_user_attr(SETTINGS_ATTR, mine)
            return
        differ = [key for key in mine if json.dumps(mine[key], sort_keys=True) != json.dumps(stored.get(key),
                                                                                              sort_keys=True)]
        if differ:
            key = differ[0]
            raise NpppoError(f"study {self.name!r} in {self.storage_url} was run with {key} = "
                             f"{json.dumps(stored.get(key))[:200]}, not {json.dumps(mine[key])[:200]}: resume it with "
                             "its own settings, or name a new study with --study")

    def _sampler(self, finished: int):
        """The TPE sampler for the next trial, seeded by the run seed and the trials finished so far (so a
        resumed one-job study asks what an uninterrupted one would)."""
        import numpy as np

        seed = int(np.random.SeedSequence([self.args.seed, finished]).generate_state(1)[0])
        return self.optuna.samplers.TPESampler(n_startup_trials=self.args.startup_trials, seed=seed)

    def trials(self, *states) -> list:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def finished(self) -> list:
        state = self.optuna.trial.TrialState
        return self.trials(state.COMPLETE, state.PRUNED)

    # ------------------------------------------------------------------ running
    def run(self) -> int:
        """Run trials until the study has ``--trials`` finished ones; returns the exit status."""
        state = self.optuna.trial.TrialState
        stale = self.trials(state.RUNNING)
        for trial in stale:
            self._fail_and_enqueue(trial.number, trial.params, "left running by an npppo tune that was killed")
        if stale:
            print(f"npppo: {len(stale)} trial(s) left running by a killed run marked failed; they run again first")
        done = len(self.finished())
        print(f"npppo: study {self.name!r} ({self.storage_url}): {done} of {self.args.trials} trials finished; "
              f"{self.env}, base {self.base_name}, {self.steps:,} steps and {self.args.evals} evaluations per trial, "
              f"{self.args.jobs} job{'s' if self.args.jobs > 1 else ''} -> {self.out}/")
        print("       (Ctrl-C stops every trial; run the same command again to resume)")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.stop_signal is None:
                while (self.stop_signal is None and len(self.running) < self.args.jobs
                       and done + len(self.running) < self.args.trials):
                    self._start_trial(done + len(self.running))
                if not self.running:
                    break
                done += self._serve(timeout=0.2)
        except BaseException:
            self._stop_running("the study stopped on an error")
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.stop_signal is not None:
            self._stop_running(f"interrupted by {signal.Signals(self.stop_signal).name}")
        self.report()
        if self.stop_signal is not None:
            print(f"npppo: interrupted: {len(self.finished())} of {self.args.trials} trials finished; resume with "
                  "the same command", file=sys.stderr)
            return INTERRUPTED
        return 0

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum  # acted on between two database writes, never inside one

    def _start_trial(self, before: int) -> None:
        """Ask for a trial (its sampler seeded by ``before``, the trials finished or running) and start it."""
        self.study.sampler = self._sampler(before)
        trial = self.study.ask()
        params = {p.name: p.suggest(trial) for p in self.space}
        try:
            config = config_for(self.base, self.space, params)
        except ConfigError as exc:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
            raise ConfigError(f"the search space gives trial {trial.number} an invalid config: {exc}") from exc
        trial.set_user_attr("config", config.to_dict())
        here, there = self.context.Pipe()
        process = self.context.Process(
            target=_trial_process, name=f"npppo-trial-{trial.number}", daemon=True,
            args=(there, self.env_spec, config.to_dict(), self.steps, self.args.seed, self.args.evals,
                  self.args.eval_episodes))
        process.start()
        there.close()
        self.running.append(Running(trial, process, here, params))
        print(f"trial {trial.number}: started ({_params_text(params)})", flush=True)

    def _serve(self, timeout: float) -> int:
        """Answer the trials' messages for up to ``timeout`` s; returns how many trials finished."""
        waiting = {r.conn: r for r in self.running} | {r.process.sentinel: r for r in self.running}
        finished = 0
        for ready in multiprocessing.connection.wait(list(waiting), timeout):
            run = waiting[ready]
            if run not in self.running or self.stop_signal is not None:
                continue
            try:
                message = run.conn.recv() if run.conn.poll() else None
            except (EOFError, OSError):
                message = None
            if message is None:
                if run.process.is_alive():
                    continue
                run.process.join()
                self._end(run, self.optuna.trial.TrialState.FAIL)
                raise NpppoError(f"trial {run.trial.number}'s process ended without a result (exit code "
                                 f"{run.process.exitcode})")
            finished += self._handle(run, message)
        return finished

    def _handle(self, run: Running, message: tuple) -> int:
        state = self.optuna.trial.TrialState
        trial, kind = run.trial, message[0]
        if kind == "eval":
            _, step, mean = message
            trial.report(mean, step)
            prune = trial.should_prune()
            run.conn.send(not prune)
            if not prune:
                return 0
            self._end(run, state.PRUNED, f"pruned at {step:,} steps: {mean:.1f}")
            return 1
        if kind == "done":
            _, step, mean, info = message
            trial.report(mean, step)
            for key, value in info.items():
                trial.set_user_attr(key, value)
            self._end(run, state.COMPLETE, f"{mean:.1f} after {step:,} steps ({info['train_s']:.1f} s)", mean)
            return 1
        _, name, text, trace, diverged = message
        if diverged:
            trial.set_user_attr("stopped", f"{name}: {text}")
            self._end(run, state.PRUNED, f"diverged ({text.splitlines()[0][:120]})")
            return 1
        self._end(run, state.FAIL)
        raise NpppoError(f"trial {trial.number} failed: {name}: {text}\n{trace}")

    def _end(self, run: Running, state, line: str | None = None, value: float | None = None) -> None:
        """Tell the study the trial's outcome, and let its process go."""
        self.running.remove(run)
        if state == self.optuna.trial.TrialState.COMPLETE:
            self.study.tell(run.trial, value)
        else:
            self.study.tell(run.trial, state=state)
        run.conn.close()
        run.process.join(timeout=10)
        if run.process.is_alive():
            run.process.kill()
            run.process.join()
        if line is not None:
            print(f"trial {run.trial.number}: {line}", flush=True)

    def _stop_running(self, why: str) -> None:
        """End every trial process, then mark its trial failed and enqueue its parameters again."""
        for run in self.running:
            if run.process.is_alive():
                run.process.terminate()
        for run in self.running:
            run.process.join(timeout=10)
            if run.process.is_alive():
                run.process.kill()
                run.process.join()
            run.conn.close()
        for run in list(self.running):
            self.running.remove(run)
            self._fail_and_enqueue(run.trial.number, run.params, why)
            print(f"trial {run.trial.number}: {why}; marked failed, to run again on resume", file=sys.stderr)

    def _fail_and_enqueue(self, number: int, params: dict[str, Any], why: str) -> None:
        state = self.optuna.trial.TrialState
        study_id = self.storage.get_study_id_from_name(self.name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage.set_trial_user_attr(trial_id, "stopped", why)
        self.storage.set_trial_state_values(trial_id, state.FAIL)
        self.study.enqueue_trial(params, user_attrs={"retry_of": number})

    # ------------------------------------------------------------------ results
    def report(self) -> None:
        """Write trials.csv, best_config.json and history.png; print the best trials and importances."""
        self.out.mkdir(parents=True, exist_ok=True)
        state = self.optuna.trial.TrialState
        trials = self.trials()
        names = [p.name for p in self.space]
        with open(self.out / "trials.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["number", "state", "value", "last_step", "seconds", *names])
            for t in trials:
                seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
                writer.writerow([t.number, t.state.name, "" if t.value is None else t.value,
                                 t.last_step if t.last_step is not None else "", seconds,
                                 *(t.params.get(n, "") for n in names)])
        complete = sorted(self.trials(state.COMPLETE), key=lambda t: -t.value)
        counts = {s.name.lower(): len([t for t in trials if t.state == s]) for s in (state.COMPLETE, state.PRUNED,
                                                                                     state.FAIL, state.WAITING)}
        print(f"npppo: study {self.name!r}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
        if not complete:
            print(f"npppo: no trial completed yet; wrote {self.out / 'trials.csv'}")
            return
        print(f"  {'trial':>5}  {'value':>10}  parameters")
        for t in complete[:10]:
            print(f"  {t.number:>5}  {t.value:>10.1f}  {_params_text(t.params)}")
        best = complete[0]
        path = self.out / "best_config.json"
        document = {"description": f"The best trial ({best.number}, final evaluation {best.value:.1f}) of npppo tune "
                                   f"study {self.name!r}: {_params_text(best.params)}; base {self.base_name}.",
                    "env": self.env, "steps": self.steps, "env_kwargs": self.env_kwargs,
                    "config": config_for(self.base, self.space, best.params).to_dict()}
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"npppo: wrote {path} (npppo train --config {path}) and {self.out / 'trials.csv'}")
        self._importances(len(complete))
        self._history_plot()

    def _importances(self, complete: int) -> None:
        if complete < 4:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                evaluator = self.optuna.importance.PedAnovaImportanceEvaluator()
                found = self.optuna.importance.get_param_importances(self.study, evaluator=evaluator)
        except (RuntimeError, ValueError):
            return  # too few distinct values to rank
        print("npppo: parameter importances (PED-ANOVA): "
              + ", ".join(f"{name} {value:.2f}" for name, value in list(found.items())[:8]))

    def _history_plot(self) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("npppo: pip install 'npppo[plot]' for history.png (the optimization history)")
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            axes = self.optuna.visualization.matplotlib.plot_optimization_history(self.study)
        axes.figure.savefig(self.out / "history.png", dpi=100, bbox_inches="tight")
        plt.close(axes.figure)


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


# ---------------------------------------------------------------------------------------- command line
def add_parser(commands, formatter) -> None:
    """``npppo tune``'s arguments, as a subcommand of ``commands`` (the CLI's subparsers)."""
    from npppo.cli import _count, _seed

    tune = commands.add_parser(
        "tune", formatter_class=formatter, help="a hyperparameter study on Optuna (pip install 'npppo[tune]')",
        description="Run (or resume) an Optuna study: a seeded TPE sampler, a median pruner fed by periodic\n"
                    "deterministic evaluations, trials in parallel processes, the study in an RDB storage (SQLite).\n"
                    "Writes OUT/best_config.json (for npppo train --config), OUT/trials.csv and OUT/history.png.\n"
                    "Ctrl-C stops every trial; the same command resumes. Reproducible with --jobs 1 only.",
        epilog="examples:\n"
               "  npppo tune --preset pendulum --trials 30 --steps 30000 --jobs 2\n"
               "  npppo tune --preset mujoco --env HalfCheetah-v5 --trials 100 --steps 300000 \\\n"
               "             --storage sqlite:///cheetah.db --study cheetah --out runs/tune-cheetah\n"
               "  npppo train --config runs/tune-cheetah/best_config.json --steps 1000000",
    )
    tune.add_argument("--env", metavar="ID", help="Gymnasium id (default: the preset's environment)")
    source = tune.add_mutually_exclusive_group()
    source.add_argument("--preset", metavar="NAME", help="the base config whose fields the trials change")
    source.add_argument("--config", metavar="FILE", type=Path, help="a base config JSON instead of a preset")
    tune.add_argument("--space", metavar="FILE", type=Path,
                      help=f"search space JSON (default: {SPACE_FILE.name} in the package: learning rate, batch "
                           "and minibatch sizes, epochs, gamma, lambda, clip, entropy, network, log std, ...)")
    tune.add_argument("--trials", type=_count, default=20, metavar="N",
                      help="finished trials the study should have in all (default: 20)")
    tune.add_argument("--steps", type=_count, metavar="S", help="env steps per trial (default: the preset's)")
    tune.add_argument("--jobs", type=_count, default=1, metavar="J",
                      help="trials at once, one process each (default: 1; at most the usable cores)")
    tune.add_argument("--storage", metavar="URL",
                      help="Optuna RDB storage (default: sqlite:///OUT/study.db)")
    tune.add_argument("--study", metavar="NAME", help="study name (default: <env>-<preset>); resumes if it exists")
    tune.add_argument("--out", type=Path, metavar="DIR", help="results folder (default: runs/tune-<study>)")
    tune.add_argument("--seed", type=_seed, default=0, metavar="S",
                      help="seeds the sampler and every trial's training (default: 0)")
    tune.add_argument("--evals", type=_count, default=5, metavar="K",
                      help="deterministic evaluations per trial, at S·k/K steps; the last is the trial's value "
                           "(default: 5)")
    tune.add_argument("--eval-episodes", type=_count, default=5, metavar="E",
                      help="episodes per evaluation (default: 5)")
    tune.add_argument("--startup-trials", type=_count, default=5, metavar="N",
                      help="trials the TPE sampler draws at random before modelling (default: 5)")
    tune.add_argument("--pruner-startup", type=int, default=5, metavar="N",
                      help="finished trials before the median pruner prunes (default: 5)")
    tune.add_argument("--pruner-warmup", type=int, metavar="K",
                      help="evaluations of a trial before it can be pruned (default: a third of --evals)")


def tune_command(args: argparse.Namespace) -> int:
    """``npppo tune``: run (or resume) the study that ``args`` describe."""
    try:
        import optuna
    except ImportError:
        raise NpppoError("npppo tune needs Optuna, an optional extra: pip install 'npppo[tune]'") from None
    from npppo.threads import set_num_threads

    set_num_threads(1)  # before the first trial process (it and the forkserver inherit the limit)
    from npppo.envs.mujoco_log import warnings_into

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = Study(args)
    with warnings_into(study.out):  # the trials' MuJoCo warnings: into the study's folder
        return study.run()
