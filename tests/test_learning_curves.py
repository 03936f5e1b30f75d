"""scripts/learning_curves.py end to end in its smallest setting (one seed, one iteration)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "learning_curves.py"


@pytest.fixture(scope="module")
def learning_curves():
    spec = importlib.util.spec_from_file_location("learning_curves", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smallest_setting_writes_progress_summary_and_plot(learning_curves, tmp_path):
    pytest.importorskip("matplotlib")
    summary = learning_curves.main(["--preset", "pendulum", "--steps", "2000", "--seeds", "0", "--workers", "1",
                                    "--eval-episodes", "2", "--out", str(tmp_path)])
    assert summary["threshold"] == -200.0
    assert summary["runs"][0]["steps"] >= 2000
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["final_eval"]["n"] == 1
    final = summary["runs"][0]["final_eval_mean"]
    assert written["final_eval_iqm"] == {"iqm": final, "ci95": [final, final], "n": 1, "resamples": 2000}
    rows = list(csv.DictReader(open(tmp_path / "seed_0" / "progress.csv")))
    assert {"steps", "return_mean", "approx_kl", "explained_variance", "train_s", "eval_mean"} <= set(rows[0])
    assert float(rows[-1]["eval_mean"]) == pytest.approx(summary["runs"][0]["final_eval_mean"])
    assert (tmp_path / "seed_0" / "model.npz").is_file()
    assert (tmp_path / "curve.png").stat().st_size > 0
    (tmp_path / "curve.png").unlink()
    learning_curves.main(["--plot-only", "--out", str(tmp_path)])  # redraws without training
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_overrides_parse_json_values_and_plain_strings(learning_curves):
    assert learning_curves.overrides(["gamma=0.9", "trunk_sizes=[32,32]", "optimizer=adam"]) == {
        "gamma": 0.9, "trunk_sizes": [32, 32], "optimizer": "adam"}


def test_unknown_preset_fails_before_training(learning_curves, tmp_path):
    from npppo import ConfigError

    with pytest.raises(ConfigError, match="unknown preset"):
        learning_curves.main(["--preset", "nope", "--steps", "10", "--out", str(tmp_path)])
