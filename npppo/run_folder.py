"""The run folder's files, and when a new run may start in a folder that holds one.

A run writes ``config.json`` (the PPOConfig) and ``run.json`` (how it was started: environment and
its kwargs, seed, step target, checkpoint and evaluation settings) before its first iteration, then
``progress.csv`` rows and ``checkpoint.npz``. A folder whose run ended before its first checkpoint
(killed with SIGKILL, or its machine lost) holds no work to continue: ``--out`` starts afresh over
it, and ``--resume`` starts the same run again from its ``config.json`` and ``run.json``. A folder
with a checkpoint is continued with ``--resume``, never overwritten.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npppo.errors import CheckpointError, NpppoError
from npppo.evaluation import EVAL_EPISODES
from npppo.train import CHECKPOINT_EVERY

RUN_FILES = ("checkpoint.npz", "model.npz", "progress.csv", "config.json", "run.json")
SAVED_FILES = ("checkpoint.npz", "model.npz")  # a folder with one of these holds work to continue, not redo


def holds_run(folder: Path) -> list[str]:
    """The run files already in ``folder``."""
    return [name for name in RUN_FILES if (folder / name).exists()]


def check_out_folder(folder: Path, announce: bool = True) -> None:
    """A new run may go into ``folder`` if it holds no run, or one that ended before its first
    checkpoint: that one is started afresh over its files, with a line saying so (``announce``). A
    folder with a checkpoint is refused: its work is continued with --resume."""
    existing = holds_run(folder)
    if any(name in SAVED_FILES for name in existing):
        raise NpppoError(f"--out {folder} already holds a run ({', '.join(existing)}): continue it with "
                         f"`npppo train --resume {folder}`, or choose another --out")
    if existing and announce:
        print(f"npppo: {folder} holds a run that ended before its first checkpoint ({', '.join(existing)}): "
              "starting afresh there, overwriting them")


@dataclass
class RunRecord:
    """A command-line run beside its config: stored under ``"run"`` in every checkpoint and in
    ``run.json``, so that ``--resume`` finishes the same run. A field that an older file lacks takes its
    default; the optional ones are written only when set."""

    env: str
    preset: str
    total_steps: int
    checkpoint_every: int = CHECKPOINT_EVERY
    eval_every: int | None = None
    eval_episodes: int = EVAL_EPISODES
    episode_step_limit: int | None = None  # None: the agent's own default
    tensorboard: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        return {key: value for key, value in record.items()
                if value is not None or key not in ("episode_step_limit", "tensorboard")}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> RunRecord:
        """The record of a dict read from a file (unknown keys left out; KeyError without env or total_steps)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{"preset": "?", **{key: value for key, value in record.items() if key in known},
                      "env": record["env"], "total_steps": int(record["total_steps"])})


def start_files(folder: Path, agent, run: RunRecord) -> None:
    """Before a new run's first iteration: ``config.json`` and ``run.json`` (what starting the run again
    takes), and no rows or best policy left from a run that saved no checkpoint there."""
    for name in ("progress.csv", "best.npz"):
        (folder / name).unlink(missing_ok=True)
    agent.config.to_json(folder / "config.json")
    spec = agent.env_spec
    facts = {**run.to_dict(), "seed": agent.seed, "env_kwargs": dict(getattr(spec, "kwargs", None) or {}),
             "max_episode_steps": getattr(spec, "max_episode_steps", None)}
    (folder / "run.json").write_text(json.dumps(facts, indent=2) + "\n")


def read_start_files(folder: Path):
    """(config, run, facts) of a run to start again from ``config.json`` and ``run.json``: ``run`` as
    stored in checkpoints, ``facts`` with its ``seed``, ``env_kwargs`` and ``max_episode_steps``."""
    from npppo.config import PPOConfig

    if not (folder / "config.json").is_file() or not (folder / "run.json").is_file():
        raise CheckpointError(f"{folder} holds no checkpoint.npz to resume from" + (
            f" (nor the config.json and run.json to start it again: start a new run with --out {folder})"
            if holds_run(folder) else ""))
    try:
        facts = json.loads((folder / "run.json").read_text())
        run = RunRecord.from_dict(facts)
        int(facts["seed"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / 'run.json'} is not what npppo wrote ({exc!r}): start a new run with "
                              f"--out {folder}") from None
    return PPOConfig.from_json(folder / "config.json"), run, facts


def remove_unsaved(folder: Path) -> None:
    """Remove the files of a run that saved nothing, then ``folder`` if now empty (call it only for a
    folder the run made: one that was there before keeps them, and a new run can start over them)."""
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty: leave it
