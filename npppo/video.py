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


class VideoWriter:
    """Frames in, a video file out: ``append(frame)`` per RGB frame ((height, width, 3) uint8, all one
    size), then ``close()`` (or ``abort()``: no file). ``.mp4`` frames stream to ffmpeg as they come;
    ``.gif`` frames are kept as 256-colour images (a byte per pixel) until ``close()`` writes them."""

    def __init__(self, path: str | Path, fps: int = 30) -> None:
        self.path, self.fps = Path(path), fps
        check_writer(self.path)
        self.mp4 = self.path.suffix.lower() == ".mp4"
        self.count, self.shape = 0, None
        self._ffmpeg = None
        self._images: list = []

    def append(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if self.shape is None:
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise NpppoError(f"frames must be RGB arrays (height, width, 3), got shape {frame.shape}: make the "
                                 "environment with render_mode='rgb_array'")
            self.shape = frame.shape
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif frame.shape != self.shape:
            raise NpppoError(f"frame {self.count} has shape {frame.shape}, the first had {self.shape}")
        height, width = self.shape[0] - self.shape[0] % 2, self.shape[1] - self.shape[1] % 2
        if self.mp4:
            if self._ffmpeg is None:
                import imageio_ffmpeg

                # H.264 in yuv420p needs even sides: odd ones lose their last row or column
                self._ffmpeg = imageio_ffmpeg.write_frames(str(self.path), (width, height), fps=self.fps,
                                                           macro_block_size=1)
                self._ffmpeg.send(None)  # start ffmpeg
            self._ffmpeg.send(np.ascontiguousarray(frame[:height, :width], dtype=np.uint8))
        else:
            from PIL import Image

            # fast octree: several times faster than Pillow's default median cut, which took most of a
            # GIF's time, and closer colours (docs/performance.md has the figures)
            image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
            self._images.append(image.quantize(256, method=Image.Quantize.FASTOCTREE))
        self.count += 1

    def close(self) -> Path:
        if self.count == 0:
            raise NpppoError("no frames to write: the environment rendered nothing")
        if self._ffmpeg is not None:
            self._ffmpeg.close()
        elif self._images:
            first, *rest = self._images
            first.save(self.path, save_all=True, append_images=rest, duration=round(1000 / self.fps), loop=0)
            self._images = []
        return self.path

    def abort(self) -> None:
        """Stop without a file (after a failure part-way)."""
        if self._ffmpeg is not None:
            try:
                self._ffmpeg.close()
            except Exception:  # ffmpeg's own complaint does not matter: the file goes
                pass
        self._images = []
        self.path.unlink(missing_ok=True)


def write_video(path: str | Path, frames, fps: int = 30) -> Path:
    """Write RGB frames (each (height, width, 3) uint8, all one size) to ``path`` (.mp4 or .gif)."""
    writer = VideoWriter(path, fps)
    try:
        for frame in frames:
            writer.append(frame)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
