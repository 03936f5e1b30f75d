"""Learning curves (npppo/plotting.py, ``npppo plot``): run folders found, PNGs drawn, and the
errors without matplotlib or progress.csv."""

from __future__ import annotations

import sys

import numpy as np

from npppo.cli import main
from npppo.plotting import expand_runs


def fake_run(folder, seed: int):
    folder.mkdir()
    steps = np.arange(1, 21) * 200 + seed * 10  # runs end their batches at slightly different steps
    returns = -1500 + 60 * np.arange(20) + 30 * np.random.default_rng(seed).standard_normal(20)
    rows = [f"{i + 1},{s},{r}" for i, (s, r) in enumerate(zip(steps, returns, strict=True))]
    lines = ["iteration,steps,return_mean", *rows]
    (folder / "progress.csv").write_text("\n".join(lines) + "\n")
    return str(folder)


def test_plot_draws_one_or_several_runs_to_a_png(tmp_path, capsys):
    runs = [fake_run(tmp_path / f"run{seed}", seed) for seed in range(3)]
    assert main(["plot", runs[0]]) == 0
    assert (tmp_path / "run0" / "returns.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", *runs, "--out", str(tmp_path / "all.png")]) == 0
    assert (tmp_path / "all.png").read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {tmp_path / 'all.png'}" in capsys.readouterr().out


def test_plot_without_matplotlib_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert main(["plot", fake_run(tmp_path / "run", 0)]) == 1
    assert "pip install 'npppo[plot]'" in capsys.readouterr().err


def test_plot_of_a_folder_without_progress_is_one_line_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 1
    assert "progress.csv does not exist" in capsys.readouterr().err


def test_expand_runs_keeps_plain_run_folders(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "progress.csv").write_text("steps,return_mean\n")
    (tmp_path / "run" / "seed_0").mkdir()  # a run folder stays itself even if it holds such a folder
    assert expand_runs([tmp_path / "run"]) == [tmp_path / "run"]
