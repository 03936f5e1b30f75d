"""Recording episodes to a video file: ``npppo eval RUN --video out.mp4`` (or ``out.gif``).

Frames are the environment's ``render()`` in ``render_mode="rgb_array"`` (one after each reset and
after each step). Both writers are an optional extra, ``pip install 'npppo[video]'``:

* ``.mp4``: imageio-ffmpeg, which pipes the frames to the ffmpeg binary that its wheel ships (H.264,
  no system ffmpeg needed), and nothing else (no imageio plugin layer in between);
* ``.gif``: Pillow (already there with matplotlib), which writes animated GIFs itself.

Gymnasium's classic-control environments (Pendulum) draw their frames with pygame: that is the
``render`` extra, ``pip install 'npppo[render]'``; no display is needed for ``rgb_array``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npppo.errors import NpppoError

FORMATS = {".mp4": "imageio-ffmpeg", ".gif": "Pillow"}


def check_writer(path: str | Path) -> None:
    """A one-line error, before any episode runs, when ``path``'s format or its writer is missing."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise NpppoError(f"--video {path}: choose a file ending in .mp4 or .gif")
    try:
        if suffix == ".mp4":
            import imageio_ffmpeg  # noqa: F401
        else:
            import PIL.Image  # noqa: F401
    except ImportError:
        raise NpppoError(f"--video {path} needs {FORMATS[suffix]}, an optional extra: "
                         "pip install 'npppo[video]'") from None


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Write RGB frames (each (height, width, 3) uint8, all one size) to ``path`` (.mp4 or .gif)."""
    path = Path(path)
    check_writer(path)
    if not frames:
        raise NpppoError("no frames to write: the environment rendered nothing")
    shapes = {np.shape(frame) for frame in frames}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[2] != 3:
        raise NpppoError(f"frames must be RGB arrays of one shape (height, width, 3), got shapes {sorted(shapes)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        import imageio_ffmpeg

        height, width = frames[0].shape[:2]
        height, width = height - height % 2, width - width % 2  # H.264 in yuv420p needs even sides
        writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, macro_block_size=1)
        writer.send(None)  # start ffmpeg
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame[:height, :width], dtype=np.uint8))
        finally:
            writer.close()
    else:
        from PIL import Image

        images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path
