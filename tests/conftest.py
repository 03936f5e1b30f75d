"""Shared fixtures: a tiny seed-shaped config, and finite-difference checks that remember their worst
error for the session summary; and the helpers that the network gradient checks share."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from npppo import presets
from npppo.config import PPOConfig
from npppo.gradcheck import GradcheckResult, gradcheck

_worst: list[tuple[float, float, str]] = []

# A test run started with SIGINT ignored (a background job of a non-interactive shell, nohup) would pass
# that on to every process it starts, and the tests that press Ctrl-C on a real `npppo train` would find
# Ctrl-C ignored. A Python handler is not inherited across exec: the processes then start as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def tiny_config():
    """``tiny_config(**changes)``: the seed's system (presets/seed.json) shrunk to run in seconds."""

    def make(**changes) -> PPOConfig:
        small = dict(num_envs=2, episodes_per_batch=2, trunk_sizes=[16, 16], head_sizes=[8], critic_sizes=[16, 16],
                     actor_epochs=2, critic_epochs=2, mu_activation="identity")
        return presets.get("seed").replace(**{**small, **changes})

    return make


@pytest.fixture
def checked_gradient(request):
    """``checked_gradient(f, x, analytic, indices=None)``: :func:`npppo.gradcheck` plus bookkeeping."""

    def run(f, x: np.ndarray, analytic: np.ndarray, indices=None) -> GradcheckResult:
        result = gradcheck(f, x, analytic, indices)
        size = np.maximum(np.abs(result.analytic), np.abs(result.numeric))
        large = size >= 1e-3  # the relative error proper, away from gradcheck's absolute floor
        relative = float(np.max(np.abs(result.analytic - result.numeric)[large] / size[large], initial=0.0))
        _worst.append((result.max_rel_error, relative, request.node.nodeid))
        return result

    return run


# ---------------------------------------------------------------- helpers of the network gradient checks

KINK_MARGIN = 1e-3  # pre-activations of relu/elu stay this far from 0, well beyond the stencil's 2h = 2e-4


def kink_free_rows(model, forward, candidates: np.ndarray, rows: int) -> np.ndarray:
    """The first ``rows`` rows of ``candidates`` at which ``forward`` (a forward of ``model``) puts no
    relu/elu pre-activation within KINK_MARGIN of its kink at 0; read from the layers' own buffers."""
    forward(candidates)
    keep = np.ones(candidates.shape[0], bool)
    for part in model.parts:
        for layer in part.layers:
            if layer.activation in ("relu", "elu"):
                keep &= np.min(np.abs(layer._buffer(candidates.shape[0])[0]), axis=1) > KINK_MARGIN
    x = np.ascontiguousarray(candidates[keep][:rows])
    assert x.shape[0] == rows, "too few kink-free inputs: change the seed"
    return x


def randomise_biases(model, rng: np.random.Generator) -> None:
    """Non-zero biases (they start at zero), so that the bias path of the forward is exercised too."""
    for name, view in model.named_params().items():
        if name.endswith(".bias"):
            view[...] = rng.normal(0.0, 0.3, size=view.shape)


def flat_offset(model, view: np.ndarray) -> int:
    """Where the view ``view`` starts in ``model.params``."""
    return (view.__array_interface__["data"][0] - model.params.__array_interface__["data"][0]) // view.itemsize


def spread_indices(model, rng: np.random.Generator, per_tensor: int = 4, total: int = 0) -> np.ndarray:
    """Flat indices to check: ``per_tensor`` from every weight and bias, then random ones up to ``total``."""
    chosen = set()
    for view in model.named_params().values():
        start = flat_offset(model, view)
        chosen.update(start + rng.choice(view.size, size=min(per_tensor, view.size), replace=False))
    chosen.update(rng.permutation(model.params.size)[: max(total - len(chosen), 0)])
    return np.array(sorted(chosen))


def assert_every_tensor_checked(model, result: GradcheckResult) -> None:
    """Each weight and bias has checked coordinates, and not only zero-gradient ones."""
    for name, view in model.named_params().items():
        start = flat_offset(model, view)
        mask = (result.indices >= start) & (result.indices < start + view.size)
        assert mask.any(), f"{name} was not checked"
        assert np.any(result.analytic[mask] != 0.0), f"{name}: only zero gradients were checked"


def pytest_terminal_summary(terminalreporter) -> None:
    if _worst:
        error, _, nodeid = max(_worst)
        relative = max(w[1] for w in _worst)
        terminalreporter.write_line(
            f"gradient checks: {len(_worst)} run, worst error {error:.3g} ({nodeid}); "
            f"worst relative error where |grad| >= 1e-3: {relative:.3g}"
        )


@pytest.fixture
def obs_statistics():
    """``obs_statistics(agent) -> (mean, var)`` of the agent's observation normalisation: the one
    place the tests read ``agent.obs_rms``, which is not among the agent's stable names."""

    def read(agent):
        return agent.obs_rms.mean, agent.obs_rms.var

    return read


@pytest.fixture
def config_file(tmp_path):
    """``config_file(**changes)``: the path of a JSON config, the ``pendulum`` preset with ``changes``."""

    def write(**changes) -> str:
        path = tmp_path / "tiny.json"
        path.write_text(presets.get("pendulum").replace(**changes).to_json())
        return str(path)

    return write
