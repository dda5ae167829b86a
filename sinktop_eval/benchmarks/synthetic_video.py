"""Synthetic videos: coloured shapes moving over a textured background with a constant bright "sink" patch.

The sink patch is what SToP is about: a background position that looks the same in every frame and
draws attention everywhere. Videos are H.264 mp4 (PyAV), readable by decord, deterministic from the spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 190),
    "orange": (240, 140, 30),
}
SHAPES = ("square", "circle")


@dataclass(frozen=True)
class ShapeTrack:
    """One shape moving linearly, visible on frames [first, last] (inclusive; None = to the end)."""

    colour: str
    kind: str  # "square" | "circle"
    x: float  # centre at its first visible frame, in pixels
    y: float
    vx: float = 0.0  # pixels per frame
    vy: float = 0.0
    size: int = 12  # half side / radius in pixels
    first: int = 0
    last: int | None = None

    def visible(self, frame: int) -> bool:
        return frame >= self.first and (self.last is None or frame <= self.last)


@dataclass(frozen=True)
class Scene:
    """A whole clip: size, length, fps, background seed, sink patch and shape tracks."""

    num_frames: int = 48
    height: int = 112
    width: int = 112
    fps: float = 8.0
    seed: int = 0
    sink_box: tuple[int, int, int, int] = (0, 0, 24, 24)  # (top, left, height, width), constant every frame
    shapes: tuple[ShapeTrack, ...] = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def render(scene: Scene) -> np.ndarray:
    """(F, H, W, 3) uint8 frames of the scene."""
    rng = np.random.default_rng(scene.seed)
    background = (rng.integers(60, 110, size=(scene.height // 8 + 1, scene.width // 8 + 1, 3))
                  .repeat(8, axis=0).repeat(8, axis=1)[: scene.height, : scene.width].astype(np.uint8))
    top, left, h, w = scene.sink_box
    background[top:top + h, left:left + w] = 250
    yy, xx = np.mgrid[0:scene.height, 0:scene.width]
    frames = np.repeat(background[None], scene.num_frames, axis=0)
    for track in scene.shapes:
        colour = np.array(COLOURS[track.colour], dtype=np.uint8)
        for f in range(scene.num_frames):
            if not track.visible(f):
                continue
            cx = track.x + track.vx * (f - track.first)
            cy = track.y + track.vy * (f - track.first)
            if track.kind == "circle":
                mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= track.size**2
            else:
                mask = (np.abs(xx - cx) <= track.size) & (np.abs(yy - cy) <= track.size)
            frames[f][mask] = colour
    return frames


def write_mp4(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write (F, H, W, 3) uint8 frames as H.264 yuv420p mp4 (H and W must be even)."""
    import av  # PyAV; imported here so pure users of `render` do not need it

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = frames.shape
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_scene(path: str | Path, scene: Scene) -> Path:
    return write_mp4(path, render(scene), scene.fps)
