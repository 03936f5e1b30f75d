"""PPOConfig validation and conversion, config files, and the presets as data."""

import dataclasses
import json
from pathlib import Path

import pytest

from npppo import ConfigError, PPOConfig, presets
from npppo.config import PRESET_KEYS, read_config_file


def test_defaults_are_the_stable_baselines3_settings():
    cfg = PPOConfig()
    assert (cfg.optimizer, cfg.mu_lr, cfg.sigma_lr, cfg.critic_lr) == ("adam", 3e-4, 3e-4, 3e-4)
    assert (cfg.trunk_sizes, cfg.head_sizes, cfg.critic_sizes) == ([64, 64], [], [64, 64])
    assert (cfg.actor_activation, cfg.mu_activation, cfg.sigma_mode, cfg.critic_activation) == (
        "tanh", "identity", "state_independent", "tanh")
    assert (cfg.advantage, cfg.gae_lambda, cfg.gamma) == ("gae", 0.95, 0.99)
    assert (cfg.actor_epochs, cfg.critic_epochs, cfg.batch_size) == (10, 10, 64)
    assert (cfg.steps_per_batch, cfg.episodes_per_batch, cfg.num_envs) == (2048, None, 8)


def test_seed_preset_holds_every_value_of_the_seed_table():
    cfg = presets.get("seed")
    assert (cfg.optimizer, cfg.mu_lr, cfg.sigma_lr, cfg.critic_lr, cfg.momentum) == ("sgd", 1e-4, 1e-4, 1e-4, 0.9)
    assert cfg.gamma == 0.99
    assert (cfg.ent_coef_start, cfg.ent_coef_end) == (1.0, 0.005)
    assert cfg.max_grad_norm == 1.0
    assert cfg.clip_eps == 0.2
    assert (cfg.advantage, cfg.n_step) == ("n_step", 20)
    assert (cfg.episodes_per_batch, cfg.steps_per_batch) == (40, None)
    assert (cfg.actor_epochs, cfg.critic_epochs, cfg.batch_size) == (10, 5, None)
    assert (cfg.trunk_sizes, cfg.head_sizes, cfg.critic_sizes) == ([100, 80, 70], [60, 50], [100, 100, 100, 80, 40])
    assert (cfg.actor_activation, cfg.mu_activation, cfg.sigma_mode, cfg.critic_activation) == (
        "elu", "relu", "relu", "relu")
    assert (cfg.sigma_min, cfg.init, cfg.normalize_advantages) == (1e-3, "glorot_normal", True)
    assert (cfg.num_envs, cfg.mu_output_gain, cfg.normalize_obs, cfg.dtype) == (40, 1.0, False, "float32")


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_file_spells_out_every_field(name):
    path = Path(presets.__file__).parent / f"{name}.json"
    values = json.loads(path.read_text())
    assert tuple(values) == PRESET_KEYS
    assert sorted(values["config"]) == sorted(f.name for f in dataclasses.fields(PPOConfig))
    cfg, facts = presets.load(name)
    assert cfg.to_dict() == values["config"]
    assert facts == {key: values[key] for key in PRESET_KEYS if key != "config"}
    assert presets.default_env(name) == values["env"]


def test_json_round_trip(tmp_path):
    cfg = presets.get("pendulum")
    path = tmp_path / "cfg.json"
    cfg.to_json(path)
    assert PPOConfig.from_json(path) == cfg
    assert PPOConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mu_lr", -1e-3, "'mu_lr' = -0.001"),
        ("clip_eps", 1.5, "'clip_eps' = 1.5"),
        ("clip_eps", 0.0, "(0.0, 1.0)"),
        ("gamma", 0.0, "'gamma'"),
        ("gamma", 1.01, "'gamma'"),
        ("actor_epochs", 0, "'actor_epochs' = 0"),
        ("trunk_sizes", [], "'trunk_sizes'"),
        ("critic_sizes", [64, -3], "'critic_sizes'"),
        ("actor_activation", "swish", "'actor_activation' = 'swish'"),
        ("optimizer", "rmsprop", "'optimizer'"),
        ("dtype", "float16", "'dtype'"),
        ("gamma", "0.9", "'gamma' = '0.9'"),
        ("batch_size", 0, "'batch_size'"),
        ("init", "lecun", "'init' = 'lecun'"),
        ("sigma_mode", "exp", "'sigma_mode' = 'exp'"),
    ],
)
def test_out_of_range_values_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        PPOConfig(**{field: value})


def test_exactly_one_batch_kind():
    with pytest.raises(ConfigError, match=r"exactly one"):
        PPOConfig(episodes_per_batch=None, steps_per_batch=None)
    with pytest.raises(ConfigError, match=r"exactly one"):
        PPOConfig(episodes_per_batch=4, steps_per_batch=100)


def test_a_state_dependent_sigma_needs_a_positive_floor():
    PPOConfig(sigma_mode="state_independent", sigma_min=0.0)
    with pytest.raises(ConfigError, match=r"'sigma_min' = 0\.0 .*needs a floor"):
        PPOConfig(sigma_mode="relu", sigma_min=0.0)


def test_unknown_field_is_refused_with_the_closest_name(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"trunk_size": [8]}))
    with pytest.raises(ConfigError, match=r"unknown config field 'trunk_size': did you mean 'trunk_sizes'"):
        PPOConfig.from_json(path)


def test_config_file_holds_fields_or_a_preset_style_object(tmp_path):
    cfg = presets.get("seed").replace(num_envs=3)
    fields, preset_style = tmp_path / "fields.json", tmp_path / "preset.json"
    cfg.to_json(fields)
    preset_style.write_text(json.dumps({"env": "Pendulum-v1", "steps": 1000, "config": cfg.to_dict()}))
    assert read_config_file(fields) == (cfg, {})
    assert read_config_file(preset_style) == (cfg, {"env": "Pendulum-v1", "steps": 1000})


def test_unknown_preset_style_key_is_refused_with_the_closest_name(tmp_path):
    path = tmp_path / "preset.json"
    path.write_text(json.dumps({"env": "Pendulum-v1", "step": 1000, "config": {}}))
    with pytest.raises(ConfigError, match=r"'step': did you mean 'steps'"):
        read_config_file(path)


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        PPOConfig.from_json(path)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*seed"):
        presets.get("nope")
