"""Measure what the rollout workers cost and project the throughput of larger worker counts.

    python scripts/scaling.py --json scaling.json             # the seed's work (Pendulum-v1, 40 episodes)
    python scripts/scaling.py --preset lunarlander --ray      # also the Ray backend's overhead

One iteration with W workers is modelled as

    T(W) = S c / W  +  W p  +  S b  +  U        (rollout on W workers, then the learner's update)

with S the batch's env steps, c the rollout's cost per env step on one core (environment, policy
rows, sampling), p the learner's cost per worker to send the parameters and take back a part,
b the cost per row of moving the batch back and joining it, and U the update. Each is measured
here (medians), the projection for W = 1, 2, 8, 64, 512 is printed beside the measured W = 1, 2
(and Ray's), and everything is written as JSON. The learner is the bottleneck once S c / W falls
below U: beyond that, more workers buy nothing (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pickle
import statistics
import time
import warnings

from npppo import PPO, presets
from npppo.backends import env_slices
from npppo.sampler import Batch


def _median(values) -> float:
    return float(statistics.median(values))


def _echo(conn) -> None:
    """A child that sends back what it receives (to time the pipe's round trip)."""
    while (message := conn.recv()) is not None:
        conn.send(message)


def pipe_seconds(payload, repeats: int = 20) -> float:
    """Median round trip of ``payload`` through a pipe to a spawned process and back (one way: half)."""
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    child = context.Process(target=_echo, args=(theirs,), daemon=True)
    child.start()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mine.send(payload)
        mine.recv()
        times.append(time.perf_counter() - start)
    mine.send(None)
    child.join()
    return _median(times) / 2


def _shared_echo(conn, params_name: str, part_name: str, params_size: int, part_size: int) -> None:
    """A child that, per token, reads the parameters from one shared block (as a worker loads them)
    and writes its part of the batch into another (to time shared memory against pipes)."""
    from multiprocessing import shared_memory

    import numpy as np

    blocks = [shared_memory.SharedMemory(name=name) for name in (params_name, part_name)]
    params_in = np.ndarray(params_size, np.uint8, blocks[0].buf)
    part_out = np.ndarray(part_size, np.uint8, blocks[1].buf)
    params, part = np.empty(params_size, np.uint8), np.ones(part_size, np.uint8)
    while conn.recv() is not None:
        params[:] = params_in
        part_out[:] = part
        conn.send(True)
    del params_in, part_out
    for block in blocks:
        block.close()


def exchange_seconds(params, part, repeats: int = 50) -> dict[str, float]:
    """Median time of one worker's exchange per iteration (parameters out, its part of the batch
    back) through a pipe (pickled, as the local backend does) and through shared memory (two blocks
    and a one-byte token through the pipe; the learner copies the part out, as it must keep it)."""
    from multiprocessing import shared_memory

    import numpy as np

    context = multiprocessing.get_context("spawn")
    times = {}
    mine, theirs = context.Pipe()
    child = context.Process(target=_echo, args=(theirs,), daemon=True)
    child.start()
    part_bytes = pickle.dumps(part)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        mine.send(params)
        mine.recv()
        mine.send(part)  # the echo child sends the part back: one worker's reply
        mine.recv()
        samples.append(time.perf_counter() - start)
    mine.send(None)
    child.join()
    # the pipe figure above moved the parameters and the part both ways: keep one way of each
    times["pipe_s"] = _median(samples) / 2
    params_bytes = np.frombuffer(pickle.dumps(params), np.uint8)  # the same byte counts as the pipe
    blocks = [shared_memory.SharedMemory(create=True, size=size) for size in (params_bytes.size, len(part_bytes))]
    try:
        params_out = np.ndarray(params_bytes.size, np.uint8, blocks[0].buf)
        part_in = np.ndarray(len(part_bytes), np.uint8, blocks[1].buf)
        mine, theirs = context.Pipe()
        child = context.Process(target=_shared_echo, daemon=True,
                                args=(theirs, blocks[0].name, blocks[1].name, params_bytes.size, len(part_bytes)))
        child.start()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            params_out[:] = params_bytes
            mine.send(True)
            mine.recv()
            np.array(part_in)  # the learner's own copy of the part
            samples.append(time.perf_counter() - start)
        mine.send(None)
        child.join()
        times["shared_memory_s"] = _median(samples)
        del params_out, part_in
    finally:
        for block in blocks:
            block.close()
            block.unlink()
    return times


def measure(preset: str, env: str, iterations: int, with_ray: bool) -> dict:
    warnings.simplefilter("ignore")
    config = presets.get(preset)
    result: dict = {"preset": preset, "env": env}
    runs = {}
    for backend, workers in [("local", 1), ("local", 2)] + ([("ray", 2)] if with_ray else []):
        with PPO(env, config, seed=0, workers=workers, backend=backend) as agent:
            start = time.perf_counter()
            agent.learn(1)  # start-up: workers, Ray, first iteration
            startup = time.perf_counter() - start
            history = [agent.train_iteration(10**12) for _ in range(iterations)]
        runs[f"{backend}-{workers}"] = {
            "startup_s": startup,
            "rollout_s": _median(m["rollout_s"] for m in history),
            "update_s": _median(m["update_s"] for m in history),
            "steps": history[0]["batch_steps"],
            "train_steps_per_s": _median(m["steps_per_s"] for m in history),
        }
        if (backend, workers) == ("local", 1):
            params_bytes = len(pickle.dumps(agent.policy.params))
            batch = agent.collect()
    result["runs"] = runs
    steps = runs["local-1"]["steps"]
    c = runs["local-1"]["rollout_s"] / steps
    update = runs["local-2"]["update_s"]  # the update as it runs with workers (critic beside actor)
    # the learner's costs per worker and per row: one worker's parameters out, its part back
    p = pipe_seconds(agent.policy.params.copy())
    part = Batch.concatenate([batch])
    b = pipe_seconds(part) / batch.steps
    start = time.perf_counter()
    for _ in range(20):
        Batch.concatenate([part, part])
    b += (time.perf_counter() - start) / 20 / (2 * batch.steps)
    row_bytes = len(pickle.dumps(part)) / batch.steps
    # pipes against shared memory: the parameters out and the whole batch back, as with one worker
    result["exchange_one_worker"] = exchange_seconds(agent.policy.params.copy(), part)
    result["costs"] = {"rollout_per_step_s": c, "per_worker_s": p, "per_row_s": b, "update_s": update,
                       "params_bytes": params_bytes, "batch_bytes_per_row": row_bytes,
                       "bytes_per_iteration_per_worker_out": params_bytes,
                       "bytes_per_iteration_back": row_bytes * steps}
    projection = {}
    for workers in (1, 2, 8, 64, 512):
        envs = config.num_envs
        usable = min(workers, envs)  # a worker owns whole environments: no more workers than envs
        seconds = steps * c / usable + usable * p + steps * b + update
        projection[str(workers)] = {"workers_used": usable, "iteration_s": seconds,
                                    "train_steps_per_s": steps / seconds,
                                    "rollout_s": steps * c / usable + usable * p + steps * b}
    result["projection"] = projection
    # a batch that grows with the workers: one episode of ``length`` steps per worker, the update
    # growing with it (the learner's cost per sample is update / steps)
    length = steps // max(config.episodes_per_batch or config.num_envs, 1)
    per_sample = update / steps
    grown = {}
    for workers in (8, 64, 512):
        size = workers * length
        seconds = length * c + workers * p + size * b + size * per_sample
        grown[str(workers)] = {"batch_steps": size, "iteration_s": seconds, "train_steps_per_s": size / seconds}
    result["projection_batch_per_worker"] = grown
    result["learner_bound_steps_per_s"] = steps / (update + steps * b)
    result["slices"] = env_slices(config.num_envs, 2)
    return result


def update_variants(preset: str, env: str, iterations: int) -> dict[str, float]:
    """Median update seconds of: one core (``serial``); with two workers, the critic's passes beside
    the actor's (on a thread for steps of at least 256 rows, in worker 0's process below) without row
    blocks (``critic_beside``); and that with both gradients in row blocks on two threads
    (``critic_beside_and_blocks``: what workers > 1 does)."""
    from npppo import losses

    warnings.simplefilter("ignore")
    variants = {}
    for name, workers, block_rows in [("serial", 1, losses.BLOCK_ROWS),
                                      ("critic_beside", 2, 10**9),
                                      ("critic_beside_and_blocks", 2, losses.BLOCK_ROWS)]:
        original, losses.BLOCK_ROWS = losses.BLOCK_ROWS, block_rows
        try:
            with PPO(env, presets.get(preset), seed=0, workers=workers) as agent:
                agent.learn(1)
                variants[name] = _median(agent.train_iteration(10**12)["update_s"] for _ in range(iterations))
        finally:
            losses.BLOCK_ROWS = original
    return variants


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--env", default=None, help="default: the preset's")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--ray", action="store_true", help="also measure the Ray backend with 2 workers")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    env = args.env or presets.load(args.preset)[1]["env"]
    result = measure(args.preset, env, args.iterations, args.ray)
    result["update_variants_s"] = update_variants(args.preset, env, args.iterations)
    print("update phase (s): " + ", ".join(f"{k} {v:.3f}" for k, v in result["update_variants_s"].items()))
    for name, run in result["runs"].items():
        print(f"{name:8s} start-up {run['startup_s']:6.2f} s  rollout {run['rollout_s']:.3f} s  update "
              f"{run['update_s']:.3f} s  training {run['train_steps_per_s']:,.0f} env steps/s")
    costs = result["costs"]
    print(f"per env step on one core {costs['rollout_per_step_s'] * 1e6:.1f} µs; per worker "
          f"{costs['per_worker_s'] * 1e3:.2f} ms ({costs['params_bytes']:,} B of parameters out); per row back "
          f"{costs['per_row_s'] * 1e6:.2f} µs ({costs['batch_bytes_per_row']:.0f} B); update {costs['update_s']:.3f} s")
    for workers, row in result["projection"].items():
        print(f"projected W={workers:>3} ({row['workers_used']} used): {row['train_steps_per_s']:,.0f} env steps/s")
    for workers, row in result["projection_batch_per_worker"].items():
        print(f"projected W={workers:>3}, one episode each ({row['batch_steps']:,} steps): "
              f"{row['train_steps_per_s']:,.0f} env steps/s")
    print(f"learner bound: {result['learner_bound_steps_per_s']:,.0f} env steps/s")
    exchange = result["exchange_one_worker"]
    print(f"parameters out and the whole batch back, one worker: pipe {exchange['pipe_s'] * 1e3:.2f} ms, "
          f"shared memory {exchange['shared_memory_s'] * 1e3:.2f} ms")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
