"""The Ray watchdog: ends a run's local Ray cluster when the learner that started it is gone.

Ray cleans up its local cluster when the learner exits or handles a signal; after SIGKILL (which
cannot be caught) or a crash, Ray's dashboard and runtime-env agents and its workers live on for
about two minutes. This small process, started beside the local cluster by
:class:`npppo.backends.ray.RayWorkers` (Linux: it reads ``/proc``), waits for the learner to exit
(a pidfd where Linux has one, so no polling) and then ends every process of the cluster, found by
the files it keeps open in the cluster's session folder (each Ray process writes its logs there;
their command lines do not always say it): SIGTERM, then SIGKILL for any still there after
``GRACE_S``. It imports only the standard library, so it starts in milliseconds.

    python ray_watchdog.py LEARNER_PID SESSION_DIR
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

GRACE_S = 2.0  # between SIGTERM and SIGKILL
POLL_S = 0.2  # without a pidfd: how often the learner is looked for


def wait_for_exit(pid: int) -> None:
    """Return once process ``pid`` (this process's parent, the learner) has ended."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (older kernel): the learner is our parent until it ends
        while os.getppid() == pid:
            time.sleep(POLL_S)
        return
    try:
        poller = select.poll()
        poller.register(descriptor, select.POLLIN)
        while not poller.poll():
            pass
    finally:
        os.close(descriptor)


def _stat(pid: int | str) -> tuple[int, str, str] | None:
    """(parent pid, start time, state) of a process from ``/proc/PID/stat``; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()  # after the name, which may hold spaces
        return int(fields[1]), fields[19], fields[0]
    except (OSError, IndexError, ValueError):
        return None


def descendants(root: int) -> dict[int, str]:
    """The processes below ``root`` (children, theirs, ...), each with its start time: a pid may be
    reused, the pair is not (:func:`running`)."""
    table = {int(entry): stat for entry in os.listdir("/proc") if entry.isdigit() and (stat := _stat(entry))}
    found: dict[int, str] = {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (parent, _, _) in table.items() if parent in frontier and pid not in found}
        found.update({pid: table[pid][1] for pid in frontier})
    return found


def running(processes: dict[int, str]) -> list[int]:
    """Those of ``processes`` (pid: start time, as :func:`descendants` gives) still running; a zombie has ended."""
    alive = []
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started and stat[2] != "Z":
            alive.append(pid)
    return alive


def session_processes(session_dir: str) -> list[int]:
    """The pids (other than this one) whose command line names ``session_dir`` or that hold a file
    open inside it."""
    inside = session_dir.rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                named = inside.encode() in handle.read().replace(b"\0", b" ")
            if not named:
                folder = f"/proc/{entry}/fd"
                named = any(_link(f"{folder}/{fd}").startswith(inside) for fd in os.listdir(folder))
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if named:
            found.append(int(entry))
    return found


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def end_session(session_dir: str, deadline_s: float = 8.0) -> int:
    """SIGTERM every process of the session, SIGKILL those left after ``GRACE_S``; look again until none
    is found or ``deadline_s`` has passed (a raylet may start a worker meanwhile). Returns how many
    processes were signalled."""
    start, signalled = time.monotonic(), set()
    while time.monotonic() - start < deadline_s:
        alive = session_processes(session_dir)
        if not alive:
            break
        for pid in alive:
            _signal(pid, signal.SIGKILL if pid in signalled else signal.SIGTERM)
        signalled.update(alive)
        waited = time.monotonic()
        while time.monotonic() - waited < GRACE_S and any(_exists(pid) for pid in alive):
            time.sleep(0.05)
    return len(signalled)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _exists(pid: int) -> bool:
    """Whether ``pid`` is still running (a zombie counts as ended)."""
    stat = _stat(pid)
    return stat is not None and stat[2] != "Z"


def main(argv: list[str]) -> int:
    learner, session_dir = int(argv[0]), argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the terminal is the learner's to handle
    wait_for_exit(learner)
    end_session(session_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
