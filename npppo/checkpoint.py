"""Checkpoints: one ``.npz`` of plain arrays plus a JSON string, written atomically, never pickled.

This module is the only reader and writer of the format (version 2):

* ``__npppo__``: the JSON metadata as a 0-d unicode array: format version, config, seed, env id,
  sizes, iteration, step count, the acting RNG's state, ``"policy"`` (what inference needs beyond
  the layer tables: sigma floor, log-std offset, observation clip) and, when written by the
  command line, the run's options under ``"run"``;
* ``"contents"``: ``"checkpoint"`` (everything to resume training; also a file without the key,
  as written before it existed) or ``"model"`` (:func:`write_model`: what acting and value
  estimation need, no optimizer state, no reward-normalisation statistics, no random-generator
  state, no per-environment episode counters: a run's ``model.npz`` and ``best.npz``);
* arrays: ``policy.params`` / ``critic.params`` with their layer tables ``policy.layers`` /
  ``critic.layers`` (:data:`npppo.nn.layers.LAYER_DTYPE`), ``optim.<group>.<state>``,
  ``obs_rms.mean`` / ``.var`` / ``.count``, ``return_rms.mean`` / ``.var`` / ``.count`` (the reward
  normalisation's statistics of the discounted return; training only: inference does not use them)
  and ``action_low`` / ``action_high``.

:mod:`npppo.inference` reads the same format with NumPy alone.

The file is written to a temporary name in the same folder, flushed and fsync'ed, then renamed over
the target, so a crash leaves either the old checkpoint or the new one, never half of one.
Loading uses ``allow_pickle=False``: a file that needs pickle is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from npppo.config import PPOConfig
from npppo.envs import EnvFactory, Spaces
from npppo.errors import CheckpointError, ConfigError, NpppoError
from npppo.inference import FORMAT_VERSION, META_KEY


def save(agent, path: str | Path, run: dict[str, Any] | None = None) -> Path:
    """Write ``agent``'s full training state to ``path`` (atomically); returns the path.

    ``run`` (optional, JSON-able) is stored in the metadata under ``"run"``: the command line keeps
    the run's target step count and options there, so that ``--resume`` can finish the same run.
    """
    return write_checkpoint(path, *snapshot(agent), run=run)


def snapshot(agent) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, metadata) of ``agent``'s training state (:meth:`npppo.PPO.state`) as independent copies: a
    snapshot taken after an iteration stays valid while training goes on, so it can be written later
    (e.g. on Ctrl-C)."""
    state = agent.state()
    arrays = {"policy.params": state["policy"], "policy.layers": agent.policy.layers,
              "critic.params": state["critic"], "critic.layers": agent.critic.layers,
              "action_low": agent.action_low, "action_high": agent.action_high}
    for group, optimizer_state in state["optimizers"].items():
        arrays.update({f"optim.{group}.{key}": value for key, value in optimizer_state.items()})
    for name in ("obs_rms", "return_rms"):
        if state[name] is not None:
            arrays.update({f"{name}.{key}": value for key, value in state[name].items()})
    meta = {
        "config": agent.config.to_dict(), "seed": agent.seed, "env_id": agent.env_id,
        "env": _env_record(agent.env_spec),
        "obs_dim": agent.obs_dim, "action_dim": agent.action_dim, "iteration": state["iteration"],
        "num_timesteps": state["num_timesteps"], "episodes_started": state["rollout"]["episodes_started"],
        "act_rng": state["act_rng"],
        "policy": {**agent.policy.facts(), "obs_clip": agent.config.obs_clip if agent.obs_rms else None},
    }
    return {name: np.array(value, copy=True) for name, value in arrays.items()}, json.loads(json.dumps(meta))


def _state(arrays: dict[str, np.ndarray], meta: dict[str, Any], groups, model_only: bool) -> dict[str, Any]:
    """The agent's state (:meth:`npppo.PPO.load_state`) of a checkpoint's arrays and metadata; a model
    file's holds only what acting needs. ``groups``: the agent's optimizer groups."""

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}

    state = {"policy": arrays["policy.params"], "critic": arrays["critic.params"], "obs_rms": part("obs_rms."),
             "iteration": meta["iteration"], "num_timesteps": meta["num_timesteps"]}
    if not model_only:
        state.update(optimizers={group: part(f"optim.{group}.") for group in groups},
                     return_rms=part("return_rms."), act_rng=meta["act_rng"],
                     rollout={"episodes_started": meta["episodes_started"]})
    return state


def _env_record(spec) -> dict[str, Any] | None:
    """How to make the agent's environment again, when it was given as an id (or an EnvFactory); None
    for an instance or another callable, which a checkpoint cannot hold."""
    if isinstance(spec, str):
        return {"id": spec, "kwargs": {}, "max_episode_steps": None}
    if isinstance(spec, EnvFactory):
        return {"id": spec.env_id, "kwargs": spec.kwargs, "max_episode_steps": spec.max_episode_steps}
    return None


def _env_from_record(record: dict[str, Any] | None):
    if record is None:
        return None
    if record["kwargs"] or record["max_episode_steps"]:
        return EnvFactory(record["id"], record["kwargs"], record["max_episode_steps"])
    return record["id"]


def write_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                     run: dict[str, Any] | None = None) -> Path:
    """Write a snapshot (from :func:`snapshot`) as a checkpoint at ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": "npppo-checkpoint", "format_version": FORMAT_VERSION, **meta}
    if run is not None:
        meta["run"] = run
    write_npz_atomic(path, {**arrays, META_KEY: np.array(json.dumps(meta))})
    return path


MODEL_ARRAYS = ("policy.params", "policy.layers", "critic.params", "critic.layers", "action_low", "action_high",
                "obs_rms.mean", "obs_rms.var", "obs_rms.count")
TRAINING_ONLY_META = ("act_rng", "episodes_started")  # the state of the training's random streams


def write_model(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                run: dict[str, Any] | None = None) -> Path:
    """Write the acting part of a snapshot (from :func:`snapshot`) at ``path``, atomically: the policy
    and critic with their layer tables, the observation normalisation, the action bounds and the
    metadata (config, spaces, env, iteration, step count); no optimizer or random-generator state.
    :func:`load` makes an agent of it that acts and estimates values but cannot :meth:`learn`."""
    kept = {name: value for name, value in arrays.items() if name in MODEL_ARRAYS}
    meta = {key: value for key, value in meta.items() if key not in TRAINING_ONLY_META}
    return write_checkpoint(path, kept, {**meta, "contents": "model"}, run=run)


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temporary file beside ``path``, fsync, then rename over ``path``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is a file like any other
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, metadata) of a checkpoint, or CheckpointError naming the file and the fault."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    with open(path, "rb") as handle:
        head = handle.read(6)
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was never written completely")
    if head.startswith(b"\x93NUMPY"):
        try:
            np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise CheckpointError(
                f"checkpoint {path} holds pickled objects, which npppo refuses to load (a pickle can run "
                "arbitrary code); npppo checkpoints are plain arrays"
            ) from exc
        except (OSError, EOFError) as exc:
            raise CheckpointError(f"{path} is a truncated .npy file, not an npppo checkpoint: {exc}") from exc
        raise CheckpointError(f"{path} is a single .npy array, not an npppo checkpoint (.npz)")
    if not head.startswith(b"PK"):
        raise CheckpointError(f"{path} is not an .npz file (it starts with {head!r}): not an npppo checkpoint")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if META_KEY not in npz.files:
                raise CheckpointError(
                    f"{path} is an .npz but not an npppo checkpoint (it has no {META_KEY!r} entry; "
                    f"arrays found: {sorted(npz.files)[:8]})"
                )
            arrays = {name: npz[name] for name in npz.files}
    except CheckpointError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            raise CheckpointError(
                f"checkpoint {path} holds pickled objects, which npppo refuses to load (a pickle can run "
                "arbitrary code); npppo checkpoints are plain arrays"
            ) from exc
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (not a readable .npz): {exc}") from exc
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path}: its metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != "npppo-checkpoint":
        raise CheckpointError(f"{path} is not an npppo checkpoint (its metadata has no npppo format tag)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {meta.get('format_version')}, this npppo reads version "
            f"{FORMAT_VERSION}: load it with the npppo version that wrote it"
        )
    return arrays, meta


def load(cls, path: str | Path, env=None):
    """An agent of class ``cls`` (:class:`npppo.PPO`) restored from ``path``; ``env`` (optional) must
    have the checkpoint's sizes."""
    arrays, meta = read_checkpoint(path)
    try:
        config = PPOConfig.from_dict(meta["config"])
        spaces = Spaces.of((meta["obs_dim"], meta["action_dim"], arrays["action_low"], arrays["action_high"]))
        seed = int(meta["seed"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {path} is incomplete or its config is invalid: {exc}") from exc
    agent = cls.from_spaces(spaces, config, seed, env if env is not None else _env_from_record(meta.get("env")))
    if env is not None:
        try:
            agent.envs  # noqa: B018  (made now: a mismatched environment fails here, naming both shapes)
        except NpppoError as exc:
            raise CheckpointError(f"checkpoint {path} does not fit the environment: {exc}") from exc
    agent.env_id = meta.get("env_id")
    model_only = meta.get("contents", "checkpoint") == "model"
    try:
        agent.load_state(_state(arrays, meta, agent.optimizers, model_only))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit its own config: {exc}") from exc
    if model_only:
        agent.loaded_model = str(path)  # learn() refuses: the training state is not in the file
    return agent
