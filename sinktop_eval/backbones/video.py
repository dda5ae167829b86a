"""Video decoding: T uniformly spaced frames (decord), optionally inside a [start, end] window in seconds.

The frames' real timing travels with them (``processor_metadata``), because Qwen2.5-VL turns it into
temporal position ids: without it transformers assumes 24 fps and the time axis collapses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import first_line
from .errors import VideoDecodeError, VideoNotFoundError

_EPS = 1e-6  # seconds; keeps a frame whose timestamp equals a window edge inside the window


@dataclass(frozen=True)
class DecodedVideo:
    """Sampled frames of one clip plus where they came from."""

    path: str
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    indices: tuple[int, ...]  # (T,) absolute frame indices in the file
    fps: float  # the file's native frame rate
    total_frames: int  # frames in the whole file
    window: tuple[int, int]  # (first, last) frame index of the [start, end] window, inclusive

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def window_frames(self) -> int:
        return self.window[1] - self.window[0] + 1

    @property
    def sampled_fps(self) -> float:
        """Frames per second of the sampled sequence (T over the window's length)."""
        return self.num_frames / self.window_frames * self.fps

    def processor_metadata(self) -> dict:
        """``video_metadata`` for a transformers processor, relative to the window start.

        transformers derives the sampled fps as len(frames_indices) / total_num_frames * fps, so the
        window (not the whole file) is the "video" here.
        """
        first = self.window[0]
        return {
            "total_num_frames": self.window_frames,
            "fps": self.fps,
            "duration": self.window_frames / self.fps,
            "frames_indices": [i - first for i in self.indices],
            "height": int(self.frames.shape[1]),
            "width": int(self.frames.shape[2]),
            "video_backend": "decord",
        }


def sample_indices(first: int, last: int, frames: int) -> list[int]:
    """``frames`` frame indices spread evenly over [first, last], both ends included.

    A window with fewer frames than asked for yields each of its frames once (no duplicates, which
    would fake a higher frame rate).
    """
    available = last - first + 1
    if frames >= available:
        return list(range(first, last + 1))
    return [round(float(x)) for x in np.linspace(first, last, frames)]


def decode_video(path: str | Path, frames: int, start: float | None = None, end: float | None = None) -> DecodedVideo:
    """Decode ``frames`` uniformly spaced RGB frames of ``path`` within [start, end] seconds."""
    path = Path(path)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames={frames!r} is invalid; allowed: an integer >= 1 (e.g. 32)")
    if not path.is_file():
        raise VideoNotFoundError(f"video not found: {path} (no such file); check the path or the task's data root")
    try:
        import decord

        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        total = len(reader)
        fps = float(reader.get_avg_fps())
    except Exception as err:  # noqa: BLE001 - decord raises its own DECORDError / RuntimeError types
        raise VideoDecodeError(f"cannot decode video {path}: {first_line(err)}; re-encode it (e.g. ffmpeg -i in.mp4 "
                               "-c:v libx264 out.mp4) or remove it from the task") from None
    if total < 1 or not math.isfinite(fps) or fps <= 0:
        raise VideoDecodeError(f"cannot decode video {path}: it has {total} frames at {fps} fps; re-encode it or "
                               "remove it from the task")
    first, last = _window(path, total, fps, start, end)
    indices = sample_indices(first, last, frames)
    try:
        batch = reader.get_batch(indices).asnumpy()  # (T, H, W, 3) uint8
    except Exception as err:  # noqa: BLE001 - see above
        raise VideoDecodeError(f"cannot decode video {path}: reading frames {indices[0]}..{indices[-1]} failed "
                               f"({first_line(err)}); re-encode it or remove it from the task") from None
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.shape[0] != len(indices):
        raise VideoDecodeError(f"cannot decode video {path}: got frames of shape {tuple(batch.shape)}, expected "
                               f"({len(indices)}, H, W, 3)")
    return DecodedVideo(str(path), np.ascontiguousarray(batch), tuple(indices), fps, total, (first, last))


def _window(path: Path, total: int, fps: float, start: float | None, end: float | None) -> tuple[int, int]:
    """(first, last) frame indices whose timestamps i / fps lie in [start, end]."""
    duration = total / fps
    lo = 0.0 if start is None else float(start)
    hi = duration if end is None else float(end)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi < lo:
        raise VideoDecodeError(f"bad time window for video {path}: start={start}, end={end}; allowed: "
                               f"0 <= start <= end (seconds; the clip lasts {duration:.2f} s)")
    first = max(0, math.ceil(lo * fps - _EPS))
    last = min(total - 1, math.floor(hi * fps + _EPS))
    if first > last:
        raise VideoDecodeError(f"time window [{lo}, {hi}] s of video {path} contains no frame (the clip lasts "
                               f"{duration:.2f} s at {fps:.2f} fps); pass a window inside the clip")
    return first, last
