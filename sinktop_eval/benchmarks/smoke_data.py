"""The embedded synthetic benchmark: every task family's official file layout, with tiny rendered videos.

    python scripts/make_smoke_data.py data/smoke [--seed 0] [--force]
    ensure_smoke_data()          # builds $SINKTOP_SMOKE_DIR (default <cache>/smoke) once, then reuses it

Tasks read it when SINKTOP_DATA_ROOT=builtin:smoke (what the `smoke` task set sets).

Fifteen short clips (24 or 32 frames, 112 x 112, 8 fps) of coloured shapes moving over a textured
background with a constant bright "sink" patch (`sinktop_eval.synthetic_video`), plus annotations
in the same layouts as the real releases, so the real tasks' code reads them unchanged:

    EventHallusion/questions/{entire,mix,misleading}_questions.json, videos/{entire,interleave,misleading}/<id>.mp4
    VideoComp/{activitynet,youcook2}_comp_val.json (windows in microseconds),
              activitynet_video/v_<video_id>.mp4, raw_videos/video/<video_id>.mp4
    VideoChatGPT/{Generic,Temporal,Consistency}/test-00000-of-00001.parquet, Test_Videos/<video_name>.mp4
    MVBench/json/<task>.json, video/<prefix>/<video>
    Argus/data/train-00000-of-00001.parquet (clip_name, human_caption), videos/<clip_name>.mp4

Every question is answerable from the pixels ("Is there a red circle?", "Which caption matches: the
red circle appears, then the blue square / the other way round?"), so a real model can beat chance; the
Argus human captions describe, sentence by sentence, what the clip shows.
Everything is a deterministic function of the seed; a build takes about a second and ~110 KiB.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..files import build_directory, cache_root
from .common import MICROSECONDS_PER_SECOND
from .synthetic_video import COLOURS, Scene, ShapeTrack, write_scene

SMOKE_ENV = "SINKTOP_SMOKE_DIR"
MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 2  # bump when the layout or content rules change: ensure_smoke_data then rebuilds
DEFAULT_SEED = 0
FPS = 8.0
# MVBench task -> video sub-folder (the real release's prefixes for these two tasks)
MVBENCH_PREFIXES = {"object_existence": "clevrer/video_validation", "action_sequence": "star/Charades_v1_480"}
SUBDIRS = ("EventHallusion", "VideoComp", "VideoChatGPT", "MVBench", "Argus")


def smoke_root(environ: dict | None = None) -> Path:
    """Where the smoke benchmark lives: $SINKTOP_SMOKE_DIR, else <cache root>/smoke."""
    environ = os.environ if environ is None else environ
    value = environ.get(SMOKE_ENV)
    return Path(value).expanduser().resolve() if value else cache_root(environ) / "smoke"


# --------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Shape:
    colour: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    @property
    def a(self) -> str:
        """With its indefinite article: "a red circle", "an orange square"."""
        return f"{'an' if self.colour[0] in 'aeiou' else 'a'} {self.name}"

    @property
    def A(self) -> str:
        return self.a[0].upper() + self.a[1:]


@dataclass(frozen=True)
class Clip:
    """One rendered scene and the facts its questions are written from."""

    scene: Scene
    main: Shape  # moves horizontally all clip (or its first part, in "sequence")
    direction: str  # "right" | "left"
    second: Shape | None  # "appear": pops up half-way; "sequence": replaces `main` half-way
    absent: Shape  # a shape that never appears
    layout: str  # "steady" | "appear" | "sequence"

    @property
    def duration(self) -> float:
        return self.scene.num_frames / self.scene.fps


def _pick_shapes(rng: np.random.Generator, n: int) -> list[Shape]:
    colours = rng.permutation(sorted(COLOURS))[:n]
    return [Shape(str(c), str(rng.choice(["circle", "square"]))) for c in colours]


def _clip(rng: np.random.Generator, layout: str, seed: int, frames: int = 24) -> Clip:
    main, second, absent = _pick_shapes(rng, 3)
    direction = str(rng.choice(["right", "left"]))
    y_main = float(rng.integers(44, 60))
    x0 = 26.0 if direction == "right" else 86.0
    speed = 60.0 / frames  # crosses ~60 px whatever the length
    vx = speed if direction == "right" else -speed
    half = frames // 2
    if layout == "steady":
        tracks = (ShapeTrack(main.colour, main.kind, x0, y_main, vx=vx, size=11),)
        second = None
    elif layout == "appear":
        tracks = (ShapeTrack(main.colour, main.kind, x0, y_main, vx=vx, size=11),
                  ShapeTrack(second.colour, second.kind, 56.0, 88.0, size=10, first=half))
    elif layout == "sequence":  # main (moving) in the first half, then second (static) in the second half
        lead = frames // 8
        tracks = (ShapeTrack(main.colour, main.kind, x0, y_main, vx=2 * vx, size=11, first=lead, last=half - 1),
                  ShapeTrack(second.colour, second.kind, 56.0, 80.0, size=11, first=half, last=frames - lead - 1))
    else:
        raise ValueError(f"unknown layout {layout!r}")
    scene = Scene(num_frames=frames, height=112, width=112, fps=FPS, seed=seed, shapes=tracks)
    return Clip(scene, main, direction, second, absent, layout)


def _opposite(direction: str) -> str:
    return "left" if direction == "right" else "right"


def _mmss(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _yes(flag: bool) -> str:
    return "Yes." if flag else "No."


# --------------------------------------------------------------------------- the layouts


def _eventhallusion(root: Path, rng: np.random.Generator, seed: int, render) -> dict[str, int]:
    base = root / "EventHallusion"
    splits = {"entire": [], "mix": [], "misleading": []}
    for i in range(2):
        clip = _clip(rng, "steady", seed * 100 + 10 + i)
        vid = f"entire_{i + 1:03d}"
        render(clip, base / "videos" / "entire" / f"{vid}.mp4")
        splits["entire"].append({
            "id": vid, "category": "shapes", "length": _mmss(clip.duration),
            "event_info": {"object": [clip.main.name], "scene": "A textured background with a white patch.",
                           "caption": f"{clip.main.A} moves to the {clip.direction}.",
                           "bias": f"The {clip.main.name} moves to the {_opposite(clip.direction)}."},
            "questions": [
                {"type": "entire", "question": f"Does the {clip.main.name} move to the {_opposite(clip.direction)}?",
                 "answer": "No."},
                {"type": "entire", "question": f"Is there {clip.main.a} in the video?", "answer": "Yes."},
            ]})
    for i in range(2):
        clip = _clip(rng, "appear", seed * 100 + 20 + i)
        vid = f"mix_{i + 1:03d}"
        render(clip, base / "videos" / "interleave" / f"interleave_{i + 1:03d}.mp4")  # mix ids -> interleave files
        splits["mix"].append({
            "id": vid, "category": "shapes", "length": _mmss(clip.duration),
            "event_info": {"object": [clip.main.name, clip.second.name], "scene": "A textured background.",
                           "caption": f"{clip.main.A} moves to the {clip.direction}.",
                           "unexpected": f"{clip.second.A} suddenly appears half-way through."},
            "questions": [
                {"type": "hallucination", "question": f"Does {clip.second.a} appear during the video?",
                 "answer": "Yes."},
                {"type": "hallucination", "question": f"Does {clip.absent.a} appear during the video?",
                 "answer": "No."},
            ]})
    for i in range(2):
        clip = _clip(rng, "steady", seed * 100 + 30 + i)
        vid = f"misleading_{i + 1:03d}"
        render(clip, base / "videos" / "misleading" / f"{vid}.mp4")
        splits["misleading"].append({
            "id": vid, "category": "shapes", "length": _mmss(clip.duration),
            "event_info": {"object": [clip.main.name], "scene": "A textured background.",
                           "caption": f"{clip.main.A} keeps moving to the {clip.direction}.",
                           "bias": f"The {clip.main.name} stops and {clip.absent.a} pushes it."},
            "questions": [
                {"type": "misleading", "question": f"Does {clip.absent.a} push the {clip.main.name}?",
                 "answer": "No."},
                {"type": "misleading", "question": f"Does the {clip.main.name} keep moving to the {clip.direction}?",
                 "answer": "Yes."},
            ]})
    for split, records in splits.items():
        _write_json(base / "questions" / f"{split}_questions.json", records)
    return {split: sum(len(r["questions"]) for r in records) for split, records in splits.items()}


def _comp_items(rng: np.random.Generator, clip: Clip, video_id: str, source: str, window: tuple[float, float],
                duration: float) -> list[dict]:
    first, then = clip.main, clip.second
    pairs = [("temporal reordering", f"{first.A} appears, then {then.a} appears.",
              f"{then.A} appears, then {first.a} appears."),
             ("action word replacement", f"{first.A} moves to the {clip.direction}.",
              f"{first.A} moves to the {_opposite(clip.direction)}.")]
    items = []
    us = MICROSECONDS_PER_SECOND
    for k, (kind, positive, negative) in enumerate(pairs):
        positive_first = bool(rng.integers(0, 2))
        a, b = (positive, negative) if positive_first else (negative, positive)
        start, end = int(window[0] * us), int(window[1] * us)
        items.append({
            "key": f"{source}_{video_id}_{k}", "video_id": video_id, "type": kind,
            "original_video/start_time": 0, "original_video/end_time": int(duration * us),
            "query_video/start_time": start, "query_video/end_time": end,
            "positive_text/start_time": start, "positive_text/end_time": end,
            "negative_text/start_time": start, "negative_text/end_time": end,
            "positive_text": positive, "negative_text": negative,
            "question": f"Which caption matches the video? (A) {a} (B) {b}",
            "answer": "A" if positive_first else "B"})
    return items


def _videocomp(root: Path, rng: np.random.Generator, seed: int, render) -> dict[str, int]:
    base = root / "VideoComp"
    counts = {}
    for source, video_id, path_of in (
            ("activitynet", f"smkANet{seed % 1000:03d}", lambda v: base / "activitynet_video" / f"v_{v}.mp4"),
            ("youcook2", f"smkYC2v{seed % 1000:03d}", lambda v: base / "raw_videos" / "video" / f"{v}.mp4")):
        clip = _clip(rng, "sequence", seed * 100 + 40 + len(counts), frames=32)
        render(clip, path_of(video_id))
        # the query window leaves out the empty lead-in and tail; both events fall inside it
        window = (0.25, clip.duration - 0.25)
        items = _comp_items(rng, clip, video_id, source, window, clip.duration)
        _write_json(base / f"{source}_comp_val.json", items)
        counts[source] = len(items)
    return counts


def _videochatgpt(root: Path, rng: np.random.Generator, seed: int, render) -> dict[str, int]:
    import pandas as pd

    base = root / "VideoChatGPT"
    generic, temporal, consistency = [], [], []
    for i, layout in enumerate(("appear", "sequence")):
        clip = _clip(rng, layout, seed * 100 + 50 + i)
        name = f"v_smoke_vcg_{i + 1:02d}"
        render(clip, base / "Test_Videos" / f"{name}.mp4")
        main, second = clip.main.name, clip.second.name
        if layout == "appear":
            description = (f"{clip.main.A} moves to the {clip.direction} across a textured background; half-way "
                           f"through {clip.second.a} appears below it.")
            order = f"First the {main} moves to the {clip.direction}, then {clip.second.a} appears."
        else:
            description = f"{clip.main.A} moves to the {clip.direction} and disappears; then {clip.second.a} appears."
            order = f"The {main} appears first; after it disappears, the {second} appears."
        generic += [{"video_name": name, "question": "What happens in the video?", "answer": description},
                    {"video_name": name, "question": f"What colour is the {clip.main.kind} that moves?",
                     "answer": f"It is {clip.main.colour}."}]
        temporal.append({"video_name": name, "question": "In what order do the shapes appear?", "answer": order})
        consistency += [
            {"video_name": name, "question_1": f"Which direction does the {main} move?", "question_2": "None",
             "answer": f"To the {clip.direction}."},
            {"video_name": name, "question_1": "None", "question_2": f"Where is the {main} heading?",
             "answer": f"To the {clip.direction}."}]
    for folder, rows in (("Generic", generic), ("Temporal", temporal), ("Consistency", consistency)):
        path = base / folder / "test-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).astype(str).to_parquet(path, index=False)
    return {"Generic": len(generic), "Temporal": len(temporal), "Consistency": len(consistency)}


def _mvbench(root: Path, rng: np.random.Generator, seed: int, render) -> dict[str, int]:
    base = root / "MVBench"
    counts = {}
    # object_existence: which shapes / colours are there (whole clip)
    clip = _clip(rng, "appear", seed * 100 + 60)
    video = f"video_{seed % 1000:03d}01.mp4"
    render(clip, base / "video" / MVBENCH_PREFIXES["object_existence"] / video)
    colours = [clip.main.colour, clip.second.colour, clip.absent.colour]
    colour_options = [str(c) for c in rng.permutation(colours)]
    items = [
        {"video": video, "question": f"Which colour is the {clip.main.kind} that moves?",
         "candidates": colour_options, "answer": clip.main.colour},
        {"video": video, "question": f"Is there {clip.absent.a} in the video?",
         "candidates": ["yes", "no"], "answer": "no"},
    ]
    _write_json(base / "json" / "object_existence.json", items)
    counts["object_existence"] = len(items)
    # action_sequence: what happened first, inside a window (start/end in seconds)
    clip = _clip(rng, "sequence", seed * 100 + 61, frames=32)
    video = f"SMK{seed % 1000:03d}.mp4"
    render(clip, base / "video" / MVBENCH_PREFIXES["action_sequence"] / video)
    order = [f"The {clip.main.name} appeared.", f"The {clip.second.name} appeared."]
    candidates = [str(c) for c in rng.permutation(order)]
    items = [
        {"video": video, "question": "What happened first?", "candidates": candidates, "answer": order[0],
         "start": 0.25, "end": clip.duration - 0.25},
        {"video": video, "question": f"Which way did the {clip.main.name} move?",
         "candidates": [f"To the {d}." for d in rng.permutation(["left", "right"])],
         "answer": f"To the {clip.direction}.", "start": 0.25, "end": clip.duration - 0.25},
    ]
    _write_json(base / "json" / "action_sequence.json", items)
    counts["action_sequence"] = len(items)
    return counts


def _argus_caption(clip: Clip) -> str:
    """A dense human-style caption of one clip, one fact per sentence (what the Argus judge checks)."""
    side = {"right": "from the left side of the frame to the right side", "left": "from the right side of the frame "
            "to the left side"}[clip.direction]
    scene = ("The video shows a dark background made of small muted squares, with a bright white square in the "
             "top-left corner.")
    if clip.layout == "steady":
        story = [f"{clip.main.A} moves slowly {side}.", "It keeps the same size and colour the whole time.",
                 "Nothing else appears in the video."]
    elif clip.layout == "appear":
        story = [f"{clip.main.A} moves slowly {side}.",
                 f"Half-way through, {clip.second.a} suddenly appears below it and stays still until the end."]
    else:
        story = [f"At first, {clip.main.a} moves quickly {side} and then disappears.",
                 f"Then {clip.second.a} appears lower in the frame and stays still.",
                 "Near the end it disappears too, leaving only the background."]
    return " ".join([scene, *story, "The white square in the corner never changes."])


def _argus(root: Path, rng: np.random.Generator, seed: int, render) -> dict[str, int]:
    import hashlib

    import pandas as pd

    base = root / "Argus"
    rows = []
    for i, layout in enumerate(("steady", "appear", "sequence")):
        clip = _clip(rng, layout, seed * 100 + 70 + i)
        # the release names clips by a hex digest
        name = hashlib.sha256(f"sinktop-smoke-argus-{seed}-{i}".encode()).hexdigest()
        render(clip, base / "videos" / f"{name}.mp4")
        rows.append({"clip_name": name, "human_caption": _argus_caption(clip)})
    path = base / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).astype(str).to_parquet(path, index=False)
    return {"train": len(rows)}


# --------------------------------------------------------------------------- building


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_manifest(root: str | Path) -> dict | None:
    try:
        return json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _complete(root: Path, manifest: dict | None) -> bool:
    return bool(manifest) and manifest.get("format") == FORMAT_VERSION and all(
        (root / rel).is_file() for rel in manifest.get("files", []))


def _build_into(out: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rendered: dict[Scene, Path] = {}

    def render(clip: Clip, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if clip.scene in rendered:
            shutil.copyfile(rendered[clip.scene], path)
        else:
            write_scene(path, clip.scene)
            rendered[clip.scene] = path

    counts = {"EventHallusion": _eventhallusion(out, rng, seed, render),
              "VideoComp": _videocomp(out, rng, seed, render),
              "VideoChatGPT": _videochatgpt(out, rng, seed, render),
              "MVBench": _mvbench(out, rng, seed, render),
              "Argus": _argus(out, rng, seed, render)}  # last: the other layouts keep their random draws
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    manifest = {"format": FORMAT_VERSION, "seed": seed, "generator": "sinktop_eval.smoke_data",
                "counts": counts, "files": files}
    _write_json(out / MANIFEST, manifest)
    return manifest


def build_smoke_data(out_dir: str | Path, seed: int = DEFAULT_SEED, replace: bool = True) -> dict:
    """(Re)build the smoke benchmark at ``out_dir``; returns its manifest.

    Built in a sibling temporary folder and moved into place (`sinktop_eval.files.build_directory`), so
    a reader never sees half a benchmark and two concurrent builders do not mix files. ``replace=False``
    keeps a complete build of the same seed that appeared meanwhile (another process got there first).
    """
    out = Path(out_dir).expanduser().resolve()

    def same_seed(path: Path) -> bool:
        manifest = read_manifest(path)
        return _complete(path, manifest) and manifest.get("seed") == seed

    build_directory(out, lambda staging: _build_into(staging, seed), complete=same_seed, replace=replace)
    return read_manifest(out)


def ensure_smoke_data(root: str | Path | None = None, seed: int | None = None) -> Path:
    """The smoke benchmark's root, built first if missing, incomplete, outdated or of another seed.

    ``seed=None`` accepts whatever complete build is there (building seed 0 when there is none).
    """
    out = Path(root).expanduser().resolve() if root is not None else smoke_root()
    manifest = read_manifest(out)
    if _complete(out, manifest) and (seed is None or manifest.get("seed") == seed):
        return out
    if out.exists() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not a smoke benchmark (no {MANIFEST}); "
                              f"point {SMOKE_ENV} at an empty or new folder")
    build_smoke_data(out, DEFAULT_SEED if seed is None else seed, replace=False)
    return out
