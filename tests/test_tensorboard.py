"""``npppo train --tensorboard DIR``: event files with the scalars of progress.csv (issue 14, point 13)."""

from __future__ import annotations

import struct

import pytest
from configs_for_tests import SMALL

from npppo import presets
from npppo.cli import main
from npppo.errors import NpppoError
from npppo.progress import TensorBoardLog, read_progress

tensorboardX = pytest.importorskip("tensorboardX")

TINY = {**SMALL, "actor_epochs": 2, "critic_epochs": 2}


def read_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from the event files in ``logdir`` (TFRecord framing: length, its CRC,
    the Event proto, its CRC), with tensorboardX's own protobuf classes."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {logdir}"
    for path in files:
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_train_writes_the_progress_scalars_as_tensorboard_events(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(presets.get("pendulum").replace(**TINY).to_json())
    out, board = tmp_path / "run", tmp_path / "tb"
    status = main(["train", "--env", "Pendulum-v1", "--config", str(config), "--out", str(out), "--steps", "500",
                   "--max-episode-steps", "100", "--workers", "1", "--eval-every", "400", "--eval-episodes", "1",
                   "--tensorboard", str(board)])
    assert status == 0, capsys.readouterr().err
    rows, fields = read_progress(out / "progress.csv")
    scalars = read_scalars(board)
    assert {"return_mean", "approx_kl", "explained_variance", "train_s", "eval_mean"} <= set(scalars)
    assert set(scalars) <= set(fields)
    returns = scalars["return_mean"]
    assert [step for step, _ in returns] == [int(row["steps"]) for row in rows]
    assert [value for _, value in returns] == pytest.approx([float(row["return_mean"]) for row in rows], rel=1e-6)
    evals = [(int(row["steps"]), float(row["eval_mean"])) for row in rows if row["eval_mean"] != "nan"]
    assert [step for step, _ in scalars["eval_mean"]] == [step for step, _ in evals]  # only where evaluated
    assert [value for _, value in scalars["eval_mean"]] == pytest.approx([value for _, value in evals], rel=1e-6)


def test_without_tensorboardx_the_error_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(NpppoError, match=r"pip install 'npppo\[tensorboard\]'"):
        TensorBoardLog(tmp_path)
