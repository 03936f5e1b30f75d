"""PPOConfig validation and conversion, and the presets as data."""

import json

import pytest

from npppo import ConfigError, PPOConfig, presets


def test_default_config_is_the_seed():
    assert PPOConfig().to_dict() == presets.get("seed").to_dict()


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


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_is_valid_and_names_its_environment(name):
    cfg = presets.get(name)
    assert isinstance(cfg, PPOConfig)
    assert presets.default_env(name)


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


def test_unknown_field_is_refused(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"learning_rate": 1e-3}))
    with pytest.raises(ConfigError, match=r"unknown config field.*learning_rate"):
        PPOConfig.from_json(path)


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        PPOConfig.from_json(path)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*seed"):
        presets.get("nope")
