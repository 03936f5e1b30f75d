"""The multi-seed process pool: a batch of runs (``npppo train --seeds``) side by side, each in a
process of its own, never more processes than usable cores in all.

The command line builds the runs (one ``argparse.Namespace`` a seed, :mod:`npppo.cli`) and passes the
function that trains one; this module decides how many run at once (:func:`seed_plan`) and runs them
(:func:`train_side_by_side`). Each run's process is spawned (a fresh interpreter: no inherited
threads or locks) and writes its output to ``OUT/seed_S/train.log``; Ctrl-C or SIGTERM is passed on
to every run, and each saves its last completed iteration.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from npppo.errors import NpppoError
from npppo.interrupts import INTERRUPTED, TERMINATED, exit_status, interrupted_words, signal_of, sigterm_as_interrupt

POLL_S = 0.05  # how often the pool looks for finished runs


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


def train_side_by_side(jobs: list[argparse.Namespace], parallel: int,
                       train: Callable[[argparse.Namespace], int]) -> int:
    """Run ``train(job)`` for each job, ``parallel`` at a time, each in a process of its own writing
    OUT/seed_S/train.log; a line per finished seed. Ctrl-C or SIGTERM is passed on to every run (each
    saves its checkpoint). ``train`` must be importable by name (the processes are spawned)."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads or locks
    waiting, running, statuses = list(jobs), {}, []
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                job = waiting.pop(0)
                (job.out or job.resume).mkdir(parents=True, exist_ok=True)
                process = context.Process(target=_seed_process, args=(train, job),
                                          name=f"npppo-{(job.out or job.resume).name.replace('_', '-')}")
                process.start()
                running[process] = job
            for process in [p for p in running if not p.is_alive()]:
                job = running.pop(process)
                statuses.append(process.exitcode)
                folder = job.out or job.resume  # OUT/seed_S
                print(f"seed {folder.name.removeprefix('seed_')}: {_last_line(folder / 'train.log', process.exitcode)}",
                      flush=True)
            time.sleep(POLL_S)
    except KeyboardInterrupt as interrupt:
        signum = signal_of(interrupt)
        for process in running:
            if process.is_alive():
                os.kill(process.pid, signum)  # each run saves its last completed iteration
        for process in running:
            process.join()
        return exit_status(signum)
    for status in (INTERRUPTED, TERMINATED):
        if status in statuses:
            return status
    return 0 if all(status == 0 for status in statuses) else 1


def _seed_process(train: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> None:
    """One seed's run in its own process, its output in OUT/seed_S/train.log; exits with the run's status."""
    resumed = args.resume is not None  # a resumed seed's log goes on
    with open((args.resume if resumed else args.out) / "train.log", "a" if resumed else "w", buffering=1) as log:
        sys.stdout = sys.stderr = log
        try:
            with sigterm_as_interrupt():  # this process's entry point: SIGTERM from the batch saves too
                status = train(args)
        except (NpppoError, OSError) as exc:  # a full disk or an unwritable folder: one line, as in `npppo train`
            print(f"npppo: error: {exc}")
            status = 1
        except KeyboardInterrupt as interrupt:
            print(f"npppo: {interrupted_words(signal_of(interrupt))}")
            status = exit_status(signal_of(interrupt))
    sys.exit(status)


def _last_line(log: Path, status: int | None) -> str:
    """What a finished run's log says about its outcome (its evaluation, or its error)."""
    lines = log.read_text().splitlines() if log.is_file() else []
    found = [line for line in lines if line.startswith(("evaluation:", "npppo: error:", "npppo: interrupted"))]
    ending = found[-1] if found else (lines[-1] if lines else "(no output)")
    return ending if status == 0 else f"{ending} (exit status {status}; log: {log})"
