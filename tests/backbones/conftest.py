"""Shared fixtures for the backbone tests: synthetic videos and the tiny twins (loaded once).

The twins are built into a session-private cache (``SINKTOP_CACHE``), so the build path runs in every
test session and nothing leaks into the user's cache.
"""
from __future__ import annotations

import os

import pytest

from sinktop_eval.synthetic_video import Scene, ShapeTrack, write_scene

TWINS = ("tiny_qwen25vl", "tiny_llava_ov", "tiny_llava_video")
FRAMES = 16  # sampled frames per generation (8 temporal slices for Qwen)


@pytest.fixture(scope="session", autouse=True)
def tiny_cache(tmp_path_factory):
    """Point SINKTOP_CACHE at a session directory for the whole backbone test run."""
    previous = os.environ.get("SINKTOP_CACHE")
    root = tmp_path_factory.mktemp("sinktop_cache")
    os.environ["SINKTOP_CACHE"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("SINKTOP_CACHE", None)
    else:
        os.environ["SINKTOP_CACHE"] = previous


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
