"""npppo.export: the C and ONNX exports act as npppo.inference does, for every preset's architecture."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from npppo import PPO, presets
from npppo.errors import CheckpointError
from npppo.export import export, load_model
from npppo.inference import Policy

CC = shutil.which("gcc") or shutil.which("cc")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"]
FLAG_SETS = [["-O2"], ["-O3", "-march=native"]]
N_OBS = 1000
TOLERANCE = 1e-5  # per element, for fan-ins up to 64: |C or ONNX - inference.py| <= tolerance * max(1, |inference.py|)


def tolerance(policy: Policy) -> float:
    """:data:`TOLERANCE`, in proportion to the widest fan-in past 64: C and ONNX sum each
    layer in float32 against inference.py's float64, and the rounding grows with the terms summed
    (measured: at most 4.6e-6 for the fan-ins <= 100 of the presets below, 1.4e-5 for halfcheetah's
    ReLU 256x256 with random weights, under every OpenBLAS kernel alike)."""
    return TOLERANCE * max(1.0, max(int(layer["fan_in"]) for layer in policy.parts["trunk"]) / 64)


# the presets' architectures, and the other parts a config can describe: every activation (softplus
# only here), an ELU alpha other than 1, a softplus sigma head, the tanh squash, normalised observations
EXTRA = {
    "tanh-squash": ("pendulum", dict(action_squash="tanh", normalize_obs=True)),
    "softplus-elu-squash": ("seed", dict(actor_activation="softplus", mu_activation="elu", sigma_mode="softplus",
                                         elu_alpha=0.5, action_squash="tanh", normalize_obs=True)),
    "elu-alpha-identity": ("seed", dict(elu_alpha=0.7, mu_activation="identity", normalize_obs=True)),
    "float64-trained": ("lunarlander", dict(dtype="float64")),  # weights rounded to float32 by the export
}
ARCHITECTURES = {**{name: (name, {}) for name in presets.names()}, **EXTRA}
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "NAME.h"

/* reads N observations (float32) from argv[1] and N noise vectors from argv[2]; writes the N
   deterministic actions, then the N stochastic ones, to stdout (float32) */
int main(int argc, char **argv)
{
    float obs[NAME_UPPER_OBS_DIM], noise[NAME_UPPER_ACTION_DIM], action[NAME_UPPER_ACTION_DIM];
    FILE *obs_file, *noise_file;
    int pass;
    if (argc != 3) return 2;
    for (pass = 0; pass < 2; ++pass) {
        obs_file = fopen(argv[1], "rb");
        noise_file = fopen(argv[2], "rb");
        if (!obs_file || !noise_file) return 3;
        while (fread(obs, sizeof obs, 1, obs_file) == 1 && fread(noise, sizeof noise, 1, noise_file) == 1) {
            if (pass == 0) NAME_act(obs, action);
            else NAME_act_stochastic(obs, noise, action);
            fwrite(action, sizeof action, 1, stdout);
        }
        fclose(obs_file);
        fclose(noise_file);
    }
    return 0;
}
"""
WORST: dict[tuple[str, str], float] = {}  # (architecture, format) -> worst |error| / max(1, |reference|)


@pytest.fixture(scope="session", autouse=True)
def _print_worst_errors():
    yield
    if WORST:
        lines = [f"  {arch:22s} {fmt:24s} {error:.2e}" for (arch, fmt), error in sorted(WORST.items())]
        print("\nexport parity, worst |error| / max(1, |reference|):\n" + "\n".join(lines))


def spaces_of(env_id: str):
    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def random_agent(architecture: str, seed: int = 0) -> tuple[PPO, gym.spaces.Box]:
    """An agent of ``architecture`` for its preset's environment, with every parameter moved away from
    its initial value (so that each activation sees both signs and the mean goes beyond the bounds) and
    non-trivial observation statistics."""
    preset, changes = ARCHITECTURES[architecture]
    obs_space, action_space = spaces_of(presets.load(preset)[1]["env"])
    spaces = (obs_space.shape[0], action_space.shape[0], action_space.low, action_space.high)
    agent = PPO.from_spaces(spaces, presets.get(preset).replace(**changes), seed=seed)
    rng = np.random.default_rng(seed)
    params = agent.policy.params
    params += rng.normal(0.0, 0.1, params.shape).astype(params.dtype)
    last = agent.policy.mu_head.layers[-1].weight  # a view: means of several units, beyond the bounds
    last += rng.normal(0.0, 0.3, last.shape).astype(last.dtype)
    if agent.obs_rms is not None:
        agent.obs_rms.mean = rng.normal(0.0, 2.0, agent.obs_dim)
        agent.obs_rms.var = rng.uniform(0.01, 9.0, agent.obs_dim)
    return agent, obs_space


def observations(obs_space: gym.spaces.Box, policy: Policy, n: int = N_OBS, seed: int = 1) -> np.ndarray:
    """n float32 observations: half over the space widened by half its width on each side (unbounded
    sides taken as ±5), half over four times its width; for a policy that normalises its observations,
    half of the latter at mean ± 15 std instead, where they hit the ±obs_clip clip."""
    rng = np.random.default_rng(seed)
    low = np.where(np.isfinite(obs_space.low), obs_space.low, -5.0)
    high = np.where(np.isfinite(obs_space.high), obs_space.high, 5.0)
    centre, half = (low + high) / 2, (high - low) / 2
    inside = rng.uniform(centre - 1.5 * half, centre + 1.5 * half, size=(n // 2, policy.obs_dim))
    far = centre + np.maximum(half, 1.0) * rng.uniform(-4.0, 4.0, size=(n - n // 2, policy.obs_dim))
    if policy.obs_clip is not None:  # a quarter at mean ± 15 std: normalised, they hit the clip
        far[: n // 4] = policy.obs_mean + np.sqrt(policy.obs_var) * rng.uniform(-15.0, 15.0, (n // 4, policy.obs_dim))
    return np.concatenate([inside, far]).astype(np.float32)


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(actual.astype(np.float64) - reference) / np.maximum(1.0, np.abs(reference))))


def compile_c(folder: Path, name: str, flags: list[str]) -> Path:
    """The test harness for the export ``folder/NAME.{h,c}``, compiled warning-free (-Werror)."""
    harness = folder / f"harness_{name}.c"
    harness.write_text(HARNESS.replace("NAME_UPPER", name.upper()).replace("NAME", name))
    binary = folder / f"harness_{name}_{'_'.join(f.strip('-').replace('=', '') for f in flags)}"
    subprocess.run([CC, *STRICT, *flags, "-I", str(folder), str(harness), str(folder / f"{name}.c"),
                    "-lm", "-o", str(binary)], check=True, capture_output=True, text=True)
    return binary


def run_c(binary: Path, obs: np.ndarray, noise: np.ndarray, action_dim: int) -> tuple[np.ndarray, np.ndarray]:
    folder = binary.parent
    obs.astype(np.float32).tofile(folder / "obs.bin")
    noise.astype(np.float32).tofile(folder / "noise.bin")
    out = subprocess.run([str(binary), str(folder / "obs.bin"), str(folder / "noise.bin")], check=True,
                         capture_output=True).stdout
    actions = np.frombuffer(out, np.float32).reshape(2, obs.shape[0], action_dim)
    return actions[0], actions[1]


def check_c(folder: Path, name: str, source: Path, obs: np.ndarray, label: str, flag_sets=FLAG_SETS) -> None:
    """C actions (deterministic and with the caller's noise) == inference.py's, for each flag set."""
    policy = Policy.load(source)
    noise = np.random.default_rng(2).standard_normal((obs.shape[0], policy.action_dim))
    reference = policy.act(obs.astype(np.float64))
    mu, sigma = policy.distribution(obs.astype(np.float64))
    sampled = mu + sigma * noise.astype(np.float32)
    if policy.action_squash == "tanh":
        from npppo.inference import tanh_squash

        reference_sampled = tanh_squash(sampled, policy.action_low, policy.action_high)
    else:
        reference_sampled = np.clip(sampled, policy.action_low, policy.action_high)
    for flags in flag_sets:
        deterministic, stochastic = run_c(compile_c(folder, name, flags), obs, noise, policy.action_dim)
        for what, actual, expected in (("act", deterministic, reference), ("act_stochastic", stochastic,
                                                                           reference_sampled)):
            error = relative_error(actual, expected)
            key = (label, f"c {' '.join(flags)} {what}")
            WORST[key] = max(WORST.get(key, 0.0), error)
            assert error <= tolerance(policy), f"{key}: {error:.2e}"


def check_onnx(path: Path, source: Path, obs: np.ndarray, label: str) -> None:
    """onnxruntime's actions == inference.py's, for the whole batch and for single rows."""
    import onnxruntime

    policy = Policy.load(source)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = policy.act(obs.astype(np.float64))
    (actions,) = session.run(["action"], {"obs": obs})
    assert actions.shape == (obs.shape[0], policy.action_dim) and actions.dtype == np.float32
    error = relative_error(actions, reference)
    for row in (0, obs.shape[0] - 1):
        (single,) = session.run(["action"], {"obs": obs[row : row + 1]})
        error = max(error, relative_error(single[0], reference[row]))
    WORST[(label, "onnx")] = max(WORST.get((label, "onnx"), 0.0), error)
    assert error <= tolerance(policy), f"{label} onnx: {error:.2e}"


# ------------------------------------------------------------------------------------------- parity
@pytest.mark.filterwarnings("ignore:the mu head ends in ReLU")
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_c_and_onnx_act_as_inference_does(tmp_path, architecture, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working folder
    agent, obs_space = random_agent(architecture)
    source = agent.save(tmp_path / "model.npz")
    policy = Policy.load(source)
    obs = observations(obs_space, policy)
    if policy.obs_clip is not None:  # the test reaches the clip on both sides
        normalised = (obs - policy.obs_mean) / np.sqrt(policy.obs_var + 1e-8)
        assert np.any(normalised > policy.obs_clip) and np.any(normalised < -policy.obs_clip)
    export(source, "c", tmp_path / "c", name="policy")
    check_c(tmp_path / "c", "policy", source, obs, architecture)
    export(source, "onnx", tmp_path / "policy.onnx")
    check_onnx(tmp_path / "policy.onnx", source, obs, architecture)


def test_the_c_policy_propagates_nan_and_reaches_both_bounds(tmp_path):
    agent, obs_space = random_agent("pendulum")
    agent.policy.mu_head.layers[-1].weight[...] *= 10.0  # means beyond both bounds
    source = agent.save(tmp_path / "model.npz")
    export(source, "c", tmp_path, name="squashed")
    obs = np.concatenate([observations(obs_space, Policy.load(source)), np.full((1, agent.obs_dim), np.nan)])
    deterministic, _ = run_c(compile_c(tmp_path, "squashed", ["-O2"]), obs.astype(np.float32),
                             np.zeros((obs.shape[0], 1)), 1)
    assert np.isnan(deterministic[-1, 0]) and not np.any(np.isnan(deterministic[:-1]))
    assert deterministic[:-1].min() == np.float32(-2.0) and deterministic[:-1].max() == np.float32(2.0)


# ------------------------------------------------------------------------------------------- trained
def _short(name: str):
    """Preset ``name``'s config with its batch shrunk to a few hundred steps (the networks unchanged)."""
    config = presets.get(name)
    if config.episodes_per_batch is not None:
        return config.replace(num_envs=2, episodes_per_batch=2)
    return config.replace(num_envs=2, steps_per_batch=128, batch_size=64)


@pytest.mark.filterwarnings("ignore:the mu head ends in ReLU")
@pytest.mark.parametrize("preset", presets.names())
def test_a_trained_checkpoint_of_every_preset_exports(tmp_path, preset, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as above: MuJoCo's MUJOCO_LOG.TXT stays out of the checkout
    env_id = presets.load(preset)[1]["env"]
    agent = PPO(env_id, _short(preset), seed=3)
    agent.learn(1)  # one iteration: trained parameters, observation statistics from the environment
    source = agent.save(tmp_path / "checkpoint.npz")
    export(source, "c", tmp_path / "c", name=preset)
    obs_space, _ = spaces_of(env_id)
    obs = observations(obs_space, Policy.load(source), seed=4)
    check_c(tmp_path / "c", preset, source, obs, f"trained {preset}", flag_sets=[["-O2"]])
    export(source, "onnx", tmp_path / "policy.onnx")
    check_onnx(tmp_path / "policy.onnx", source, obs, f"trained {preset}")


def test_npppo_export_reads_a_run_folder_its_model_and_its_checkpoint(tmp_path, capsys):
    from npppo.cli import main

    run = tmp_path / "run"
    assert main(["train", "--steps", "200", "--out", str(run), "--workers", "1", "--max-episode-steps", "100"]) == 0
    for k, source in enumerate([run, run / "model.npz", run / "checkpoint.npz"]):
        assert main(["export", str(source), "--format", "c", "--out", str(tmp_path / f"c{k}")]) == 0
        assert main(["export", str(source), "--format", "onnx", "--out", str(tmp_path / f"p{k}.onnx")]) == 0
    assert "npppo: wrote" in capsys.readouterr().out
    texts = [(tmp_path / f"c{k}" / "pendulum.c").read_text() for k in range(3)]
    weights = [text[text.index("static const float"):] for text in texts]
    assert weights[0] == weights[1] == weights[2]  # model.npz and checkpoint.npz hold the same policy
    obs = observations(spaces_of("Pendulum-v1")[0], Policy.load(run / "model.npz"))
    check_c(tmp_path / "c0", "pendulum", run / "model.npz", obs, "trained pendulum (cli)", flag_sets=[["-O2"]])
    check_onnx(tmp_path / "p0.onnx", run / "model.npz", obs, "trained pendulum (cli)")


# ------------------------------------------------------------------------------------------- what the files say
def test_the_header_documents_sizes_bounds_version_and_source(tmp_path):
    import hashlib

    from npppo import __version__

    agent, _ = random_agent("lunarlander")
    source = agent.save(tmp_path / "model.npz")
    header_path, source_path = export(source, "c", tmp_path, name="lander")
    header = header_path.read_text()
    assert "#define LANDER_OBS_DIM 8" in header and "#define LANDER_ACTION_DIM 2" in header
    assert "action[0] in [-1, 1]" in header and "action[1] in [-1, 1]" in header
    assert f"npppo {__version__}" in header
    assert hashlib.sha256(source.read_bytes()).hexdigest() in header
    assert hashlib.sha256(source_path.read_bytes()).hexdigest() in header
    assert "void lander_act(const float *obs, float *action);" in header
    assert "void lander_act_stochastic(const float *obs, const float *noise, float *action);" in header
    assert re.findall(r"#include <(\w+)\.h>", source_path.read_text()) == ["math"]
    assert "malloc" not in source_path.read_text()
    # every array is const, every other file-scope object too: no state that changes
    file_scope = [line for line in source_path.read_text().splitlines() if line.startswith("static ")]
    assert all(line.startswith(("static const float", "static float", "static void")) for line in file_scope)
    assert all("(" in line for line in file_scope if not line.startswith("static const"))


def test_the_onnx_graph_holds_the_spaces_and_the_source_hash(tmp_path):
    import hashlib

    import onnx

    agent, _ = random_agent("conwip")
    source = agent.save(tmp_path / "model.npz")
    (path,) = export(source, "onnx", tmp_path / "conwip.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert props["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert json.loads(props["observation_shape"]) == [8] and json.loads(props["action_shape"]) == [1]
    assert json.loads(props["action_low"]) == [0.0] and json.loads(props["action_high"]) == [100.0]
    assert json.loads(props["obs_normalization"])["clip"] == 10.0
    ops = [node.op_type for node in model.graph.node]
    assert ops[:3] == ["Sub", "Div", "Clip"] and ops[-2:] == ["Max", "Min"]
    assert [i.name for i in model.graph.input] == ["obs"] and [o.name for o in model.graph.output] == ["action"]


def test_the_generated_c_is_warning_free_with_clang_when_installed(tmp_path):
    clang = shutil.which("clang")
    compilers = [c for c in (CC, clang) if c]
    agent, _ = random_agent("softplus-elu-squash")
    export(agent.save(tmp_path / "model.npz"), "c", tmp_path, name="every_part")
    for compiler in compilers:
        result = subprocess.run([compiler, *STRICT, "-Wshadow", "-O2",
                                 "-c", str(tmp_path / "every_part.c"), "-o", str(tmp_path / "every_part.o")],
                                capture_output=True, text=True)
        assert result.returncode == 0 and result.stderr == "", result.stderr


# ------------------------------------------------------------------------------------------- bad input
@pytest.fixture
def saved(tmp_path) -> Path:
    agent, _ = random_agent("pendulum")
    return agent.save(tmp_path / "model.npz")


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    from npppo.cli import main

    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.err


def test_bad_input_gets_one_line_exit_1_and_writes_nothing(tmp_path, saved, capsys, monkeypatch):
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    out, empty = tmp_path / "out", tmp_path / "empty"
    empty.mkdir()
    cases = {
        "truncated": ([str(truncated), "--format", "c", "--out", str(out)], "corrupt or truncated"),
        "corrupt": ([str(corrupt), "--format", "c", "--out", str(out)], "corrupt or truncated"),
        "missing": ([str(tmp_path / "nothing.npz"), "--format", "c", "--out", str(out)], "does not exist"),
        "empty folder": ([str(empty), "--format", "c", "--out", str(out)], "holds neither model.npz"),
        "format": ([str(saved), "--format", "tflite", "--out", str(out)], "choose one of c, onnx"),
        "name": ([str(saved), "--format", "c", "--out", str(out), "--name", "2-fast"], "is not a C identifier"),
        "keyword": ([str(saved), "--format", "c", "--out", str(out), "--name", "float"], "is not a C identifier"),
    }
    for case, (argv, message) in cases.items():
        status, err = _cli(["export", *argv], capsys)
        assert status == 1, case
        assert err.count("\n") == 1 and err.startswith("npppo: error:") and message in err, (case, err)
    assert not out.exists()
    status, err = _cli(["export", str(saved), "--format", "c", "--out", str(saved)], capsys)
    assert status == 1 and err.count("\n") == 1 and "is a file" in err
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    status, err = _cli(["export", str(saved), "--format", "onnx", "--out", str(tmp_path / "p.onnx")], capsys)
    assert status == 1 and err.count("\n") == 1 and "pip install 'npppo[onnx]'" in err
    assert not (tmp_path / "p.onnx").exists()


def test_existing_output_needs_force(tmp_path, saved, capsys):
    out = tmp_path / "c"
    assert _cli(["export", str(saved), "--format", "c", "--out", str(out)], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "pendulum.c").write_text("/* the user's edit */")
    status, err = _cli(["export", str(saved), "--format", "c", "--out", str(out)], capsys)
    assert status == 1 and err.count("\n") == 1 and "--force" in err and "pendulum.c" in err
    assert (out / "pendulum.c").read_text() == "/* the user's edit */"  # untouched
    assert _cli(["export", str(saved), "--format", "c", "--out", str(out), "--force"], capsys)[0] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    onnx_path = tmp_path / "p.onnx"
    onnx_path.write_bytes(b"old")
    status, err = _cli(["export", str(saved), "--format", "onnx", "--out", str(onnx_path)], capsys)
    assert status == 1 and "--force" in err and onnx_path.read_bytes() == b"old"


def test_a_checkpoint_with_non_finite_parameters_is_refused(tmp_path):
    agent, _ = random_agent("pendulum")
    agent.policy.params[3] = np.nan
    with pytest.raises(CheckpointError, match="non-finite"):
        load_model(agent.save(tmp_path / "model.npz"))


def test_the_default_name_is_the_matching_preset_or_policy(tmp_path):
    agent, _ = random_agent("mujoco")
    assert export(agent.save(tmp_path / "a.npz"), "c", tmp_path / "a")[0].name == "mujoco.h"
    changed = PPO.from_spaces((3, 1, np.array([-2.0]), np.array([2.0])), presets.get("pendulum").replace(gamma=0.9))
    assert export(changed.save(tmp_path / "b.npz"), "onnx", tmp_path / "b.onnx")[0].name == "b.onnx"
    assert export(tmp_path / "b.npz", "c", tmp_path / "b")[0].name == "policy.h"


def test_a_model_file_holding_only_what_acting_needs_exports(tmp_path):
    """The exports read what inference.py reads: no optimizer state, RNG state or reward statistics."""
    from npppo.checkpoint import read_checkpoint, write_checkpoint

    agent, obs_space = random_agent("lunarlander")
    arrays, meta = read_checkpoint(agent.save(tmp_path / "checkpoint.npz"))
    slim = {k: v for k, v in arrays.items() if not k.startswith(("optim.", "return_rms.")) and k != "obs_rms.count"}
    meta = {k: v for k, v in meta.items() if k not in ("act_rng", "episodes_started", "format", "format_version")}
    source = write_checkpoint(tmp_path / "model.npz", slim, meta)
    assert len(slim) < len(arrays)
    export(tmp_path, "c", tmp_path / "c", name="slim")  # the folder's model.npz
    check_c(tmp_path / "c", "slim", source, observations(obs_space, Policy.load(source)), "slim model.npz",
            flag_sets=[["-O2"]])
