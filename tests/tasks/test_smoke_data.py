"""The synthetic benchmark builder (sinktop_eval.benchmarks.smoke_data) and its CLI."""
import json
import subprocess
import sys
from pathlib import Path

import decord
import pandas as pd

from sinktop_eval.benchmarks.common import MICROSECONDS_PER_SECOND
from sinktop_eval.benchmarks.smoke_data import (
    FORMAT_VERSION,
    MVBENCH_PREFIXES,
    build_smoke_data,
    ensure_smoke_data,
    read_manifest,
    smoke_root,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def annotations(root: Path) -> dict:
    """Every annotation file's parsed content (json and parquet), keyed by relative path."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.suffix == ".json" and path.name != "MANIFEST.json":
            out[rel] = json.loads(path.read_text())
        elif path.suffix == ".parquet":
            out[rel] = pd.read_parquet(path).to_dict(orient="records")
    return out


def test_same_seed_same_annotations_other_seed_differs(tmp_path, smoke_root):
    again = tmp_path / "again"
    build_smoke_data(again, seed=0)
    assert annotations(again) == annotations(smoke_root)
    assert read_manifest(again)["files"] == read_manifest(smoke_root)["files"]
    other = tmp_path / "other"
    build_smoke_data(other, seed=1)
    assert annotations(other) != annotations(smoke_root)


def test_layouts_match_the_real_releases(smoke_root):
    eh = smoke_root / "EventHallusion"
    for split in ("entire", "mix", "misleading"):
        records = json.loads((eh / "questions" / f"{split}_questions.json").read_text())
        assert records and all({"id", "category", "length", "event_info", "questions"} <= set(r) for r in records)
        folder = "interleave" if split == "mix" else split
        for r in records:
            vid = r["id"].replace("mix", "interleave") if split == "mix" else r["id"]
            assert (eh / "videos" / folder / f"{vid}.mp4").is_file()
            assert {q["answer"] for q in r["questions"]} <= {"Yes.", "No."}
            assert ("unexpected" if split == "mix" else "bias") in r["event_info"]
    vc = smoke_root / "VideoComp"
    for source in ("activitynet", "youcook2"):
        items = json.loads((vc / f"{source}_comp_val.json").read_text())
        for item in items:
            assert item["answer"] in ("A", "B") and "(A)" in item["question"] and "(B)" in item["question"]
            start, end = item["query_video/start_time"], item["query_video/end_time"]
            assert 0 <= start < end <= item["original_video/end_time"] and end >= MICROSECONDS_PER_SECOND
            video = (vc / "activitynet_video" / f"v_{item['video_id']}.mp4" if source == "activitynet"
                     else vc / "raw_videos" / "video" / f"{item['video_id']}.mp4")
            assert video.is_file()
    vcg = smoke_root / "VideoChatGPT"
    consistency = pd.read_parquet(vcg / "Consistency" / "test-00000-of-00001.parquet")
    assert list(consistency.columns) == ["video_name", "question_1", "question_2", "answer"]
    assert set(pd.read_parquet(vcg / "Generic" / "test-00000-of-00001.parquet").columns) == {"video_name", "question",
                                                                                               "answer"}
    assert all((vcg / "Test_Videos" / f"{n}.mp4").is_file() for n in consistency["video_name"])
    for task, prefix in MVBENCH_PREFIXES.items():
        for item in json.loads((smoke_root / "MVBench" / "json" / f"{task}.json").read_text()):
            assert item["answer"] in item["candidates"]
            assert (smoke_root / "MVBench" / "video" / prefix / item["video"]).is_file()


def test_videos_decode_to_the_expected_frame_count(smoke_root):
    videos = sorted(smoke_root.rglob("*.mp4"))
    assert 8 <= len(videos) <= 16
    for path in videos:
        reader = decord.VideoReader(str(path))
        expected = 32 if ("VideoComp" in str(path) or "Charades" in str(path)) else 24
        assert len(reader) == expected, path
        frame = reader[0].asnumpy()
        assert frame.shape == (112, 112, 3)
        assert frame[2:20, 2:20].mean() > 230  # the constant bright sink patch
        assert reader.get_avg_fps() == 8.0


def test_questions_are_answerable_from_the_pixels(smoke_root):
    """The interleave question about the unexpected shape: absent in the first frame, present in the last."""
    record = json.loads((smoke_root / "EventHallusion" / "questions" / "mix_questions.json").read_text())[0]
    reader = decord.VideoReader(str(smoke_root / "EventHallusion" / "videos" / "interleave" / "interleave_001.mp4"))
    first, last = reader[0].asnumpy().astype(int), reader[len(reader) - 1].asnumpy().astype(int)
    assert record["questions"][0]["answer"] == "Yes."
    assert abs(last[78:99, 46:67] - first[78:99, 46:67]).mean() > 20  # the shape that appears half-way


def test_ensure_is_idempotent_and_default_location(tmp_path, monkeypatch):
    root = tmp_path / "s"
    assert ensure_smoke_data(root) == root.resolve()
    stamp = (root / "MANIFEST.json").stat().st_mtime_ns
    assert ensure_smoke_data(root) == root.resolve()
    assert (root / "MANIFEST.json").stat().st_mtime_ns == stamp  # not rebuilt
    assert read_manifest(root)["format"] == FORMAT_VERSION
    (root / "VideoComp" / "youcook2_comp_val.json").unlink()  # incomplete -> rebuilt
    ensure_smoke_data(root)
    assert (root / "VideoComp" / "youcook2_comp_val.json").is_file()
    monkeypatch.delenv("SINKTOP_SMOKE_DIR")
    monkeypatch.setenv("SINKTOP_CACHE", str(tmp_path / "cache"))
    assert smoke_root() == tmp_path / "cache" / "smoke"  # a built artefact: it lives with the other caches
    monkeypatch.setenv("SINKTOP_SMOKE_DIR", str(root))
    assert smoke_root() == root.resolve()


def test_cli_builds_in_seconds(tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_smoke_data.py"), str(out), "--seed", "2"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "seed 2" in done.stdout and read_manifest(out)["seed"] == 2
