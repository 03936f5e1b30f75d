"""Rollout workers as Ray actors: the local workers' samplers, on a Ray cluster (``pip install 'npppo[ray]'``).

Each actor (``num_cpus=1``) holds what a local worker holds (:func:`npppo.backends.make_sampler`):
its slice of the environments and a warmed policy copy. Per iteration the learner puts the flat
parameters and the observation statistics into the object store once (one ``ray.put``, not a copy
per actor) and each actor returns its part of the batch as NumPy arrays (read-only out of the object
store: joining the parts copies them). The parts are joined in actor (so environment) order, so the
run is the same bits as with the local backend and the same worker count.

Without an address a local Ray is started with ``num_cpus`` equal to the worker count (the learner
runs in the driver) and shut down with the run; a watchdog process (:mod:`npppo.backends.ray_watchdog`)
ends that local cluster if the learner dies without shutting it down (SIGKILL). With an address
(``"auto"`` finds a running cluster) the actors join that cluster; a cluster not reached within
``connect_timeout`` seconds stops the run with one line naming the address (Ray itself would
retry for many minutes). An environment given as ``module:Id`` has its module shipped to the
actors through Ray's ``runtime_env``. A lost actor is replaced and its part collected again with
the same seeds; an environment that raises is retried the same way, at most ``max_failures`` times
in a row.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from npppo.backends import (
    MAX_WORKER_FAILURES,
    NEVER_RETRIED,
    RAY_CONNECT_TIMEOUT_S,
    WorkerFailure,
    collect,
    make_sampler,
    split_work,
    with_retries,
)
from npppo.backends.ray_watchdog import descendants
from npppo.config import PPOConfig
from npppo.envs.make import EPISODE_STEP_LIMIT
from npppo.errors import EnvError, NpppoError
from npppo.interrupts import cancel_abort_timer, sigterm_kept
from npppo.sampler import Batch

INSTALL = "the ray backend needs Ray, an optional extra: pip install 'npppo[ray]'"
WATCHDOG = Path(__file__).with_name("ray_watchdog.py")


def import_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise NpppoError(INSTALL) from None
    return ray


class _SamplerActor:
    """A worker as a Ray actor (wrapped with ``ray.remote(num_cpus=1)`` when Ray is there)."""

    def __init__(self, env_spec, config_dict: dict, spaces, env_ids: list[int], run_seed: int,
                 episodes_started, episode_step_limit: int) -> None:
        from npppo.threads import set_num_threads

        set_num_threads(1)
        self.config = PPOConfig.from_dict(config_dict)
        self.sampler = make_sampler(env_spec, self.config, spaces, env_ids, run_seed, episodes_started,
                                    episode_step_limit)

    def ready(self) -> bool:
        return True

    def collect(self, iteration: int, shared, work):
        params, obs_stats = shared
        self.sampler.policy.set_params(params)
        batch = collect(self.sampler, self.config, iteration, work, obs_stats)
        return batch, self.sampler.episodes_started.copy()

    def pid(self) -> int:
        return os.getpid()


def runtime_env(env_spec) -> dict:
    """Ray's runtime_env that ships the module of a ``module:Id`` environment to the actors."""
    env_id = getattr(env_spec, "env_id", env_spec)
    if not isinstance(env_id, str) or ":" not in env_id:
        return {}
    module = env_id.partition(":")[0]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None or spec.origin is None:
        raise EnvError(f"environment {env_id!r}: cannot find module {module!r} to ship to the Ray workers; run "
                       "from the folder that holds it, or install it on every node")
    origin = Path(spec.origin)
    if "site-packages" in origin.parts:
        return {}  # an installed package: the nodes have it (or need it installed, like npppo itself)
    if origin.name == "__init__.py":
        return {"py_modules": [str(origin.parent)]}
    return {"working_dir": str(origin.parent), "excludes": ["runs/", "*.npz", ".git/"]}


class RayWorkers:
    """``len(slices)`` Ray actors, actor w owning the environments ``slices[w]``."""

    def __init__(self, env_spec, config: PPOConfig, spaces, run_seed: int, slices: list[list[int]],
                 episodes_started: np.ndarray, max_failures: int = MAX_WORKER_FAILURES, address: str | None = None,
                 connect_timeout: float = RAY_CONNECT_TIMEOUT_S,
                 episode_step_limit: int = EPISODE_STEP_LIMIT) -> None:
        self.ray = ray = import_ray()
        self.started_ray = not ray.is_initialized()
        self.watchdog, self.head = None, None
        if self.started_ray:
            options = dict(include_dashboard=False, runtime_env=runtime_env(env_spec) or None, logging_level="ERROR",
                           log_to_driver=True)
            if address:
                join_cluster(ray, address, connect_timeout, options)
            else:
                self.watchdog, self.head = start_local_ray(ray, len(slices), options)
        self.args = (env_spec, config.to_dict(), spaces)
        self.slices, self.run_seed, self.max_failures = slices, run_seed, max_failures
        self.episode_step_limit = episode_step_limit
        self.work = split_work(config, slices)
        self.episodes_started = episodes_started  # the run's counts (read only: a replaced actor starts from them)
        self.actors = []
        try:  # from here a failure stops what this run started (its Ray, the head thread, the watchdog)
            self.actor_class = ray.remote(num_cpus=1, max_restarts=0)(_SamplerActor)
            self.actors = [self._start(w) for w in range(len(slices))]
            self._get_all([actor.ready.remote() for actor in self.actors], lambda w: self.actors[w].ready.remote())
        except BaseException:
            self.close()
            raise

    def _start(self, w: int):
        return self.actor_class.remote(*self.args, self.slices[w], self.run_seed, self.episodes_started[self.slices[w]],
                                       self.episode_step_limit)

    def collect(self, iteration: int, params: np.ndarray, obs_stats) -> tuple[Batch, np.ndarray]:
        """Each actor's part of the batch, joined in actor (so environment) order, and the episodes
        begun per environment after it."""
        shared = self.ray.put((params, obs_stats))

        def submit(w: int):
            return self.actors[w].collect.remote(iteration, shared, self.work[w])

        parts = self._get_all([submit(w) for w in range(len(self.actors))], submit)
        return Batch.concatenate([batch for batch, _ in parts]), np.concatenate([started for _, started in parts])

    def _get_all(self, refs: list, resubmit) -> list:
        """Each actor's result; a lost or failing actor is replaced and asked again (``resubmit(w)``)."""
        with sigterm_kept():  # ray.get reports a SIGTERM while it waits as a bare KeyboardInterrupt
            return [self._get(w, ref, resubmit) for w, ref in enumerate(refs)]

    def _get(self, w: int, ref, resubmit):
        pending = [ref]

        def replace() -> None:
            self.ray.kill(self.actors[w], no_restart=True)
            self.actors[w] = self._start(w)
            self._result(w, self.actors[w].ready.remote())
            pending[0] = resubmit(w)

        return with_retries(w, self.max_failures, lambda: self._result(w, pending[0]), replace)

    def _result(self, w: int, ref):
        """``ray.get(ref)`` of actor w, or WorkerFailure; npppo's own errors are raised as they are."""
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            if isinstance(cause, NEVER_RETRIED):
                raise type(cause)(str(cause)) from None
            reason = f"the environment in worker {w} raised {type(cause).__name__}: {cause}\n{exc}"
            raise WorkerFailure(reason) from None
        except ray.exceptions.RayActorError as exc:
            raise WorkerFailure(f"worker {w} (a Ray actor) was lost: {type(exc).__name__}") from None

    def close(self) -> None:
        """Stop the actors, and the local Ray if this run started it."""
        for actor in getattr(self, "actors", []):
            self.ray.kill(actor, no_restart=True)
        self.actors = []
        if self.started_ray and self.ray.is_initialized():
            self.ray.shutdown()
            self.started_ray = False
        if self.head is not None:  # its processes are down: the thread that started them may end
            self.head.set()
            self.head = None
        if self.watchdog is not None:  # the cluster it watches is down
            self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog = None


def join_cluster(ray, address: str, timeout: float, options: dict) -> None:
    """``ray.init(address=...)``, given up after ``timeout`` seconds with one line naming the address.

    Ray retries an unreachable cluster for many minutes, blocked where no signal reaches it, so the
    connection is made in a helper thread that is waited for; one that never connects is left behind
    (the command line exits)."""
    outcome: dict = {}

    def connect() -> None:
        try:
            ray.init(address=address, **options)
        except BaseException as exc:  # handed to the learner's thread
            outcome["error"] = exc

    helper = threading.Thread(target=connect, name="npppo-ray-connect", daemon=True)
    helper.start()
    helper.join(timeout)
    if helper.is_alive():
        raise NpppoError(f"cannot reach the Ray cluster at --ray-address {address} within {timeout:g} s: start it "
                         "(ray start --head), check the address, or wait longer with --ray-connect-timeout "
                         "(ray_connect_timeout)")
    if "error" in outcome:
        error = outcome["error"]
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NpppoError(f"cannot join the Ray cluster at --ray-address {address}: {first}") from error


def _kill_descendants(spare: frozenset = frozenset()) -> None:
    """SIGKILL every process below this one (Linux) but those in ``spare``: called only when a local Ray
    start was interrupted, before any worker or watchdog of this run exists, with ``spare`` the ones
    there before the start (another agent's workers or fork server), so what it kills is Ray's head node."""
    if not sys.platform.startswith("linux"):
        return
    for pid in set(descendants(os.getpid())) - spare:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def start_local_ray(ray, num_cpus: int, options: dict):
    """Start a local Ray for this run; returns (watchdog, head): the watchdog process that ends it if the
    learner dies without shutting it down (None where there is no ``/proc`` to find its processes by),
    and the Event that lets the thread which started it end.

    ``ray.init`` runs in a helper thread while this one waits: there Ray installs no SIGTERM handler of
    its own (which exits on the spot), and a Ctrl-C or SIGTERM that comes while Ray starts lets it finish
    starting, then shuts it down and is raised. Cut short instead, Ray's half-connected core worker
    crashes the interpreter's exit (SIGSEGV, or SIGABRT from the abort timer its SIGTERM handling arms:
    :func:`npppo.interrupts.cancel_abort_timer`). The head node's processes end with the thread that
    started them (Ray sets their parent-death signal), so that thread stays until ``head.set()``,
    after the shutdown."""
    outcome: dict = {}
    started, head = threading.Event(), threading.Event()

    def start() -> None:
        try:
            ray.init(num_cpus=num_cpus, **options)
        except BaseException as exc:  # handed to the learner's thread
            outcome["error"] = exc
        finally:
            started.set()
        head.wait()

    before = frozenset(descendants(os.getpid())) if sys.platform.startswith("linux") else frozenset()
    threading.Thread(target=start, name="npppo-ray-head", daemon=True).start()
    interrupted = None
    while not started.is_set():  # an Event, not Thread.join: an interrupted join may report the thread ended
        try:
            started.wait()
        except KeyboardInterrupt as interrupt:  # Terminated too: wait until Ray has started, then stop it
            interrupted = interrupted or interrupt
    if interrupted is not None:
        cancel_abort_timer()
        if ray.is_initialized():
            ray.shutdown()
        head.set()
        _kill_descendants(spare=before)  # what is left of the head node (a failed start leaves gcs and raylet running)
        raise interrupted
    if "error" in outcome:
        head.set()
        raise outcome["error"]
    node = getattr(getattr(getattr(ray, "_private", None), "worker", None), "_global_node", None)
    if not sys.platform.startswith("linux") or not getattr(node, "head", False):
        return None, head  # no /proc, or Ray joined a cluster started elsewhere (ray start): not this run's to end
    try:  # in its own session: a Ctrl-C in the terminal leaves it be
        watchdog = subprocess.Popen([sys.executable, "-I", str(WATCHDOG), str(os.getpid()),
                                     node.get_session_dir_path()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
    except BaseException:
        ray.shutdown()
        head.set()
        raise
    return watchdog, head
