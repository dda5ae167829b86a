"""Shared fixtures for the backbone tests: synthetic videos and the tiny twins (loaded once).

The twins are built into a session-private cache (``SINKTOP_CACHE``), so the build path runs in every
test session and nothing leaks into the user's cache.
"""
from __future__ import annotations

import os

import pytest

from sinktop_eval.benchmarks.synthetic_video import Scene, ShapeTrack, write_scene

TWINS = ("tiny_qwen25vl", "tiny_llava_ov", "tiny_llava_video")
FRAMES = 16  # sampled frames per generation (8 temporal slices for Qwen)


@pytest.fixture(scope="session", autouse=True)
def tiny_cache(tmp_path_factory):
    """Point SINKTOP_CACHE at a session directory for the whole backbone test run.

    The real-shape twins (GBs, ~25 s to build) stay in the user's cache across sessions: their directory
    is keyed by builder version, depth and seed, so a reused one is always the one the code would build.
    """
    previous = os.environ.get("SINKTOP_CACHE")
    previous_real = os.environ.get("SINKTOP_REAL_SHAPE_CACHE")
    if previous_real is None:
        base = previous or os.path.join(os.path.expanduser("~"), ".cache", "sinktop_eval")
        os.environ["SINKTOP_REAL_SHAPE_CACHE"] = os.path.join(base, "real_shape")
    root = tmp_path_factory.mktemp("sinktop_cache")
    os.environ["SINKTOP_CACHE"] = str(root)
    yield root
    for key, value in (("SINKTOP_CACHE", previous), ("SINKTOP_REAL_SHAPE_CACHE", previous_real)):
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def clip(video_dir):
    """A 4 s, 8 fps, 112x112 clip: textured background, a constant bright sink patch, two moving shapes."""
    scene = Scene(num_frames=32, height=112, width=112, fps=8.0, seed=3, shapes=(
        ShapeTrack("red", "square", x=30, y=70, vx=1.5, size=10),
        ShapeTrack("blue", "circle", x=80, y=30, vy=1.0, size=9, first=8, last=24),
    ))
    return write_scene(video_dir / "clip.mp4", scene)


@pytest.fixture(scope="session")
def wide_clip(video_dir):
    """112x160: Qwen's twin resizes it to 196x280, a 7x10 token grid whose 2x2 windows need padding."""
    scene = Scene(num_frames=16, height=112, width=160, fps=8.0, seed=5,
                  shapes=(ShapeTrack("green", "circle", x=40, y=50, vx=3.0, size=12),))
    return write_scene(video_dir / "wide.mp4", scene)


@pytest.fixture(scope="session")
def long_clip(video_dir):
    """16 s at 2 fps: 16 sampled frames are 1 s apart, so Qwen's temporal ids step by 4 per slice and reach
    well past the spatial extent (released rule: text starts at 29 after the video start, transformers
    5.23: at 8)."""
    scene = Scene(num_frames=32, height=112, width=112, fps=2.0, seed=7, shapes=(
        ShapeTrack("yellow", "square", x=20, y=40, vx=2.0, size=10),
    ))
    return write_scene(video_dir / "long.mp4", scene)


@pytest.fixture(scope="session")
def real_clip(video_dir):
    """448x448 (Qwen keeps it: a 32x32 patch grid; LLaVA resizes to 384), 2 s at 8 fps, a sink corner."""
    scene = Scene(num_frames=16, height=448, width=448, fps=8.0, seed=11, sink_box=(0, 0, 96, 96), shapes=(
        ShapeTrack("red", "square", x=120, y=300, vx=6.0, size=40),
        ShapeTrack("blue", "circle", x=320, y=120, vy=5.0, size=36),
    ))
    return write_scene(video_dir / "real.mp4", scene)


@pytest.fixture(scope="session")
def minute_clip(video_dir):
    """448x448, 60 s at 1 fps: 32 frames sampled from it are 1.875 s apart (3.75 s per Qwen temporal slice)."""
    scene = Scene(num_frames=60, height=448, width=448, fps=1.0, seed=13, sink_box=(0, 0, 96, 96),
                  shapes=(ShapeTrack("green", "circle", x=100, y=200, vx=5.0, size=30),))
    return write_scene(video_dir / "minute.mp4", scene)


@pytest.fixture(scope="session")
def corrupt_video(video_dir):
    path = video_dir / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # an mp4 header, then garbage
    return path


@pytest.fixture(scope="session")
def twins(tiny_cache):
    """name -> loaded tiny backbone (float32, cpu, sdpa), loaded once per session."""
    from sinktop_eval.backbones import load_backbone

    return {name: load_backbone(name, device="cpu") for name in TWINS}


@pytest.fixture(scope="session")
def encoded(twins, clip):
    """name -> (Prepared, VisionTokens) of the test clip, computed once per session."""
    out = {}
    for name, backbone in twins.items():
        prepared = backbone.prepare(clip, "Is there a red square?", frames=FRAMES)
        out[name] = (prepared, backbone.encode(prepared))
    return out
