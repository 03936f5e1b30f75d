"""The ``npppo`` command: train, evaluate, plot and benchmark from a shell.

    npppo train                                  # the tuned pendulum preset on Pendulum-v1
    npppo train --preset lunarlander --seed 1    # LunarLanderContinuous-v3 (pip install 'npppo[box2d]')
    npppo train --resume runs/Pendulum-v1-pendulum-0-20250101-120000
    npppo train --seeds 0 1 2 --out runs/three   # runs/three/seed_0, seed_1, seed_2
    npppo eval runs/Pendulum-v1-pendulum-0-20250101-120000 [--video clip.mp4]
    npppo plot runs/three --out pendulum.png
    npppo export runs/Pendulum-v1-pendulum-0-20250101-120000 --format c --out policy_c   # or --format onnx
    npppo tune --preset pendulum --trials 30 --steps 30000 --jobs 2   # an Optuna study (npppo[tune])
    npppo bench

A run folder holds ``config.json`` (the PPOConfig, loadable with ``--config``), ``run.json`` (how the
run was started: environment, seed, steps), ``progress.csv`` (one row of metrics per iteration),
``checkpoint.npz`` (the full training state, rewritten atomically every ``--checkpoint-every``
iterations, at the end and on Ctrl-C) and, once finished, ``model.npz`` (the acting part only:
:func:`npppo.checkpoint.write_model`). A ``--seeds`` folder also holds ``seeds.json``, so that
``--resume OUT`` can go on with the whole batch.
Errors in the input (SPEC §6) print as one line ``npppo: error: ...`` and exit with status 1; usage
errors (an unknown option, ``--steps -5``) print one line with a pointer to ``--help`` and exit with
status 2; Ctrl-C exits with status 130 after saving the last completed iteration, SIGTERM (``kill``,
a batch scheduler) likewise with status 143.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from npppo.backends import BACKENDS, MAX_WORKER_FAILURES, RAY_CONNECT_TIMEOUT_S
from npppo.errors import CheckpointError, ConfigError, NpppoError
from npppo.evaluation import EVAL_EPISODES
from npppo.interrupts import INTERRUPTED, TERMINATED, exit_status, interrupted_words, signal_of, sigterm_as_interrupt
from npppo.run_folder import RunRecord, check_out_folder, read_start_files, remove_unsaved, start_files
from npppo.train import CHECKPOINT_EVERY

DEFAULT_PRESET = "pendulum"
DEFAULT_STEPS = 100_000
USAGE = 2  # the usual status of a command given options it does not take
SEEDS_FILE = "seeds.json"  # in a --seeds folder: the seeds and options, for --resume


def shell(*words) -> str:
    """A command as one would type it: each word shell-quoted (paths with spaces paste back intact)."""
    return " ".join(shlex.quote(str(word)) for word in words)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


# ---------------------------------------------------------------------------------------- parsing
def _count(text: str) -> int:
    """A positive integer; accepts 20000, 20_000 and 2e4."""
    try:
        value = float(text.replace("_", "")) if any(c in text.lower() for c in ".e") else int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(value)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="npppo", formatter_class=formatter,
        description="Proximal Policy Optimization for continuous control, in NumPy + Numba.",
        epilog="examples:\n  npppo train\n  npppo eval runs/<run>\n  npppo plot runs/<run> runs/<other run>\n"
               "  npppo train --help     (and likewise for eval, plot, bench)",
    )
    from npppo import __version__

    parser.add_argument("--version", action="version", version=f"npppo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{train,eval,plot,export,presets,tune,bench}")
    commands.required = True

    train = commands.add_parser(
        "train", formatter_class=formatter, help="train a policy (default: the pendulum preset on Pendulum-v1)",
        description="Train a policy, showing progress; writes progress.csv, config.json and checkpoints.",
        epilog="examples:\n"
               "  npppo train                                   # pendulum preset, Pendulum-v1, 100k steps\n"
               "  npppo train --steps 20000 --out runs/quick    # a short run into a chosen folder\n"
               "  npppo train --preset seed --seed 3            # the seed's system, exactly\n"
               "  npppo train --preset lunarlander              # needs: pip install 'npppo[box2d]'\n"
               "  npppo train --env Hopper-v5                   # the mujoco preset (pip install 'npppo[mujoco]')\n"
               "  npppo train --config runs/quick/config.json --env MountainCarContinuous-v0\n"
               "  npppo train --resume runs/quick               # continue an interrupted run exactly\n"
               "  npppo train --resume runs/quick --steps 200000  # ... or extend a finished one\n"
               "  npppo train --seeds 0 1 2 --out runs/three     # runs/three/seed_0, ...; npppo plot runs/three\n\n"
               "Ctrl-C (or SIGTERM) saves a checkpoint of the last completed iteration; --resume continues "
               "from it.",
    )
    train.add_argument("--env", metavar="ID", help="Gymnasium id (default: the preset's environment)")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--preset", metavar="NAME",
                        help=f"a named config (default: the preset made for --env if there is one, else PPOConfig's "
                             f"defaults; {DEFAULT_PRESET} without --env)")
    source.add_argument("--config", metavar="FILE", type=Path,
                        help="a JSON config: PPOConfig fields, or a preset-style {env, steps, config}")
    train.add_argument("--steps", type=_count, metavar="N",
                       help="env steps in all (default: the preset's, 100000 for pendulum); a run stops at the first "
                            "iteration that reaches N, so whole-episode batches may overshoot N by less than one batch")
    seeds = train.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, metavar="S", help="run seed (default: 0)")
    seeds.add_argument("--seeds", type=_seed, nargs="+", metavar="S",
                       help="train several seeds, each into OUT/seed_S (then: npppo plot OUT draws them all)")
    train.add_argument("--parallel", type=_count, metavar="N",
                       help="with --seeds: runs side by side (default: as many as fit the usable cores, counting "
                            "each run's --workers; never more processes than cores)")
    train.add_argument("--out", type=Path, metavar="DIR",
                       help="run folder (default: runs/<env>-<preset>-<seed>-<YYYYmmdd-HHMMSS>)")
    train.add_argument("--resume", type=Path, metavar="DIR",
                       help="continue the run in DIR from DIR/checkpoint.npz (same config, seed and steps); for a "
                            "--seeds folder: resume its interrupted seeds and start those never started")
    train.add_argument("--checkpoint-every", type=_count, default=CHECKPOINT_EVERY, metavar="N",
                       help=f"rewrite checkpoint.npz every N iterations (default: {CHECKPOINT_EVERY})")
    train.add_argument("--threads", type=_count, metavar="N",
                       help="BLAS threads (default: $OMP_NUM_THREADS or $OPENBLAS_NUM_THREADS if set, else 1: "
                            "small networks lose to thread overhead)")
    _env_options(train)
    train.add_argument("--workers", type=_workers, default="auto", metavar="N|auto",
                       help="rollout worker processes (default: auto = the usable cores, at most the number of "
                            "environments; 1 = in this process); the result is the same for any N")
    train.add_argument("--backend", choices=BACKENDS, default="local",
                       help="where the workers run: local processes (default) or Ray actors (pip install 'npppo[ray]')")
    train.add_argument("--ray-address", metavar="ADDR",
                       help="join this Ray cluster (as ray.init(address=...); 'auto' finds a local one); "
                            "default: start a local Ray")
    train.add_argument("--ray-connect-timeout", type=_seconds, metavar="S",
                       help="with --ray-address: give up after S seconds without reaching the cluster "
                            f"(default: {RAY_CONNECT_TIMEOUT_S:g})")
    train.add_argument("--max-worker-failures", type=_count, default=MAX_WORKER_FAILURES, metavar="N",
                       help=f"stop the run after a worker fails N times in a row (default: {MAX_WORKER_FAILURES})")
    train.add_argument("--eval-every", type=_count, metavar="N",
                       help="evaluate the deterministic policy every N env steps on a separate environment "
                            "(its own seeds); logged in progress.csv, the best kept as best.npz")
    train.add_argument("--eval-episodes", type=_count, default=EVAL_EPISODES, metavar="K",
                       help=f"episodes per evaluation (default: {EVAL_EPISODES})")
    train.add_argument("--tensorboard", type=Path, metavar="DIR",
                       help="also write progress.csv's scalars as TensorBoard event files into DIR "
                            "(pip install 'npppo[tensorboard]'; view with: tensorboard --logdir DIR)")

    evaluate = commands.add_parser(
        "eval", formatter_class=formatter, help="mean ± std return of a saved policy",
        description="Run the deterministic policy (the mean action) for some episodes; print mean ± std return.",
        epilog="examples:\n"
               "  npppo eval runs/quick                   # the run's model.npz (or checkpoint.npz)\n"
               "  npppo eval runs/hopper-s0 runs/hopper-s1 runs/hopper-s2   # ... and over runs: IQM [95% CI]\n"
               "  npppo eval runs/three                   # a folder of train --seeds runs: each seed, then IQM\n"
               "  npppo eval runs/quick/model.npz --episodes 50\n"
               "  npppo eval runs/quick --render --episodes 3\n"
               "  npppo eval runs/quick --video pendulum.mp4 --episodes 2   # or pendulum.gif",
    )
    evaluate.add_argument("paths", type=Path, nargs="+", metavar="PATH",
                          help="a run folder, a folder of seed_* runs (from train --seeds) or a .npz checkpoint; "
                               "several runs (e.g. one per seed) also print their "
                               "mean ± std and interquartile mean with a 95%% bootstrap CI")
    evaluate.add_argument("--env", metavar="ID", help="Gymnasium id (default: the one it was trained on)")
    evaluate.add_argument("--episodes", type=_count, default=EVAL_EPISODES, metavar="N",
                          help=f"episodes (default: {EVAL_EPISODES})")
    shown = evaluate.add_mutually_exclusive_group()
    shown.add_argument("--render", action="store_true",
                       help="show the episodes in a window (needs a display and pip install 'npppo[render]')")
    shown.add_argument("--video", type=Path, metavar="FILE",
                       help="record the episodes to FILE.mp4 or FILE.gif from rgb_array frames "
                            "(pip install 'npppo[video]'; Pendulum also needs 'npppo[render]')")
    evaluate.add_argument("--fps", type=_count, default=30, metavar="N",
                          help="frames per second of --video (default: 30)")
    _env_options(evaluate)

    plot = commands.add_parser(
        "plot", formatter_class=formatter, help="learning curves of runs to a PNG (needs matplotlib)",
        description="Plot mean episode return against env steps from each run's progress.csv; several "
                    "runs are drawn as their mean with a min-max band.",
        epilog="examples:\n"
               "  npppo plot runs/quick                           # writes runs/quick/returns.png\n"
               "  npppo plot runs/three                           # the seed_* runs of train --seeds\n"
               "  npppo plot runs/pendulum-s0 runs/pendulum-s1 runs/pendulum-s2 --out pendulum.png",
    )
    plot.add_argument("dirs", type=Path, nargs="+", metavar="DIR",
                      help="run folders; a folder of seed_* runs (from train --seeds) stands for all of them")
    plot.add_argument("--out", type=Path, metavar="PNG",
                      help="image file (default: DIR/returns.png for one run, returns.png for several)")

    from npppo import export

    export.add_command(commands, formatter)
    commands.add_parser(
        "presets", formatter_class=formatter, help="list the named configs (name, environment, steps, description)",
        description="The presets that --preset takes: each one's environment, step count and what it is for.",
        epilog="example:\n  npppo presets\n  npppo train --preset lunarlander")

    from npppo.tune import add_parser as add_tune_parser

    add_tune_parser(commands, formatter)
    commands.add_parser(
        "bench", formatter_class=formatter, add_help=False, help="performance figures (npppo bench --help)",
        description="Forwards its arguments to npppo.bench.", epilog="example:\n  npppo bench",
    )
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _workers(text: str) -> int | str:
    return "auto" if text == "auto" else _count(text)


def _env_kwargs(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"reward\": \"twin\"}}': {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of keyword arguments, got {text!r}")
    return value


def _env_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-kwargs", type=_env_kwargs, metavar="JSON",
                        help="keyword arguments for gymnasium.make, as a JSON object (saved with the run)")
    parser.add_argument("--max-episode-steps", type=_count, metavar="N",
                        help="end episodes after N steps (a TimeLimit wrapper, saved with the run)")
    parser.add_argument("--episode-step-limit", type=_count, metavar="N",
                        help="stop with an error when an episode runs N steps without ending (whole-episode "
                             "batches and evaluations; default: 100,000)")


# ---------------------------------------------------------------------------------------- train
def train_command(args: argparse.Namespace) -> int:
    from npppo.threads import requested_threads, set_num_threads

    if args.seeds is not None:
        return seeds_command(args)
    if args.resume is not None and (args.resume / SEEDS_FILE).is_file():
        return resume_seeds_command(args)
    if args.parallel is not None:
        raise NpppoError("--parallel goes with --seeds (several runs side by side)")
    set_num_threads(args.threads or requested_threads() or 1)
    agent, out, run = _resume(args) if args.resume is not None else _fresh(args)
    with agent:  # the workers end with the command, whatever way it ends (train() routes MuJoCo's warnings)
        return _train(agent, out, run, args)


def _train(agent, out: Path, run: RunRecord, args: argparse.Namespace) -> int:
    from npppo.train import RunOptions, train
    from npppo.warmup import announce_compiling

    agent.set_workers(args.workers, args.backend, args.max_worker_failures, args.ray_address,
                      args.ray_connect_timeout or RAY_CONNECT_TIMEOUT_S)
    _note_oversubscribed(agent.workers if agent.backend == "local" else 1)
    resumed = args.resume is not None and (out / "checkpoint.npz").exists()  # else restarted: _restart
    total = run.total_steps
    if agent.num_timesteps >= total:
        raise NpppoError(f"the run in {out} already has {agent.num_timesteps:,} env steps, at or past its target of "
                         f"{total:,}: nothing to do; pass a larger --steps to extend it")
    where = " on Ray" if agent.backend == "ray" else ""
    workers = f"{agent.workers} worker" + ("s" if agent.workers > 1 else "") + where
    print(f"npppo: training {run.preset} on {run.env}, seed {agent.seed}, {total:,} env steps, {workers}"
          + (f", resumed at iteration {agent.iteration}" if resumed else "") + f" -> {out}/")
    print("       (Ctrl-C saves a checkpoint of the last completed iteration)")
    if args.tensorboard is not None:
        run.tensorboard = str(args.tensorboard)  # a resumed run goes on writing there
    made_folder = not out.exists()
    if not resumed:
        try:
            out.mkdir(parents=True, exist_ok=True)
            start_files(out, agent, run)
        except OSError as exc:
            raise NpppoError(f"cannot write the run folder {out}: {exc.strerror or exc}; "
                             "choose another --out") from None
    options = RunOptions(total, run.checkpoint_every, run.eval_every, run.eval_episodes, run=run,
                         tensorboard=run.tensorboard)
    try:
        with announce_compiling(sys.stdout):
            result = train(agent, out, options, resumed=resumed)
    except NpppoError:
        if made_folder and not (out / "checkpoint.npz").exists():
            remove_unsaved(out)
        raise
    if result.interrupted:
        stopped = interrupted_words(result.signum)
        if result.saved_iteration is None:
            if made_folder:
                remove_unsaved(out)
            print(f"npppo: {stopped} before the first iteration completed; nothing saved", file=sys.stderr)
        else:
            print(f"npppo: {stopped}; saved iteration {result.saved_iteration} to {out / 'checkpoint.npz'}; "
                  f"resume with: {shell('npppo', 'train', '--resume', out)}", file=sys.stderr)
        return exit_status(result.signum)
    print(f"evaluation: return {result.eval_mean:.1f} ± {result.eval_std:.1f} over {options.eval_episodes} "
          f"episodes (deterministic policy, {run.env})")
    best = f", {out / 'best.npz'} (the best evaluation)" if (out / "best.npz").exists() else ""
    print(f"saved: {out / 'model.npz'} (the policy){best}, {out / 'checkpoint.npz'}, {out / 'progress.csv'}, "
          f"{out / 'config.json'}")
    print(f"next:  {shell('npppo', 'eval', out)}   |   {shell('npppo', 'plot', out)}")
    return 0


def _note_oversubscribed(workers: int) -> None:
    """One line on stderr when local workers outnumber the usable cores (they then take turns on them)."""
    from npppo.backends import usable_cores

    cores = usable_cores()
    if workers > cores:
        print(f"npppo: note: {workers} workers on {cores} usable cores: they take turns, which only slows the run "
              f"(the result is the same for any --workers; --workers auto uses {cores})", file=sys.stderr)


def check_writable(out: Path) -> None:
    """NpppoError (one line: which folder, and why) when the run folder ``out`` cannot be made or written."""
    import os

    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise NpppoError(f"cannot make the run folder {out}: {existing} is a file, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the run folder" if existing == out else f"the run folder {out}: its parent"
        raise NpppoError(f"cannot write {what} {existing} (permission denied); choose another --out")


def seeds_command(args: argparse.Namespace) -> int:
    """``npppo train --seeds S1 S2 ...``: one run per seed into ``OUT/seed_S``, through :func:`train_command`,
    one after another or side by side in processes (never more processes than usable cores in all).
    ``OUT/seeds.json`` keeps the seeds and options, for ``npppo train --resume OUT``."""
    if args.resume is not None:
        raise NpppoError("--seeds starts new runs; to continue a batch: npppo train --resume OUT")
    seeds = list(dict.fromkeys(args.seeds))
    _, facts, preset_name, _ = _source(args)
    env = args.env or facts.get("env") or "env"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or Path("runs") / f"{env.replace('/', '_').replace(':', '_')}-{preset_name}-seeds-{stamp}"
    check_writable(out)
    for seed in seeds:
        check_out_folder(out / f"seed_{seed}", announce=False)  # each run says it when it starts
    options = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
               if key not in (*SEED_PLACEMENT, "seeds", "seed", "out", "resume", "command")}
    out.mkdir(parents=True, exist_ok=True)
    (out / SEEDS_FILE).write_text(json.dumps({"seeds": seeds, "options": options}, indent=2) + "\n")
    jobs = [_fresh_seed_job(args, out, seed) for seed in seeds]
    return _run_seeds(jobs, out, args, f"training seeds {' '.join(map(str, seeds))}")


SEED_PLACEMENT = ("workers", "parallel", "threads", "backend", "ray_address", "max_worker_failures")  # not learning


def _fresh_seed_job(args: argparse.Namespace, out: Path, seed: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "seeds": None, "parallel": None, "resume": None, "seed": seed,
                                 "out": out / f"seed_{seed}",
                                 "tensorboard": args.tensorboard / f"seed_{seed}" if args.tensorboard else None})


def resume_seeds_command(args: argparse.Namespace) -> int:
    """``npppo train --resume OUT`` on a ``--seeds`` folder: resume each interrupted seed from its
    checkpoint, start each seed never started, leave the finished ones (with ``--steps``: extend them)."""
    for flag in ("preset", "config", "seed", "env", "env_kwargs", "max_episode_steps", "eval_every", "tensorboard"):
        if getattr(args, flag) is not None:
            raise NpppoError("--resume continues the saved runs with their own settings: "
                             f"drop --{flag.replace('_', '-')}")
    out = args.resume
    try:
        record = json.loads((out / SEEDS_FILE).read_text())
        seeds, options = [int(seed) for seed in record["seeds"]], dict(record["options"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NpppoError(f"{out / SEEDS_FILE} is unreadable ({exc}): "
                         "resume each seed with --resume OUT/seed_S") from None
    placement = {key: getattr(args, key) for key in SEED_PLACEMENT}
    fresh = argparse.Namespace(**{**options, **placement, "steps": args.steps or options.get("steps"),
                                  "config": Path(options["config"]) if options.get("config") else None,
                                  "tensorboard": Path(options["tensorboard"]) if options.get("tensorboard") else None})
    jobs, states = [], []
    for seed in seeds:
        folder = out / f"seed_{seed}"
        if (folder / "checkpoint.npz").exists():
            if (folder / "model.npz").exists() and args.steps is None:
                continue  # finished
            jobs.append(argparse.Namespace(**{**vars(fresh), "resume": folder, "steps": args.steps, "seed": None,
                                              "out": None, "preset": None, "config": None, "env": None,
                                              "env_kwargs": None, "max_episode_steps": None, "eval_every": None,
                                              "tensorboard": None, "seeds": None, "parallel": None}))
            states.append(f"{seed} from its checkpoint")
        else:
            jobs.append(_fresh_seed_job(fresh, out, seed))
            states.append(f"{seed} from the start")
    if not jobs:
        raise NpppoError(f"every seed in {out} has finished ({', '.join(map(str, seeds))}): nothing to do; pass a "
                         "larger --steps to extend them")
    return _run_seeds(jobs, out, args, f"resuming seeds {', '.join(states)}")


def _run_seeds(jobs: list[argparse.Namespace], out: Path, args: argparse.Namespace, what: str) -> int:
    """Run the seed jobs, one after another or side by side; on Ctrl-C, one line per seed of the batch
    with its state, and how to go on."""
    from npppo.backends import usable_cores
    from npppo.seeds import seed_plan, train_side_by_side

    parallel, workers = seed_plan(len(jobs), args.workers, args.parallel, usable_cores())
    for job in jobs:
        job.workers = workers
    how = (f"{parallel} side by side" if parallel > 1 else "one after another") + \
        f", {workers} worker{'s' if workers > 1 else ''} each"
    print(f"npppo: {what} ({how}) -> {out}/seed_<S>/")
    try:
        if parallel == 1:
            status = 0
            for job in jobs:
                status = train_command(job)
                if status != 0:
                    break
        else:
            status = train_side_by_side(jobs, parallel, train_command)
    except KeyboardInterrupt as interrupt:
        status = exit_status(signal_of(interrupt))
    if status in (INTERRUPTED, TERMINATED):
        _print_seed_states(out)
        return status
    if status != 0:
        return status
    count = len(_batch_seeds(out))
    print(f"next:  {shell('npppo', 'plot', out)}   (draws the {count} seeds as their mean with a min-max band)")
    return 0


def _batch_seeds(out: Path) -> list[int]:
    try:
        return [int(seed) for seed in json.loads((out / SEEDS_FILE).read_text())["seeds"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _print_seed_states(out: Path) -> None:
    """After Ctrl-C: each seed's state (finished, saved at an iteration, not started), then the command
    that goes on with the batch."""
    from npppo.checkpoint import read_checkpoint

    for seed in _batch_seeds(out):
        folder = out / f"seed_{seed}"
        if (folder / "model.npz").exists():
            state = "finished"
        elif (folder / "checkpoint.npz").exists():
            try:
                state = f"interrupted; iteration {read_checkpoint(folder / 'checkpoint.npz')[1]['iteration']} saved"
            except NpppoError as exc:
                state = f"interrupted; its checkpoint is unreadable ({exc})"
        else:
            state = "not started (or interrupted before its first iteration): nothing saved"
        print(f"seed {seed}: {state}", file=sys.stderr)
    print(f"npppo: interrupted; go on with the batch (resumes the interrupted seeds, starts the others): "
          f"{shell('npppo', 'train', '--resume', out)}", file=sys.stderr)


def env_spec(env: str, kwargs: dict[str, Any] | None, max_episode_steps: int | None):
    """What to make an environment from: its id, or a factory when it has kwargs or a time limit."""
    from npppo.envs import EnvFactory

    return EnvFactory(env, kwargs or {}, max_episode_steps) if kwargs or max_episode_steps else env


def _source(args: argparse.Namespace):
    """(config, run facts, name) of the preset or config file that ``args`` name."""
    from npppo import presets
    from npppo.config import PPOConfig, read_config_file

    if args.config is not None:
        config, facts = read_config_file(args.config)
        return config, facts, args.config.stem, args.config.stem
    preset_name = args.preset or (presets.for_env(args.env) if args.env else DEFAULT_PRESET)
    if preset_name is None:  # --env names an environment that no preset was made for
        return PPOConfig(), {}, "default", "default config"
    config, facts = presets.load(preset_name)
    described = preset_name if args.preset or not args.env else f"{preset_name} (the preset for {args.env})"
    return config, facts, preset_name, described


def _fresh(args: argparse.Namespace):
    from npppo.ppo import PPO

    config, facts, preset_name, described = _source(args)
    env = args.env or facts.get("env")
    if env is None:
        raise ConfigError(f"config file {args.config} names no environment: pass --env ID")
    seed = args.seed if args.seed is not None else 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or Path("runs") / f"{env.replace('/', '_').replace(':', '_')}-{preset_name}-{seed}-{stamp}"
    check_writable(out)
    check_out_folder(out)
    env_kwargs = args.env_kwargs if args.env_kwargs is not None else facts.get("env_kwargs", {})
    run = RunRecord(env, described, int(args.steps or facts.get("steps") or DEFAULT_STEPS), args.checkpoint_every,
                    args.eval_every, args.eval_episodes, args.episode_step_limit)
    # unknown ids and unsupported spaces fail here, before any file is written
    agent = PPO(env_spec(env, env_kwargs, args.max_episode_steps), config, seed=seed)
    agent.episode_step_limit = run.episode_step_limit or agent.episode_step_limit
    return agent, out, run


def _resume(args: argparse.Namespace):
    from npppo.checkpoint import read_checkpoint
    from npppo.ppo import PPO

    for flag in ("preset", "config", "seed", "out", "env_kwargs", "max_episode_steps", "eval_every"):
        if getattr(args, flag) is not None:
            raise NpppoError(f"--resume continues the saved run with its own settings: drop --{flag.replace('_', '-')}")
    out = args.resume
    checkpoint = out / "checkpoint.npz"
    if not checkpoint.exists():
        return _restart(args)
    _, meta = read_checkpoint(checkpoint)
    saved = dict(meta.get("run") or {})  # a checkpoint that PPO.save wrote has none
    record = {} if args.env else meta.get("env") or {}
    target = int(saved.get("total_steps") or DEFAULT_STEPS)
    if args.steps is not None and args.steps < target:
        raise NpppoError(f"--steps {args.steps:,} is below the run's own target of {target:,}: a resumed run can "
                         "only be extended (drop --steps to finish it as planned)")
    run = RunRecord.from_dict({**saved, "env": args.env or saved.get("env") or meta.get("env_id"),
                               "total_steps": int(args.steps or target)})
    agent = PPO.load(checkpoint, env=env_spec(run.env, record.get("kwargs"), record.get("max_episode_steps")))
    if args.episode_step_limit is not None:  # a run option: a resumed run may change it
        run.episode_step_limit = args.episode_step_limit
    agent.episode_step_limit = run.episode_step_limit or agent.episode_step_limit
    return agent, out, run


def _restart(args: argparse.Namespace):
    """``--resume DIR`` of a run that ended before its first checkpoint: the same run from its start,
    from DIR/config.json and DIR/run.json."""
    from npppo.ppo import PPO

    out = args.resume
    config, run, facts = read_start_files(out)
    run.env = args.env or run.env
    run.total_steps = int(args.steps or run.total_steps)
    print(f"npppo: {out} holds no checkpoint (the run ended before its first one): starting it afresh from its "
          "config.json and run.json")
    spec = env_spec(run.env, facts.get("env_kwargs"), facts.get("max_episode_steps"))
    return PPO(spec, config, seed=int(facts["seed"])), out, run


# ---------------------------------------------------------------------------------------- eval, plot, bench
def eval_command(args: argparse.Namespace) -> int:
    from npppo.plotting import expand_runs

    scores = [_evaluate(path, args) for path in expand_runs(args.paths)]  # a --seeds folder: each of its seeds
    if len(scores) > 1:
        from npppo.stats import summarize

        summary = summarize(scores)
        low, high = summary["iqm_ci95"]
        print(f"over {len(scores)} runs (each scored by its mean return): mean {summary['mean']:.1f} ± "
              f"{summary['std']:.1f}, IQM {summary['iqm']:.1f} [95% CI {low:.1f}, {high:.1f}] (bootstrap over runs)")
    return 0


def _evaluate(path: Path, args: argparse.Namespace) -> float:
    """Evaluate one run folder or checkpoint, print its line, return its mean return."""
    from npppo.ppo import PPO

    if path.is_dir():
        found = [p for p in (path / "model.npz", path / "checkpoint.npz") if p.exists()]
        if not found:
            raise CheckpointError(f"{path} holds neither model.npz nor checkpoint.npz")
        path = found[0]
    if args.render:
        _check_display()
    if args.video is not None:
        from npppo.video import check_writer

        check_writer(args.video)
    agent = PPO.load(path)
    if args.episode_step_limit is not None:
        agent.episode_step_limit = args.episode_step_limit
    spec = agent.env_spec
    if args.env or args.env_kwargs is not None or args.max_episode_steps or args.render or args.video:
        from npppo.envs import EnvFactory

        base = spec if isinstance(spec, EnvFactory) else EnvFactory(spec if isinstance(spec, str) else agent.env_id)
        kwargs = {**base.kwargs, **(args.env_kwargs or {})}
        if args.render or args.video:
            kwargs["render_mode"] = "human" if args.render else "rgb_array"
        if args.video:
            import os

            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # frames only: pygame opens no window
        spec = EnvFactory(args.env or base.env_id, kwargs, args.max_episode_steps or base.max_episode_steps)
    env = getattr(spec, "env_id", spec)
    from npppo.video import VideoWriter

    video = VideoWriter(args.video, args.fps) if args.video is not None else None
    try:
        mean, std = agent.evaluate(episodes=args.episodes, env=spec, frames=video)
    except (ImportError, gym_missing()) as exc:  # pygame, for the classic-control environments
        if video is not None:
            video.abort()
        raise NpppoError(f"rendering {env} needs a package that is missing ({exc}): "
                         "pip install 'npppo[render]'") from None
    except BaseException:
        if video is not None:
            video.abort()
        raise
    print(f"{path} on {env}: return {mean:.1f} ± {std:.1f} over {args.episodes} episodes "
          f"(deterministic policy, iteration {agent.iteration}, {agent.num_timesteps:,} env steps)")
    if video is not None:
        video.close()
        print(f"npppo: wrote {args.video} ({video.count} frames at {args.fps} frames/s)")
    return mean


def gym_missing() -> type[Exception]:
    """Gymnasium's error for a missing optional package (pygame for rendering)."""
    import gymnasium

    return gymnasium.error.DependencyNotInstalled


def _check_display() -> None:
    import os

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise NpppoError("--render opens a window, but there is no display (DISPLAY is not set): "
                         "run it on a desktop session")
    try:
        import pygame  # noqa: F401
    except ImportError:
        raise NpppoError("--render needs pygame, an optional extra: pip install 'npppo[render]'") from None


def plot_command(args: argparse.Namespace) -> int:
    from npppo.plotting import expand_runs, plot_runs

    dirs = expand_runs(args.dirs)
    out = args.out or (args.dirs[0] / "returns.png" if len(args.dirs) == 1 else Path("returns.png"))
    print(f"npppo: wrote {plot_runs(dirs, out)}" + (f" ({len(dirs)} runs)" if len(dirs) > 1 else ""))
    return 0


def presets_command(args: argparse.Namespace) -> int:
    """``npppo presets``: one line per preset: name, environment, steps, the first sentence of its description."""
    from npppo import presets

    rows = []
    for name in presets.names():
        facts = presets.load(name)[1]
        envs = sorted(env for env, preset in presets.FOR_ENV.items() if preset == name and env != facts["env"])
        env = " / ".join([facts["env"], *envs])
        rows.append((name, env, f"{facts['steps']:,}", _first_sentence(facts.get("description", ""))))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
    print("use: npppo train --preset NAME   (Python: npppo.presets.get(NAME); names: npppo.presets.names())")
    return 0


def _first_sentence(text: str, width: int = 72) -> str:
    """The description's opening words: up to its first colon, parenthesis or full stop, at most ``width``
    characters (cut at a word)."""
    for mark in (". ", ": ", " ("):
        text = text.split(mark, 1)[0]
    text = text.rstrip(".")
    return text if len(text) <= width else text[:width].rsplit(" ", 1)[0].rstrip(",") + " ..."


def bench_command(argv: list[str]) -> int:
    import importlib

    return importlib.import_module("npppo.bench").main(argv)


def export_command(args: argparse.Namespace) -> int:
    from npppo import export

    return export.command(args)


def tune_command(args: argparse.Namespace) -> int:
    from npppo.tune import tune_command as run_study

    return run_study(args)


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """The console script: returns the exit status (0 ok, 1 an npppo error, 2 bad usage, 130 Ctrl-C,
    143 SIGTERM)."""
    from npppo.progress import PipeSafeStream

    argv = list(sys.argv[1:] if argv is None else argv)
    stdout = sys.stdout
    if not isinstance(stdout, PipeSafeStream):
        sys.stdout = PipeSafeStream(stdout)  # `npppo train | head -1` must not stop the run
    try:
        return _run_command(argv)
    finally:
        sys.stdout = stdout


def _run_command(argv: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            if argv[:1] == ["bench"]:
                return bench_command(argv[1:])
            args = build_parser().parse_args(argv)
            command = {"train": train_command, "eval": eval_command, "plot": plot_command,
                       "export": export_command, "presets": presets_command,
                       "tune": tune_command}[args.command]
            with sigterm_as_interrupt():
                return command(args)
        except (NpppoError, OSError) as exc:
            print(f"npppo: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as interrupt:
            print(f"npppo: {interrupted_words(signal_of(interrupt))}", file=sys.stderr)
            return exit_status(signal_of(interrupt))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"npppo: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
