"""The ``npppo`` command: train, evaluate, plot and benchmark from a shell.

    npppo train                                  # the tuned pendulum preset on Pendulum-v1
    npppo train --preset lunarlander --seed 1    # LunarLanderContinuous-v3 (pip install 'npppo[box2d]')
    npppo train --resume runs/Pendulum-v1-pendulum-0-20250101-120000
    npppo train --seeds 0 1 2 --out runs/three   # runs/three/seed_0, seed_1, seed_2
    npppo eval runs/Pendulum-v1-pendulum-0-20250101-120000 [--video clip.mp4]
    npppo plot runs/three --out pendulum.png
    npppo export runs/Pendulum-v1-pendulum-0-20250101-120000 --format c --out policy_c   # or --format onnx
    npppo bench

A run folder holds ``config.json`` (the PPOConfig, loadable with ``--config``), ``run.json`` (how the
run was started: environment, seed, steps), ``progress.csv`` (one row of metrics per iteration),
``checkpoint.npz`` (the full training state, rewritten atomically
every ``--checkpoint-every`` iterations, at the end and on Ctrl-C) and, once finished, ``model.npz``.
Errors in the input (SPEC §6) print as one line ``npppo: error: ...`` and exit with status 1;
Ctrl-C exits with status 130 after saving the last completed iteration, SIGTERM (``kill``, a batch
scheduler) likewise with status 143.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from npppo.errors import CheckpointError, ConfigError, NpppoError
from npppo.interrupts import exit_status, signal_of, sigterm_as_interrupt
from npppo.run_folder import check_out_folder, read_start_files, remove_unsaved, start_files

DEFAULT_PRESET = "pendulum"
DEFAULT_STEPS = 100_000
INTERRUPTED = exit_status(signal.SIGINT)  # 130: the shell's status for a process ended by SIGINT
TERMINATED = exit_status(signal.SIGTERM)  # 143


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
    parser = argparse.ArgumentParser(
        prog="npppo", formatter_class=formatter,
        description="Proximal Policy Optimization for continuous control, in NumPy + Numba.",
        epilog="examples:\n  npppo train\n  npppo eval runs/<run>\n  npppo plot runs/<run> runs/<other run>\n"
               "  npppo train --help     (and likewise for eval, plot, bench)",
    )
    commands = parser.add_subparsers(dest="command", metavar="{train,eval,plot,export,bench}")
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
                       help="continue the run in DIR from DIR/checkpoint.npz (same config, seed and steps)")
    train.add_argument("--checkpoint-every", type=_count, default=10, metavar="N",
                       help="rewrite checkpoint.npz every N iterations (default: 10)")
    train.add_argument("--threads", type=_count, metavar="N",
                       help="BLAS threads (default: $OMP_NUM_THREADS or $OPENBLAS_NUM_THREADS if set, else 1: "
                            "small networks lose to thread overhead)")
    _env_options(train)
    train.add_argument("--workers", type=_workers, default="auto", metavar="N|auto",
                       help="rollout worker processes (default: auto = the usable cores, at most the number of "
                            "environments; 1 = in this process); the result is the same for any N")
    train.add_argument("--backend", choices=["local", "ray"], default="local",
                       help="where the workers run: local processes (default) or Ray actors (pip install 'npppo[ray]')")
    train.add_argument("--ray-address", metavar="ADDR",
                       help="join this Ray cluster (as ray.init(address=...); 'auto' finds a local one); "
                            "default: start a local Ray")
    train.add_argument("--ray-connect-timeout", type=_seconds, metavar="S",
                       help="with --ray-address: give up after S seconds without reaching the cluster (default: 30)")
    train.add_argument("--max-worker-failures", type=_count, default=3, metavar="N",
                       help="stop the run after a worker fails N times in a row (default: 3)")
    train.add_argument("--eval-every", type=_count, metavar="N",
                       help="evaluate the deterministic policy every N env steps on a separate environment "
                            "(its own seeds); logged in progress.csv, the best kept as best.npz")
    train.add_argument("--eval-episodes", type=_count, default=10, metavar="K",
                       help="episodes per evaluation (default: 10)")
    train.add_argument("--tensorboard", type=Path, metavar="DIR",
                       help="also write progress.csv's scalars as TensorBoard event files into DIR "
                            "(pip install 'npppo[tensorboard]'; view with: tensorboard --logdir DIR)")

    evaluate = commands.add_parser(
        "eval", formatter_class=formatter, help="mean ± std return of a saved policy",
        description="Run the deterministic policy (the mean action) for some episodes; print mean ± std return.",
        epilog="examples:\n"
               "  npppo eval runs/quick                   # the run's model.npz (or checkpoint.npz)\n"
               "  npppo eval runs/hopper-s0 runs/hopper-s1 runs/hopper-s2   # ... and over runs: IQM [95% CI]\n"
               "  npppo eval runs/quick/model.npz --episodes 50\n"
               "  npppo eval runs/quick --render --episodes 3\n"
               "  npppo eval runs/quick --video pendulum.mp4 --episodes 2   # or pendulum.gif",
    )
    evaluate.add_argument("paths", type=Path, nargs="+", metavar="PATH",
                          help="a run folder or a .npz checkpoint; several (e.g. one per seed) also print their "
                               "mean ± std and interquartile mean with a 95%% bootstrap CI")
    evaluate.add_argument("--env", metavar="ID", help="Gymnasium id (default: the one it was trained on)")
    evaluate.add_argument("--episodes", type=_count, default=10, metavar="N", help="episodes (default: 10)")
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
                        help="end episodes after N steps (a TimeLimit wrapper; needed for an env without one)")


# ---------------------------------------------------------------------------------------- train
def train_command(args: argparse.Namespace) -> int:
    from npppo.threads import requested_threads, set_num_threads

    if args.seeds is not None:
        return seeds_command(args)
    if args.parallel is not None:
        raise NpppoError("--parallel goes with --seeds (several runs side by side)")
    set_num_threads(args.threads or requested_threads() or 1)
    agent, out, run = _resume(args) if args.resume is not None else _fresh(args)
    with agent:  # the workers end with the command, whatever way it ends
        return _train(agent, out, run, args)


def _train(agent, out: Path, run: dict[str, Any], args: argparse.Namespace) -> int:
    from npppo.backends import RAY_CONNECT_TIMEOUT_S
    from npppo.jit import cache_root
    from npppo.train import RunOptions, train

    agent.set_workers(args.workers, args.backend, args.max_worker_failures, args.ray_address,
                      args.ray_connect_timeout or RAY_CONNECT_TIMEOUT_S)
    resumed = args.resume is not None and (out / "checkpoint.npz").exists()  # else restarted: _restart
    total = run["total_steps"]
    if agent.num_timesteps >= total:
        raise NpppoError(f"the run in {out} already has {agent.num_timesteps:,} env steps, at or past its target of "
                         f"{total:,}: nothing to do; pass a larger --steps to extend it")
    where = " on Ray" if agent.backend == "ray" else ""
    workers = f"{agent.workers} worker" + ("s" if agent.workers > 1 else "") + where
    print(f"npppo: training {run['preset']} on {run['env']}, seed {agent.seed}, {total:,} env steps, {workers}"
          + (f", resumed at iteration {agent.iteration}" if resumed else "") + f" -> {out}/")
    print("       (Ctrl-C saves a checkpoint of the last completed iteration)")
    if not cache_root().exists():
        print("npppo: compiling kernels (first run only: about 10 s before the first iteration)")
    if args.tensorboard is not None:
        run["tensorboard"] = str(args.tensorboard)  # a resumed run goes on writing there
    made_folder = not out.exists()
    if not resumed:
        out.mkdir(parents=True, exist_ok=True)
        start_files(out, agent, run)
    options = RunOptions(total, args.checkpoint_every if args.resume is None else run.get("checkpoint_every", 10),
                         run.get("eval_every"), run.get("eval_episodes", 10), run=run,
                         tensorboard=run.get("tensorboard"))
    try:
        result = train(agent, out, options, resumed=resumed)
    except NpppoError:
        if made_folder and not (out / "checkpoint.npz").exists():
            remove_unsaved(out)
        raise
    if result.interrupted:
        stopped = _interrupted(result.signum)
        if result.saved_iteration is None:
            if made_folder:
                remove_unsaved(out)
            print(f"npppo: {stopped} before the first iteration completed; nothing saved", file=sys.stderr)
        else:
            print(f"npppo: {stopped}; saved iteration {result.saved_iteration} to {out / 'checkpoint.npz'}; "
                  f"resume with: npppo train --resume {out}", file=sys.stderr)
        return exit_status(result.signum)
    print(f"evaluation: return {result.eval_mean:.1f} ± {result.eval_std:.1f} over {options.eval_episodes} "
          f"episodes (deterministic policy, {run['env']})")
    print(f"saved: {out / 'model.npz'} (the policy), {out / 'checkpoint.npz'}, {out / 'progress.csv'}, "
          f"{out / 'config.json'}")
    print(f"next:  npppo eval {out}   |   npppo plot {out}")
    return 0


def seeds_command(args: argparse.Namespace) -> int:
    """``npppo train --seeds S1 S2 ...``: one run per seed into ``OUT/seed_S``, through :func:`train_command`,
    one after another or side by side in processes (never more processes than usable cores in all)."""
    from npppo.backends import usable_cores

    if args.resume is not None:
        raise NpppoError("--seeds starts new runs: resume each one with --resume OUT/seed_S")
    seeds = list(dict.fromkeys(args.seeds))
    parallel, workers = seed_plan(len(seeds), args.workers, args.parallel, usable_cores())
    _, facts, preset_name, _ = _source(args)
    env = args.env or facts.get("env") or "env"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or Path("runs") / f"{env.replace('/', '_').replace(':', '_')}-{preset_name}-seeds-{stamp}"
    for seed in seeds:
        check_out_folder(out / f"seed_{seed}", announce=False)  # each run says it when it starts
    jobs = [argparse.Namespace(**{**vars(args), "seeds": None, "parallel": None, "seed": seed,
                                  "out": out / f"seed_{seed}", "workers": workers,
                                  "tensorboard": args.tensorboard / f"seed_{seed}" if args.tensorboard else None})
            for seed in seeds]
    how = (f"{parallel} side by side" if parallel > 1 else "one after another") + \
        f", {workers} worker{'s' if workers > 1 else ''} each"
    print(f"npppo: training seeds {' '.join(map(str, seeds))} ({how}) -> {out}/seed_<S>/")
    if parallel == 1:
        for job in jobs:
            status = train_command(job)
            if status != 0:
                return status
    else:
        status = _train_side_by_side(jobs, parallel)
        if status != 0:
            return status
    print(f"next:  npppo plot {out}   (draws the {len(seeds)} seeds as their mean with a min-max band)")
    return 0


def seed_plan(runs: int, workers: int | str, parallel: int | None, cores: int) -> tuple[int, int]:
    """(runs side by side, workers per run) for ``runs`` seeds: never more than ``cores`` processes in
    all. ``workers="auto"`` shares the cores among the runs side by side (default: as many runs as
    cores); a given ``workers`` N fits ``cores // N`` runs side by side unless ``parallel`` says fewer."""
    if workers == "auto":
        parallel = min(parallel or min(runs, cores), runs)
        workers = max(1, cores // parallel)
    else:
        parallel = min(parallel or max(1, cores // int(workers)), runs)
    if parallel * int(workers) > cores:
        raise NpppoError(f"--parallel {parallel} runs × --workers {workers} = {parallel * int(workers)} processes, "
                         f"more than the {cores} usable cores: lower --parallel or --workers")
    return parallel, int(workers)


def _train_side_by_side(jobs: list[argparse.Namespace], parallel: int) -> int:
    """Run the jobs ``parallel`` at a time, each in a process of its own writing OUT/seed_S/train.log;
    a line per finished seed. Ctrl-C or SIGTERM is passed on to every run (each saves its checkpoint)."""
    import multiprocessing
    import os

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads or locks
    waiting, running, statuses = list(jobs), {}, []
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                job = waiting.pop(0)
                job.out.mkdir(parents=True, exist_ok=True)
                process = context.Process(target=_seed_process, args=(job,), name=f"npppo-seed-{job.seed}")
                process.start()
                running[process] = job
            for process in [p for p in running if not p.is_alive()]:
                job = running.pop(process)
                statuses.append(process.exitcode)
                print(f"seed {job.seed}: {_last_line(job.out / 'train.log', process.exitcode)}", flush=True)
            time.sleep(0.05)
    except KeyboardInterrupt as interrupt:
        signum = signal_of(interrupt)
        for process in running:
            if process.is_alive():
                os.kill(process.pid, signum)  # each run saves its last completed iteration
        for process, job in running.items():
            process.join()
            print(f"seed {job.seed}: {_last_line(job.out / 'train.log', process.exitcode)}", file=sys.stderr)
        return exit_status(signum)
    for status in (INTERRUPTED, TERMINATED):
        if status in statuses:
            return status
    return 0 if all(status == 0 for status in statuses) else 1


def _seed_process(args: argparse.Namespace) -> None:
    """One seed's run in its own process, its output in OUT/seed_S/train.log; exits with the run's status."""
    with open(args.out / "train.log", "w", buffering=1) as log:
        sys.stdout = sys.stderr = log
        try:
            with sigterm_as_interrupt():  # this process's entry point: SIGTERM from the batch saves too
                status = train_command(args)
        except NpppoError as exc:
            print(f"npppo: error: {exc}")
            status = 1
        except KeyboardInterrupt as interrupt:
            print(f"npppo: {_interrupted(signal_of(interrupt))}")
            status = exit_status(signal_of(interrupt))
    sys.exit(status)


def _interrupted(signum: int | None) -> str:
    """How a stopped run is named in its last line (the batch of seeds looks for "npppo: interrupted")."""
    return "interrupted by SIGTERM" if signum == signal.SIGTERM else "interrupted"


def _last_line(log: Path, status: int | None) -> str:
    """What a finished run's log says about its outcome (its evaluation, or its error)."""
    lines = log.read_text().splitlines() if log.is_file() else []
    found = [line for line in lines if line.startswith(("evaluation:", "npppo: error:", "npppo: interrupted"))]
    ending = found[-1] if found else (lines[-1] if lines else "(no output)")
    return ending if status == 0 else f"{ending} (exit status {status}; log: {log})"


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
    check_out_folder(out)
    env_kwargs = args.env_kwargs if args.env_kwargs is not None else facts.get("env_kwargs", {})
    run = {"env": env, "preset": described, "total_steps": int(args.steps or facts.get("steps") or DEFAULT_STEPS),
           "checkpoint_every": args.checkpoint_every, "eval_every": args.eval_every,
           "eval_episodes": args.eval_episodes}
    # unknown ids and unsupported spaces fail here, before any file is written
    agent = PPO(env_spec(env, env_kwargs, args.max_episode_steps), config, seed=seed)
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
    run = dict(meta.get("run") or {})
    run.update(env=args.env or run.get("env") or meta.get("env_id"), preset=run.get("preset", "?"))
    record = meta.get("env") or {}
    if args.env:
        record = {}
    target = int(run.get("total_steps") or DEFAULT_STEPS)
    if args.steps is not None and args.steps < target:
        raise NpppoError(f"--steps {args.steps:,} is below the run's own target of {target:,}: a resumed run can "
                         "only be extended (drop --steps to finish it as planned)")
    run["total_steps"] = int(args.steps or target)
    agent = PPO.load(checkpoint, env=env_spec(run["env"], record.get("kwargs"), record.get("max_episode_steps")))
    return agent, out, run


def _restart(args: argparse.Namespace):
    """``--resume DIR`` of a run that ended before its first checkpoint: the same run from its start,
    from DIR/config.json and DIR/run.json."""
    from npppo.ppo import PPO

    out = args.resume
    config, run, facts = read_start_files(out)
    run["env"] = args.env or run["env"]
    run["total_steps"] = int(args.steps or run["total_steps"])
    print(f"npppo: {out} holds no checkpoint (the run ended before its first one): starting it afresh from its "
          "config.json and run.json")
    spec = env_spec(run["env"], facts.get("env_kwargs"), facts.get("max_episode_steps"))
    return PPO(spec, config, seed=int(facts["seed"])), out, run


# ---------------------------------------------------------------------------------------- eval, plot, bench
def eval_command(args: argparse.Namespace) -> int:
    scores = [_evaluate(path, args) for path in args.paths]
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


def bench_command(argv: list[str]) -> int:
    import importlib

    try:
        bench = importlib.import_module("npppo.bench")
    except ModuleNotFoundError as exc:
        if exc.name != "npppo.bench":
            raise
        raise NpppoError("this npppo has no benchmark module (npppo/bench.py) yet") from None
    status = bench.main(argv)
    return int(status or 0)


def export_command(args: argparse.Namespace) -> int:
    from npppo import export

    return export.command(args)


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """The console script: returns the exit status (0 ok, 1 an npppo error, 2 bad usage, 130 Ctrl-C,
    143 SIGTERM)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            if argv[:1] == ["bench"]:
                return bench_command(argv[1:])
            args = build_parser().parse_args(argv)
            command = {"train": train_command, "eval": eval_command, "plot": plot_command,
                       "export": export_command}[args.command]
            with sigterm_as_interrupt():
                return command(args)
        except NpppoError as exc:
            print(f"npppo: error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"npppo: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as interrupt:
            print(f"npppo: {_interrupted(signal_of(interrupt))}", file=sys.stderr)
            return exit_status(signal_of(interrupt))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"npppo: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
