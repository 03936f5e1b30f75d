"""How a Ray run ends when its learner is killed, and how long an unreachable cluster is waited for.

    python scripts/ray_cleanup.py --json ray_cleanup.json
    PYTHONPATH=/path/to/another/npppo python scripts/ray_cleanup.py   # the same, for another tree

For each of ``--repeats`` runs: a learner trains on a local Ray started by npppo (2 workers, a tiny
config on Pendulum-v1), is killed with SIGKILL after its first iteration, and the processes that
were below it (Ray's gcs, raylet, agents, the actors, npppo's watchdog) are watched until every one
has ended; the seconds from the kill to the last one's end are printed, with the watchdog's CPU
time and memory while it waited. Then ``npppo train --ray-address`` to a closed local port with
each ``--timeouts`` value: the seconds until it exits, and its exit status. Medians, as JSON.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import textwrap
import time

LEARNER = textwrap.dedent("""
    from npppo import PPO, presets
    from npppo.envs import EnvFactory

    config = presets.get("seed").replace(num_envs=2, episodes_per_batch=2, trunk_sizes=[8], head_sizes=[],
                                         critic_sizes=[8], mu_activation="identity")
    agent = PPO(EnvFactory("Pendulum-v1", max_episode_steps=50), config, workers=2, backend="ray")
    agent.learn(10**9, callback=lambda agent, metrics: print("iteration", flush=True))
""")


def process_table() -> dict[int, tuple[int, str, str, str]]:
    """pid -> (parent pid, start time, state, command) of every process, from ps."""
    listing = subprocess.run(["ps", "-eo", "pid=,ppid=,lstart=,stat=,args="], capture_output=True, text=True).stdout
    table = {}
    for line in listing.splitlines():
        pid, ppid, *rest = line.split()
        started, state, command = " ".join(rest[:5]), rest[5], " ".join(rest[6:])
        table[int(pid)] = (int(ppid), started, state, command)
    return table


def below(root: int) -> dict[int, tuple[int, str, str, str]]:
    table, found, frontier = process_table(), {}, {root}
    while frontier:
        frontier = {pid for pid, row in table.items() if row[0] in frontier and pid not in found}
        found.update({pid: table[pid] for pid in frontier})
    return found


def still_running(processes: dict) -> list[int]:
    now = process_table()
    return [pid for pid, row in processes.items()
            if pid in now and now[pid][1] == row[1] and not now[pid][2].startswith("Z")]


def watchdog_cost(processes: dict) -> dict:
    """The watchdog's CPU seconds so far and resident memory (KiB), from /proc."""
    for pid, row in processes.items():
        if "ray_watchdog.py" in row[3]:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS"))
            return {"cpu_s": ticks / 100, "rss_kib": rss}
    return {}


def kill_learner(wait_s: float) -> dict:
    learner = subprocess.Popen([sys.executable, "-c", LEARNER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    assert learner.stdout.readline() == "iteration\n", "the learner did not train"
    time.sleep(wait_s)
    processes = below(learner.pid)
    cost = watchdog_cost(processes)
    learner.kill()
    learner.wait()
    killed = time.monotonic()
    while still_running(processes) and time.monotonic() - killed < 300:
        time.sleep(0.1)
    left = still_running(processes)
    return {"processes": len(processes), "ended_s": round(time.monotonic() - killed, 2),
            "left_after_300_s": [processes[pid][3][:60] for pid in left], "watchdog": cost}


def unreachable(timeout: float) -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "npppo.cli", "train", "--backend", "ray", "--workers", "2",
                           "--ray-address", address, "--ray-connect-timeout", str(timeout), "--steps", "100",
                           "--out", f"/tmp/npppo-ray-cleanup-{address.replace(':', '-')}"],
                          capture_output=True, text=True, timeout=timeout + 300)
    return {"timeout_s": timeout, "exit_s": round(time.monotonic() - start, 2), "status": done.returncode,
            "last_line": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wait", type=float, default=5.0, help="seconds the learner runs before the kill")
    parser.add_argument("--timeouts", type=float, nargs="*", default=[2.0, 30.0])
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    kills = []
    for repeat in range(args.repeats):
        kills.append(kill_learner(args.wait))
        print(f"SIGKILL {repeat + 1}: {kills[-1]}", flush=True)
    timeouts = [unreachable(timeout) for timeout in args.timeouts]
    for row in timeouts:
        print(f"unreachable address, --ray-connect-timeout {row['timeout_s']:g}: exit status {row['status']} after "
              f"{row['exit_s']} s: {row['last_line']}", flush=True)
    result = {"sigkill": kills, "ended_s_median": statistics.median(k["ended_s"] for k in kills),
              "unreachable": timeouts}
    print(f"median seconds from SIGKILL to the last Ray process's end: {result['ended_s_median']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
