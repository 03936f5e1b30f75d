"""The training driver: one run of an agent into a run folder, with everything around the algorithm.

The command line, ``scripts/learning_curves.py`` and the benchmark all train through :func:`train`.
It writes into ``out``:

* ``progress.csv``: one row per iteration, every metric of :meth:`npppo.PPO.update`, plus
  ``train_s`` (wall time of training so far, evaluations excluded) and ``eval_mean``/``eval_std``
  on the iterations where the deterministic policy was evaluated;
* ``checkpoint.npz``: the full training state, rewritten atomically every ``checkpoint_every``
  iterations, at the end, and on Ctrl-C or SIGTERM (the last completed iteration);
* ``model.npz`` at the end, and ``best.npz``: the best deterministic evaluation so far (with
  ``eval_every``); both hold the acting part only (:func:`npppo.checkpoint.write_model`), so
  they are small enough to ship; training continues from ``checkpoint.npz``.

A fault (an :class:`npppo.errors.NpppoError`) leaves the last good checkpoint as it was, and says
which iteration it holds. MuJoCo's warnings go to ``out/MUJOCO_LOG.TXT`` (:mod:`npppo.envs.mujoco_log`),
not to the current folder.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from npppo.checkpoint import read_checkpoint, snapshot, write_checkpoint, write_model
from npppo.envs.mujoco_log import warnings_into
from npppo.errors import NpppoError
from npppo.evaluation import EVAL_EPISODES
from npppo.interrupts import interrupts_held, signal_of, sigterm_as_interrupt
from npppo.progress import ProgressCSV, ProgressLine, TensorBoardLog

if TYPE_CHECKING:
    from npppo.run_folder import RunRecord

CHECKPOINT_EVERY = 10  # iterations between checkpoints, by default


@dataclass
class RunOptions:
    """How a run is driven (not what is learned: that is the PPOConfig)."""

    total_steps: int
    checkpoint_every: int = CHECKPOINT_EVERY  # iterations between checkpoints
    eval_every: int | None = None  # env steps between deterministic evaluations (None: only at the end)
    eval_episodes: int = EVAL_EPISODES
    max_iterations: int | None = None  # stop early after this many iterations (the schedules still span total_steps)
    run: RunRecord | None = None  # stored in every checkpoint under "run" (for --resume)
    tensorboard: str | Path | None = None  # a folder for TensorBoard event files with progress.csv's scalars

    def run_record(self) -> dict[str, Any] | None:
        return None if self.run is None else self.run.to_dict()


@dataclass
class RunResult:
    interrupted: bool
    saved_iteration: int | None = None  # on Ctrl-C: the iteration now in checkpoint.npz (None: nothing saved)
    eval_mean: float = math.nan
    eval_std: float = math.nan
    train_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    signum: int | None = None  # what interrupted the run: signal.SIGINT (Ctrl-C) or signal.SIGTERM


def train(agent, out: Path, options: RunOptions, *, resumed: bool = False, quiet: bool = False) -> RunResult:
    """Train ``agent`` to ``options.total_steps`` env steps, writing the run folder ``out`` and showing
    the progress line on stdout (unless ``quiet``). Ctrl-C (or SIGTERM, handled like it while this
    runs) saves the last completed iteration and returns with ``interrupted=True``."""
    out.mkdir(parents=True, exist_ok=True)
    with warnings_into(out):
        return _train(agent, out, options, resumed, quiet)


def _train(agent, out: Path, options: RunOptions, resumed: bool, quiet: bool) -> RunResult:
    checkpoint = out / "checkpoint.npz"
    log = ProgressCSV(out / "progress.csv", keep_until=agent.iteration if resumed else None)
    board = (TensorBoardLog(options.tensorboard, purge_step=agent.num_timesteps if resumed else None)
             if options.tensorboard is not None else None)
    line = None if quiet else ProgressLine(options.total_steps, agent.num_timesteps, sys.stdout)
    state: dict[str, Any] = {"snapshot": None, "saved": agent.iteration if resumed else None, "best": -math.inf,
                             "train_s": 0.0, "clock": time.perf_counter(), "rows": [],
                             "next_eval": _next_multiple(agent.num_timesteps, options.eval_every)}

    def after_iteration(agent, metrics: dict[str, Any]) -> bool:
        now = time.perf_counter()
        state["train_s"] += now - state["clock"]
        row = {**metrics, "train_s": state["train_s"], "eval_mean": math.nan, "eval_std": math.nan}
        go_on = options.max_iterations is None or agent.iteration < options.max_iterations
        last = agent.num_timesteps >= options.total_steps or not go_on
        note = None
        if options.eval_every and (agent.num_timesteps >= state["next_eval"] or last):
            row["eval_mean"], row["eval_std"] = agent.evaluate(options.eval_episodes)
            state["next_eval"] = _next_multiple(agent.num_timesteps, options.eval_every)
            best = row["eval_mean"] > state["best"]
            if best:
                state["best"] = row["eval_mean"]
                write_model(out / "best.npz", *snapshot(agent), run=options.run_record())
            note = eval_note(agent.num_timesteps, row["eval_mean"], row["eval_std"], options.eval_episodes, best,
                             state["best"])
        log.append(row)
        if board is not None:
            board.append(row)
        state["rows"].append(row)
        state["snapshot"] = snapshot(agent)
        if agent.iteration % options.checkpoint_every == 0:
            write_checkpoint(checkpoint, *state["snapshot"], run=options.run_record())
            state["saved"] = agent.iteration
        if line is not None:
            line.update(metrics)
            if note is not None:
                line.note(note)
        state["clock"] = time.perf_counter()  # evaluations and checkpoints are not training time
        return go_on

    try:
        with sigterm_as_interrupt():
            agent.learn(options.total_steps, callback=after_iteration)
    except KeyboardInterrupt as interrupt:
        if board is not None:
            board.close()
        if line is not None:
            line.close()
        signum = signal_of(interrupt)
        if state["snapshot"] is None:
            return RunResult(True, state["saved"], train_s=state["train_s"], signum=signum)
        with interrupts_held():
            write_checkpoint(checkpoint, *state["snapshot"], run=options.run_record())
        return RunResult(True, state["snapshot"][1]["iteration"], train_s=state["train_s"], rows=state["rows"],
                         signum=signum)
    except NpppoError as exc:
        if board is not None:
            board.close()
        if line is not None:
            line.close()
        where = ("nothing was saved" if state["saved"] is None
                 else f"last good checkpoint: {checkpoint}, iteration {state['saved']}")
        raise type(exc)(f"{exc} ({where})") from exc
    if board is not None:
        board.close()
    if line is not None:
        line.close()
    final = snapshot(agent)
    write_checkpoint(checkpoint, *final, run=options.run_record())
    write_model(out / "model.npz", *final, run=options.run_record())
    read_checkpoint(out / "model.npz")  # what was written reads back
    last_row = state["rows"][-1] if state["rows"] else {}
    if options.eval_every and not math.isnan(last_row.get("eval_mean", math.nan)):
        mean, std = last_row["eval_mean"], last_row["eval_std"]  # evaluated at the last iteration already
    else:
        mean, std = agent.evaluate(options.eval_episodes)
    return RunResult(False, agent.iteration, mean, std, state["train_s"], state["rows"])


def eval_note(steps: int, mean: float, std: float, episodes: int, best: bool, best_mean: float) -> str:
    """The console's line for a periodic evaluation."""
    return (f"eval at {steps:,} steps: return {mean:.1f} ± {std:.1f} over {episodes} episodes (deterministic)"
            + ("; the best so far, saved as best.npz" if best else f"; best so far {best_mean:.1f}"))


def _next_multiple(steps: int, every: int | None) -> float:
    """The first multiple of ``every`` above ``steps`` (infinity without evaluations)."""
    return (steps // every + 1) * every if every else math.inf
