"""docs/config.md is generated from PPOConfig (issue 14, point 14) and cannot drift from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from npppo.config import PPOConfig, allowed_values, field_comments, reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_committed_reference_equals_the_generated_text():
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == reference_markdown(), (
        "docs/config.md is out of date: regenerate it with `python -m npppo.config --markdown > docs/config.md`")


def test_every_field_has_a_meaning_a_default_and_an_allowed_range_in_the_reference():
    text = reference_markdown()
    comments, allowed = field_comments(), allowed_values()
    for field in dataclasses.fields(PPOConfig):
        assert comments[field.name][1], f"PPOConfig.{field.name} has no comment to document it"
        row = next(line for line in text.splitlines() if line.startswith(f"| `{field.name}` |"))
        assert allowed[field.name] in row
    assert "| `clip_eps` | `0.2` | a number in (0.0, 1.0) | clip_range |" in text
    assert "| `num_envs` | `8` | an integer >= 1 | n_envs |" in text


def test_target_kl_and_value_clip_are_described_as_they_work():
    """target_kl follows SB3's rule (1.5 x, before each minibatch's step); value_clip is the max form of
    CleanRL / OpenAI baselines, which SB3's clip_range_vf is not."""
    rows = {line.split(" | ")[0]: line for line in reference_markdown().splitlines() if line.startswith("| `")}
    assert "1.5 × target_kl" in rows["| `target_kl`"] and "before each minibatch's step" in rows["| `target_kl`"]
    value_clip = rows["| `value_clip`"]
    assert "| a number in (0.0, inf) or null |  |" in value_clip  # no SB3 equivalent in the SB3 column
    assert "max((V − G)², (V_clip − G)²)" in value_clip and "clip_vloss" in value_clip


def test_the_reference_states_the_ranges_that_validation_enforces():
    assert allowed_values()["gamma"] == "a number in (0.0, 1.0]"
    assert allowed_values()["optimizer"] == 'one of "adam", "sgd"'


def test_the_module_prints_the_reference():
    done = subprocess.run([sys.executable, "-m", "npppo.config", "--markdown"], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout == reference_markdown()
