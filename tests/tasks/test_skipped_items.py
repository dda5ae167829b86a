"""Items left out for bad videos (issue 11.1): missing, empty and corrupt videos alike follow the switch, the
count is a metric and a results column, and a run that skips has its own identity."""
import math
import os
import shutil
from pathlib import Path

import pytest

from sinktop_eval.benchmarks.common import SKIP_MISSING_ENV, SKIPPED_FIELD
from sinktop_eval.results import results_rows
from sinktop_eval.runner.config import compose, resolve_run


def build(task_manager, name):
    from lmms_eval.tasks import get_task_dict

    return get_task_dict([name], task_manager)[name]


@pytest.fixture
def damaged_eventhallusion(monkeypatch, tmp_path, smoke_root):
    """A copy of the smoke EventHallusion with one video missing, one empty and one corrupt."""
    root = Path(shutil.copytree(smoke_root / "EventHallusion", tmp_path / "EventHallusion"))
    monkeypatch.delenv("SINKTOP_DATA_ROOT")  # builtin:smoke would ignore the per-benchmark folder
    monkeypatch.setenv("SINKTOP_EVENTHALLUSION_DIR", str(root))
    videos = sorted((root / "videos").rglob("*.mp4"))
    videos[0].unlink()
    videos[1].write_bytes(b"")
    videos[2].write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return root, videos[:3]


def test_without_the_switch_a_missing_or_empty_video_stops_the_build(task_manager, damaged_eventhallusion):
    root, (missing, empty, _corrupt) = damaged_eventhallusion
    with pytest.raises(SystemExit) as info:
        build(task_manager, "sinktop_eventhallusion")
    message = str(info.value)
    assert "\n" not in message and str(missing) in message and SKIP_MISSING_ENV in message


def test_with_the_switch_missing_empty_and_corrupt_videos_are_left_out_and_counted(task_manager, monkeypatch,
                                                                                    damaged_eventhallusion):
    root, bad = damaged_eventhallusion
    monkeypatch.setenv(SKIP_MISSING_ENV, "1")
    task = build(task_manager, "sinktop_eventhallusion")
    docs = list(task.test_docs())
    assert not {d["video"] for d in docs} & {str(p) for p in bad}
    left_out = 18 - len(docs)
    assert left_out == 9 and {d[SKIPPED_FIELD] for d in docs} == {left_out}  # 3 videos x (1 description + 2 questions)
    binary = next(d for d in docs if d["kind"] == "binary")
    scored = task.process_results(binary, [binary["answer"]])
    assert scored["skipped"] == left_out
    from sinktop_eval.benchmarks.common import skipped

    assert skipped([scored["skipped"]] * len(docs)) == 9.0 and skipped([]) == 0.0


def test_skipping_is_part_of_the_run_identity(tmp_path):
    base = ["+model=tiny_qwen25vl", "+pruner=holitom", f"output_dir={tmp_path}"]
    full, skipping = resolve_run(compose(base)), resolve_run(compose(base + ["skip_bad_videos=true"]))
    assert "skip_bad_videos" not in full.identity()  # the ids of full runs are unchanged
    assert skipping.identity()["skip_bad_videos"] is True
    assert full.run_id != skipping.run_id and "_skipbad_" in skipping.run_id and "_skipbad" not in full.run_id


@pytest.mark.parametrize("setting, exported", [("false", "0"), ("true", "1")])
def test_the_run_sets_the_switch_for_its_tasks_whatever_the_shell_says(monkeypatch, tmp_path, setting, exported):
    from sinktop_eval.runner.preflight import task_environment

    monkeypatch.setenv(SKIP_MISSING_ENV, "1" if exported == "0" else "0")  # the shell says the opposite
    spec = resolve_run(compose(["+model=tiny_qwen25vl", "+pruner=holitom", f"output_dir={tmp_path}",
                                f"skip_bad_videos={setting}", "tasks=smoke"]))
    with task_environment(spec):
        assert os.environ[SKIP_MISSING_ENV] == exported
    assert os.environ[SKIP_MISSING_ENV] == ("1" if exported == "0" else "0")  # restored


def test_results_rows_carry_the_skipped_count_of_their_task():
    lmms = {"results": {"sinktop_eventhallusion": {"binary_acc,none": 90.0, "skipped,none": 6.0},
                        "videomme": {"videomme_perception_score,none": 50.0},
                        "g": {"acc,none": 1.0}, "a": {"acc,none": 1.0, "skipped,none": 2.0},
                        "b": {"acc,none": 1.0, "skipped,none": 1.0}},
            "group_subtasks": {"g": ["a", "b"]}, "n-samples": {}}
    rows = results_rows({"run_id": "r"}, lmms, [])
    skipped = {(t, m): s for t, m, s in zip(rows["task"], rows["metric"], rows["skipped"])}
    assert skipped[("sinktop_eventhallusion", "binary_acc")] == 6 == skipped[("sinktop_eventhallusion", "skipped")]
    assert skipped[("g", "acc")] == 3  # a group: its leaves' total
    assert skipped[("videomme", "videomme_perception_score")] is None or math.isnan(
        skipped[("videomme", "videomme_perception_score")])  # lmms-eval's built-ins do not report one
