"""MuJoCo's warnings into the run folder, not the current one.

MuJoCo's default warning handler prints the warning and appends it to ``MUJOCO_LOG.TXT`` in the
current folder, wherever the user happens to run ``npppo train`` (and MuJoCo 3.3 warns at every
model compile of the Gymnasium tasks: ``settotalmass`` is deprecated). npppo puts its own handler in
place before it makes a MuJoCo environment: a warning is one line on stderr and, when a run folder is
known (``$NPPPO_RUN_DIR``, set by :func:`warnings_into` around a run and inherited by the worker
processes), appended to ``RUN_DIR/MUJOCO_LOG.TXT``; nothing is written into the current folder.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

RUN_DIR_VARIABLE = "NPPPO_RUN_DIR"
LOG_NAME = "MUJOCO_LOG.TXT"
_installed: list[bool] = []  # whether this process's MuJoCo has npppo's handler


def _warning(message: str) -> None:
    folder = os.environ.get(RUN_DIR_VARIABLE)  # read at each warning: the run folder may come later
    where = ""
    if folder:
        log = Path(folder) / LOG_NAME
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            handle.write(f"{time.ctime()}\nWARNING: {message}\n\n")  # the layout of MuJoCo's own log
        where = f" (logged in {log})"
    print(f"npppo: MuJoCo warning: {message}{where}", file=sys.stderr)


def route_mujoco_warnings(load: bool = False) -> None:
    """MuJoCo's warnings through :func:`_warning` from now on, once per process; only if MuJoCo is
    loaded, or ``load``: import it first (before making an environment that compiles a model)."""
    if _installed:
        return
    mujoco = sys.modules.get("mujoco")
    if mujoco is None and load:
        try:
            import mujoco
        except ImportError:
            return  # gymnasium.make gives the install hint
    if mujoco is None:
        return
    mujoco.set_mju_user_warning(_warning)
    _installed.append(True)


@contextlib.contextmanager
def warnings_into(run_dir: Path) -> Iterator[None]:
    """While inside, MuJoCo's warnings of this process and of workers started inside go to ``run_dir``."""
    previous = os.environ.get(RUN_DIR_VARIABLE)
    os.environ[RUN_DIR_VARIABLE] = str(Path(run_dir).resolve())
    route_mujoco_warnings()  # the environments made already
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_VARIABLE, None)
        else:
            os.environ[RUN_DIR_VARIABLE] = previous
