"""MuJoCo's warnings into the run folder, not the current one.

MuJoCo's default warning handler prints the warning and appends it to ``MUJOCO_LOG.TXT`` in the
current folder, wherever the user happens to run ``npppo train``. The command line names the run
folder in ``$NPPPO_RUN_DIR`` (inherited by the worker processes, which make environments too), and
every process that has imported MuJoCo then routes the warnings to ``RUN_DIR/MUJOCO_LOG.TXT`` and
one line on stderr.
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
_routed: list[str] = []  # the folder this process's handler writes to, once set


def route_mujoco_warnings() -> None:
    """If MuJoCo is loaded and ``$NPPPO_RUN_DIR`` is set: its warnings go to that folder's log (once per process)."""
    folder = os.environ.get(RUN_DIR_VARIABLE)
    mujoco = sys.modules.get("mujoco")
    if not folder or mujoco is None or _routed == [folder]:
        return
    log = Path(folder) / LOG_NAME

    def warning(message: str) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            handle.write(f"{time.ctime()}\nWARNING: {message}\n\n")  # the layout of MuJoCo's own log
        print(f"npppo: MuJoCo warning: {message} (logged in {log})", file=sys.stderr)

    mujoco.set_mju_user_warning(warning)
    _routed[:] = [folder]


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
