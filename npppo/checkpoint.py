"""Checkpoints: one ``.npz`` of plain arrays plus a JSON string, written atomically, never pickled.

Layout (format version 1):

* ``__npppo__``: the JSON metadata (format version, config, seed, env id, sizes, iteration, step
  count, RNG state and, when written by the command line, the run's options under ``"run"``) as a
  0-d unicode array;
* every array of :meth:`npppo.PPO.state_arrays` under its name (parameters, optimizer states,
  observation statistics, action bounds).

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

from npppo.errors import CheckpointError, ConfigError

FORMAT_VERSION = 1
META_KEY = "__npppo__"


def save_checkpoint(agent, path: str | Path, run: dict[str, Any] | None = None) -> Path:
    """Write ``agent``'s full training state to ``path`` (atomically); returns the path.

    ``run`` (optional, JSON-able) is stored in the metadata under ``"run"``: the command line keeps
    the run's target step count and options there, so that ``--resume`` can finish the same run.
    """
    return write_checkpoint(path, *snapshot(agent), run=run)


def snapshot(agent) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, metadata) of ``agent``'s training state as independent copies: a snapshot taken after
    an iteration stays valid while training goes on, so it can be written later (e.g. on Ctrl-C)."""
    arrays = {name: np.array(value, copy=True) for name, value in agent.state_arrays().items()}
    return arrays, json.loads(json.dumps(agent.state_meta()))


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


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temporary file beside ``path``, fsync, then rename over ``path``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def load_checkpoint(path: str | Path, env=None):
    """A :class:`npppo.PPO` restored from ``path``; ``env`` (optional) must have the checkpoint's sizes."""
    from npppo.config import PPOConfig
    from npppo.envs import check_spaces, make_env
    from npppo.ppo import PPO

    arrays, meta = read_checkpoint(path)
    try:
        config = PPOConfig.from_dict(meta["config"])
        spaces = (int(meta["obs_dim"]), int(meta["action_dim"]), arrays["action_low"], arrays["action_high"])
        seed = int(meta["seed"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {path} is incomplete or its config is invalid: {exc}") from exc
    env_spec = env if env is not None else meta.get("env_id")
    if env is not None:
        instance = make_env(env)
        obs_dim, action_dim, _, _ = check_spaces(instance)
        if (obs_dim, action_dim) != spaces[:2]:
            raise CheckpointError(
                f"checkpoint {path} was trained with observation shape ({spaces[0]},) and action shape "
                f"({spaces[1]},), but the environment has observation shape ({obs_dim},) and action shape "
                f"({action_dim},)"
            )
        env_spec = instance if not isinstance(env, str) and not callable(env) else env
    agent = PPO(None, config, seed=seed, _spaces=spaces)
    agent.env_spec, agent.env_id = env_spec, meta.get("env_id")
    try:
        agent.load_state(arrays, meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit its own config: {exc}") from exc
    return agent
