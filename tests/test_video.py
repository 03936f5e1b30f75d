"""``npppo eval --render`` without a display or pygame, and ``npppo eval --video`` (issue 14, point 8)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from configs_for_tests import SMALL

from npppo import presets
from npppo.cli import main
from npppo.video import write_video

TINY = {**SMALL, "actor_epochs": 1, "critic_epochs": 1}
EPISODE = 20  # steps per recorded episode: frames = episodes * (EPISODE + 1), one after each reset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    config = folder / "tiny.json"
    config.write_text(presets.get("pendulum").replace(**TINY).to_json())
    assert main(["train", "--env", "Pendulum-v1", "--config", str(config), "--out", str(folder / "run"),
                 "--steps", "40", "--max-episode-steps", str(EPISODE), "--workers", "1"]) == 0
    return folder / "run"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("npppo: error: ")
    return err


def test_render_without_a_display_is_a_one_line_error(run, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["eval", str(run), "--render", "--episodes", "1"]) == 1
    assert "no display" in one_error_line(capsys)


def test_render_without_pygame_is_a_one_line_error_naming_the_extra(run, capsys, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame now raises ImportError
    assert main(["eval", str(run), "--render", "--episodes", "1"]) == 1
    assert "pip install 'npppo[render]'" in one_error_line(capsys)


def test_video_without_pygame_names_the_render_extra(run, tmp_path, capsys, monkeypatch):
    pytest.importorskip("PIL")
    monkeypatch.setitem(sys.modules, "pygame", None)
    assert main(["eval", str(run), "--video", str(tmp_path / "clip.gif"), "--episodes", "1"]) == 1
    assert "pip install 'npppo[render]'" in one_error_line(capsys)
    assert not (tmp_path / "clip.gif").exists()


def test_video_of_another_format_is_refused_before_any_episode(run, tmp_path, capsys):
    assert main(["eval", str(run), "--video", str(tmp_path / "clip.avi")]) == 1
    assert ".mp4 or .gif" in one_error_line(capsys)


def test_eval_records_a_gif_of_pendulum(run, tmp_path, capsys):
    image = pytest.importorskip("PIL.Image")
    pytest.importorskip("pygame")
    out = tmp_path / "clip.gif"
    assert main(["eval", str(run), "--video", str(out), "--episodes", "2", "--fps", "20"]) == 0
    assert f"wrote {out} ({2 * (EPISODE + 1)} frames at 20 frames/s)" in capsys.readouterr().out
    with image.open(out) as gif:
        assert gif.size == (500, 500)  # Pendulum's rgb_array frames
        durations = []
        for k in range(gif.n_frames):  # Pillow merges identical neighbours into one longer frame
            gif.seek(k)
            durations.append(gif.info["duration"])
            assert np.asarray(gif.convert("RGB")).std() > 0  # a drawing, not a blank frame
    assert gif.n_frames > EPISODE and sum(durations) == 2 * (EPISODE + 1) * 50  # 42 frames of 50 ms


def test_eval_records_an_mp4_of_pendulum(run, tmp_path, capsys):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    pytest.importorskip("pygame")
    out = tmp_path / "clip.mp4"
    assert main(["eval", str(run), "--video", str(out), "--episodes", "1"]) == 0
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == EPISODE + 1 and seconds == pytest.approx((EPISODE + 1) / 30, abs=0.05)
    reader = imageio_ffmpeg.read_frames(str(out))
    assert next(reader)["size"] == (500, 500)
    reader.close()


def test_odd_sized_frames_are_cropped_to_even_sides_for_mp4(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    frames = [np.full((31, 45, 3), 10 * k, np.uint8) for k in range(5)]
    out = write_video(tmp_path / "odd.mp4", frames, fps=10)
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 5
    reader = imageio_ffmpeg.read_frames(str(out))
    assert next(reader)["size"] == (44, 30)
    reader.close()
