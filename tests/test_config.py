"""PPOConfig validation and conversion, config files, and the presets as data."""

import dataclasses
import json
from pathlib import Path

import pytest

from npppo import ConfigError, PPOConfig, presets
from npppo.config import PRESET_KEYS, allowed_values, read_config_file


def test_defaults_are_the_stable_baselines3_settings():
    cfg = PPOConfig()
    assert (cfg.optimizer, cfg.mu_lr, cfg.sigma_lr, cfg.critic_lr) == ("adam", 3e-4, 3e-4, 3e-4)
    assert (cfg.trunk_sizes, cfg.head_sizes, cfg.critic_sizes) == ([64, 64], [], [64, 64])
    assert (cfg.actor_activation, cfg.mu_activation, cfg.sigma_mode, cfg.critic_activation) == (
        "tanh", "identity", "state_independent", "tanh")
    assert (cfg.advantage, cfg.gae_lambda, cfg.gamma) == ("gae", 0.95, 0.99)
    assert (cfg.actor_epochs, cfg.critic_epochs, cfg.batch_size) == (10, 10, 64)
    assert (cfg.steps_per_batch, cfg.episodes_per_batch, cfg.num_envs) == (2048, None, 8)
    assert (cfg.elu_alpha, cfg.init, cfg.mu_output_gain) == (1.0, "orthogonal", 0.01)  # ELU's usual alpha


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
    assert presets.load(name)[1]["env"] == values["env"]


def test_json_round_trip(tmp_path):
    cfg = presets.get("pendulum")
    path = tmp_path / "cfg.json"
    cfg.to_json(path)
    assert PPOConfig.from_json(path) == cfg
    assert PPOConfig.from_json(cfg.to_json()) == cfg


def test_exactly_one_batch_kind():
    with pytest.raises(ConfigError, match=r"exactly one"):
        PPOConfig(episodes_per_batch=None, steps_per_batch=None)
    with pytest.raises(ConfigError, match=r"exactly one"):
        PPOConfig(episodes_per_batch=4, steps_per_batch=100)


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


# every range check of PPOConfig.validate: values just outside (refused) and at or just inside each
# bound (allowed); field -> (refused, allowed)
RANGES = {
    "num_envs": ([0, -1, 2.0, True], [1]),
    "episodes_per_batch": ([0, 1.5], [1]),
    "n_step": ([0, -3], [1]),
    "actor_epochs": ([0], [1]),
    "critic_epochs": ([0, False], [1]),
    "batch_size": ([0, -1], [1, None]),
    "gamma": ([0.0, -0.1, 1.0 + 1e-9, float("nan"), "0.9"], [1e-9, 1.0]),
    "gae_lambda": ([-1e-9, 1.0 + 1e-9, None], [0.0, 1.0]),
    "clip_eps": ([0.0, 1.0, -0.2], [1e-9, 1.0 - 1e-9]),
    "ent_coef_start": ([-1e-9, float("inf")], [0.0, 1e6]),
    "ent_coef_end": ([-1e-9], [0.0]),
    "target_kl": ([0.0, -0.01], [1e-9, None]),
    "value_clip": ([0.0, -1.0], [1e-9, None]),
    "fused_update": (["on", None, True], ["auto", "off"]),
    "log_std_init": ([-20.0 - 1e-9, 5.0 + 1e-9], [-20.0, 5.0]),
    "elu_alpha": ([0.0, -1.0], [1e-9]),
    "mu_output_gain": ([0.0], [1e-9]),
    "mu_lr": ([-1e-9], [0.0]),
    "sigma_lr": ([-1e-9, None], [0.0]),
    "critic_lr": ([-1e-9, "1e-3"], [0.0]),
    "momentum": ([-1e-9, 1.0], [0.0, 1.0 - 1e-9]),
    "adam_betas": ([[0.9], [0.9, 1.0], [-0.1, 0.9], [0.9, 0.999, 0.5], 0.9], [[0.0, 0.0], [0.0, 1.0 - 1e-9]]),
    "adam_eps": ([0.0, -1e-8], [1e-300]),
    "max_grad_norm": ([0.0, -1.0], [1e-9, None]),
    "obs_clip": ([0.0, -1.0], [1e-9]),
    "reward_scale": ([0.0, -1.0], [1e-9]),
    "reward_clip": ([0.0, -1.0, float("inf")], [1e-9]),
    "normalize_rewards": ([1, None], [True, False]),
    "action_squash": (["sigmoid", None], ["clip", "tanh"]),
    "sigma_min": ([-1e-9], [1e-12]),
    "normalize_obs": ([1, "yes"], [True, False]),
    "normalize_advantages": ([0, None], [True, False]),
    "recompute_advantages": ([0, "no"], [True, False]),
    "head_sizes": ([[0], [4, 2.0], None], [[], [3]]),
    "trunk_sizes": ([[], [True]], [[1]]),
    "advantage": (["td"], ["gae", "n_step"]),
    "sigma_mode": (["exp"], ["softplus", "state_independent"]),
    "mu_activation": (["sigmoid"], ["identity", "tanh"]),
    "critic_activation": (["gelu"], ["elu"]),
    "init": (["zeros", "lecun"], ["orthogonal", "he_normal", "glorot_uniform"]),
    "lr_schedule": (["cosine"], ["linear"]),
    "critic_sizes": ([[], [64, -3]], [[1]]),
    "actor_activation": (["swish"], ["relu"]),
    "optimizer": (["rmsprop"], ["adam"]),
    "dtype": (["float16"], ["float64"]),
}


def config_with(field, value) -> PPOConfig:
    """PPOConfig() with one field changed (whole-episode batches for ``episodes_per_batch``)."""
    if field == "episodes_per_batch":
        return PPOConfig(episodes_per_batch=value, steps_per_batch=None)
    return PPOConfig(**{field: value})


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, (refused, _) in RANGES.items() for v in refused])
def test_each_range_check_refuses_a_value_outside_it(field, value):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        config_with(field, value)


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, (_, allowed) in RANGES.items() for v in allowed])
def test_each_range_check_allows_its_boundary(field, value):
    assert getattr(config_with(field, value), field) == value


def test_every_validated_field_has_a_range_case():
    import dataclasses

    # steps_per_batch is the other batch kind: its own test below
    assert {f.name for f in dataclasses.fields(PPOConfig)} == set(RANGES) | {"steps_per_batch"}


def test_every_fields_allowed_values_are_recorded_in_words():
    allowed = allowed_values()
    assert set(allowed) == {f.name for f in dataclasses.fields(PPOConfig)}
    assert allowed["target_kl"] == "a number in (0.0, inf) or null"  # recorded although the default is None
    assert allowed["sigma_min"].startswith("a number in [0.0, inf); > 0 unless sigma_mode")
    assert allowed["reward_clip"] == "a number in (0.0, inf]"


def test_a_field_without_a_rule_is_caught_when_the_rules_are_recorded():
    @dataclasses.dataclass
    class Extended(PPOConfig):
        extra: int = 0

    assert Extended().extra == 0  # validation itself does not look for fields without rules
    with pytest.raises(AssertionError, match=r"has no rule for \['extra'\]"):
        Extended()._check({})


def test_a_sigma_floor_of_zero_is_allowed_only_for_a_state_independent_sigma():
    assert PPOConfig(sigma_mode="state_independent", sigma_min=0.0).sigma_min == 0.0
    for mode in ("relu", "softplus"):
        with pytest.raises(ConfigError, match=r"'sigma_min' = 0\.0 is invalid: .*needs a floor"):
            PPOConfig(sigma_mode=mode, sigma_min=0.0)


def test_steps_per_batch_must_be_a_positive_integer():
    assert PPOConfig(steps_per_batch=1).steps_per_batch == 1
    for value in (0, -64, 2048.0):
        with pytest.raises(ConfigError, match="'steps_per_batch'"):
            PPOConfig(steps_per_batch=value)


def test_replace_validates_and_leaves_the_original_alone():
    cfg = PPOConfig()
    changed = cfg.replace(gamma=0.5)
    assert (cfg.gamma, changed.gamma) == (0.99, 0.5)
    with pytest.raises(ConfigError, match="'gamma'"):
        cfg.replace(gamma=2.0)


def test_the_error_message_names_value_and_interval():
    with pytest.raises(ConfigError, match=r"'gae_lambda' = 1\.5 is invalid: it must be a number in \[0\.0, 1\.0\]"):
        PPOConfig(gae_lambda=1.5)
    with pytest.raises(ConfigError, match=r"'clip_eps' = 1\.0 is invalid: it must be a number in \(0\.0, 1\.0\)"):
        PPOConfig(clip_eps=1.0)
    with pytest.raises(ConfigError, match=r"'mu_lr' = -0\.001"):
        PPOConfig(mu_lr=-1e-3)
    with pytest.raises(ConfigError, match=r"'gamma' = '0\.9'"):  # a string is shown as one
        PPOConfig(gamma="0.9")
    with pytest.raises(ConfigError, match=r"'actor_epochs' = 0"):
        PPOConfig(actor_epochs=0)
    for field, value in (("actor_activation", "swish"), ("init", "lecun"), ("sigma_mode", "exp")):
        with pytest.raises(ConfigError, match=f"'{field}' = '{value}'"):
            PPOConfig(**{field: value})


def test_a_missing_config_file_or_a_non_object_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read config file .*nothing\.json"):
        PPOConfig.from_json(tmp_path / "nothing.json")
    with pytest.raises(ConfigError, match=r"must be a JSON object of field: value, got list"):
        PPOConfig.from_dict([1, 2])
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="got list"):
        PPOConfig.from_json(tmp_path / "list.json")


def test_to_json_writes_the_file_and_returns_its_text(tmp_path):
    cfg = PPOConfig(gamma=0.5, trunk_sizes=[3])
    text = cfg.to_json(tmp_path / "c.json")
    assert json.loads(text) == cfg.to_dict() == json.loads((tmp_path / "c.json").read_text())
    assert (tmp_path / "c.json").read_text() == text + "\n"
    assert PPOConfig.from_json("  " + text) == cfg  # text that starts with "{" after blanks is JSON, not a path
