"""Every task YAML under tasks/ loads through lmms-eval's TaskManager; data roots and video errors."""
import math
import os
from pathlib import Path

import pytest
import yaml

from sinktop_eval.resources import CONFIG_DIR, TASKS_DIR
from sinktop_eval.runner.config import task_set

TASK_SETS = sorted(p.stem for p in (CONFIG_DIR / "tasks").glob("*.yaml"))
SMOKE_TASKS = list(task_set("smoke").names)
MVBENCH_TASKS = [f"mvbench_{t}" for t in (
    "action_sequence", "moving_count", "action_prediction", "episodic_reasoning", "action_antonym", "action_count",
    "scene_transition", "object_shuffle", "object_existence", "fine_grained_pose", "unexpected_action",
    "moving_direction", "state_change", "object_interaction", "character_order", "action_localization",
    "counterfactual_inference", "fine_grained_action", "moving_attribute", "egocentric_navigation")]


def our_yaml_names() -> dict[str, str]:
    """name -> kind for every YAML we ship (tasks, variants of built-ins, groups)."""
    names = {}
    for path in TASKS_DIR.rglob("*.yaml"):
        text = "\n".join(line for line in path.read_text().splitlines() if "!function" not in line)
        config = yaml.safe_load(text)
        if "group" in config:
            names[config["group"]] = "group"
        else:
            names[config["task"]] = "python_task" if "builtin" in config else "task"
    return names


def build(task_manager, names):
    from lmms_eval.tasks import get_task_dict

    return get_task_dict(names, task_manager)


def test_every_yaml_is_indexed_from_tasks_and_no_builtin_shadows_it(task_manager):
    ours = our_yaml_names()
    assert set(SMOKE_TASKS) <= set(ours) and ours["sinktop_mvbench"] == ours["sinktop_mvbench19"] == "group"
    assert ours["sinktop_videomme"] == ours["sinktop_mlvu_dev"] == ours["sinktop_videochatgpt_gen"] == "python_task"
    for name, kind in ours.items():
        entry = task_manager.task_index[name]
        assert entry["type"] == kind
        # on a name clash lmms-eval keeps the built-in's entry: ours must be the one indexed
        assert Path(entry["yaml_path"]).resolve().is_relative_to(TASKS_DIR), name
    # MVBench: the paper's 19 tasks, and the official 20 (the 19 plus fine_grained_pose, each task once)
    assert sorted(MVBENCH_TASKS) == sorted(task_manager._get_config("mvbench")["task"])
    nineteen = task_manager._get_config("sinktop_mvbench19")["task"]
    assert sorted(nineteen) == sorted(set(MVBENCH_TASKS) - {"mvbench_fine_grained_pose"})
    assert task_manager._get_config("sinktop_mvbench")["task"] == ["sinktop_mvbench19", "mvbench_fine_grained_pose"]
    for group in ("sinktop_mvbench", "sinktop_mvbench19"):
        assert task_manager._get_config(group)["aggregate_metric_list"] == [
            {"metric": "mvbench_accuracy", "aggregation": "mean", "weight_by_size": False}]


@pytest.mark.parametrize("name", TASK_SETS)
def test_every_task_a_task_set_names_exists(name, task_manager):
    """A task set is the one list of a benchmark's tasks: each entry is ours or an lmms-eval built-in
    ("group/subgroup": a group inside a listed group, evaluated through it)."""
    tasks = task_set(name)
    assert tasks.names
    for entries in tasks.benchmarks.values():
        for entry in entries:
            parent, *child = entry.split("/")
            assert parent in tasks.names and entry.split("/")[-1] in tasks.benchmark_of
            for task in (parent, *child):
                assert task in task_manager.all_tasks or task in task_manager.all_groups, (name, task)
            if child:
                assert child[0] in task_manager._get_config(parent)["task"], (name, entry)


def test_the_mcqa_set_evaluates_each_mvbench_task_once_and_names_both_means():
    tasks = task_set("mcqa")
    assert tasks.names == ("sinktop_videomme", "sinktop_mvbench", "sinktop_mlvu_dev", "sinktop_nextqa_mc_test",
                           "sinktop_longvideobench_val_v")
    assert tasks.benchmark_of == {"sinktop_videomme": "videomme", "sinktop_mvbench19": "mvbench",
                                  "sinktop_mvbench": "mvbench20", "sinktop_mlvu_dev": "mlvu",
                                  "sinktop_nextqa_mc_test": "nextqa", "sinktop_longvideobench_val_v": "longvideobench"}


def test_the_paper_set_is_the_four_families():
    families = [task_set(n) for n in ("hallucination", "open_ended", "compositional", "mcqa")]
    assert task_set("paper").benchmarks == {k: v for f in families for k, v in f.benchmarks.items()}


def test_smoke_tasks_build_with_docs_prompts_and_visuals(task_manager):
    tasks = build(task_manager, SMOKE_TASKS)
    for name in SMOKE_TASKS:
        task = tasks[name]
        docs = list(task.test_docs())
        assert docs, name
        for doc in docs:
            text = task.doc_to_text(doc)
            visual = task.doc_to_visual(doc)
            assert isinstance(text, str) and text.strip()
            item = visual[0]
            path = item if isinstance(item, str) else item["path"]
            assert os.path.isfile(path)


def test_eventhallusion_structure_one_description_per_video_and_prompts(task_manager):
    task = build(task_manager, ["sinktop_eventhallusion"])["sinktop_eventhallusion"]
    docs = list(task.test_docs())
    descriptions = [(d["split"], d["id"]) for d in docs if d["kind"] == "description"]
    videos = {(d["split"], d["id"]) for d in docs}
    assert sorted(descriptions) == sorted(videos)  # exactly one description request per video
    assert [d["split"] for d in docs[:3] if d["kind"] == "description"] == ["entire"]
    assert {d["split"] for d in docs[:9]} == {"entire", "interleave", "misleading"}  # round-robin for --limit
    binary = next(d for d in docs if d["kind"] == "binary")
    assert task.doc_to_text(binary).endswith("\nPlease answer yes or no:")
    assert task.doc_to_text(docs[0]) == "Please describe this video in detail."
    mix = next(d for d in docs if d["split"] == "interleave" and d["kind"] == "description")
    assert mix["id"].startswith("mix_") and mix["video"].endswith("videos/interleave/interleave_001.mp4")
    assert mix["answer"] == mix["unexpected"] and mix["answer"]  # the judge gets the unexpected event
    entire = next(d for d in docs if d["split"] == "entire" and d["kind"] == "description")
    assert entire["answer"] == entire["caption"]
    assert task.config.generation_kwargs["until"] == []


def test_videocomp_windows_are_microseconds_to_seconds(task_manager, smoke_root):
    import json

    task = build(task_manager, ["sinktop_videocomp_activitynet"])["sinktop_videocomp_activitynet"]
    raw = json.loads((smoke_root / "VideoComp" / "activitynet_comp_val.json").read_text())
    doc = next(iter(task.test_docs()))
    visual = task.doc_to_visual(doc)[0]
    assert visual["start"] == raw[0]["query_video/start_time"] / 1e6
    assert visual["end"] == raw[0]["query_video/end_time"] / 1e6
    assert visual["path"].endswith(f"activitynet_video/v_{raw[0]['video_id']}.mp4")
    assert task.doc_to_target(doc) == raw[0]["answer"]
    assert len(doc["options"]) == 2


def test_real_tasks_read_the_official_layouts_from_the_data_root(task_manager, monkeypatch, smoke_root):
    monkeypatch.setenv("SINKTOP_DATA_ROOT", str(smoke_root))  # the smoke copy has the release layouts
    tasks = build(task_manager, SMOKE_TASKS)
    assert len(list(tasks["sinktop_eventhallusion"].test_docs())) == 18
    assert len(list(tasks["sinktop_vcg_consistency"].test_docs())) == 4
    assert len(list(tasks["sinktop_mvbench_local"].test_docs())) == 4
    # a per-benchmark variable wins over the common root
    monkeypatch.setenv("SINKTOP_EVENTHALLUSION_DIR", str(smoke_root / "nowhere"))
    with pytest.raises(SystemExit, match="SINKTOP_EVENTHALLUSION_DIR"):
        build(task_manager, ["sinktop_eventhallusion"])
    # ... but not over the synthetic benchmark, which has every folder
    monkeypatch.setenv("SINKTOP_DATA_ROOT", "builtin:smoke")
    assert len(list(build(task_manager, ["sinktop_eventhallusion"])["sinktop_eventhallusion"].test_docs())) == 18


@pytest.mark.parametrize("task, env_var, missing", [
    ("sinktop_eventhallusion", "SINKTOP_EVENTHALLUSION_DIR", "EventHallusion/questions/entire_questions.json"),
    ("sinktop_videocomp_youcook2", "SINKTOP_VIDEOCOMP_DIR", "VideoComp/youcook2_comp_val.json"),
    ("sinktop_vcg_generic", "SINKTOP_VIDEOCHATGPT_DIR", "VideoChatGPT/Generic"),
    ("sinktop_mvbench_local", "SINKTOP_MVBENCH_DIR", "MVBench/json"),
])
def test_missing_data_root_fails_at_build_with_one_line(task_manager, monkeypatch, tmp_path, task, env_var, missing):
    monkeypatch.setenv("SINKTOP_DATA_ROOT", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as info:
        build(task_manager, [task])
    message = str(info.value)
    assert "\n" not in message and env_var in message and "SINKTOP_DATA_ROOT" in message
    assert str(tmp_path / "empty" / missing) in message


def copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_video_stops_at_build_naming_the_file_or_is_skipped(task_manager, monkeypatch, tmp_path, smoke_root):
    root = copy_tree(smoke_root / "VideoComp", tmp_path / "VideoComp")
    video = next((root / "raw_videos" / "video").glob("*.mp4"))
    video.unlink()
    monkeypatch.delenv("SINKTOP_DATA_ROOT")  # builtin:smoke would ignore the per-benchmark folder
    monkeypatch.setenv("SINKTOP_VIDEOCOMP_DIR", str(root))
    with pytest.raises(SystemExit, match=str(video).replace(".", r"\.")):
        build(task_manager, ["sinktop_videocomp_youcook2"])
    monkeypatch.setenv("SINKTOP_SKIP_MISSING_VIDEOS", "1")  # all youcook2 items use that one video
    with pytest.raises(SystemExit, match="no usable video"):
        build(task_manager, ["sinktop_videocomp_youcook2"])
    assert len(list(build(task_manager, ["sinktop_videocomp_activitynet"])["sinktop_videocomp_activitynet"]
                    .test_docs())) == 2


def test_corrupt_or_vanished_video_raises_a_clear_error_not_sys_exit(task_manager, monkeypatch, tmp_path, smoke_root):
    root = copy_tree(smoke_root / "EventHallusion", tmp_path / "EventHallusion")
    monkeypatch.delenv("SINKTOP_DATA_ROOT")  # builtin:smoke would ignore the per-benchmark folder
    monkeypatch.setenv("SINKTOP_EVENTHALLUSION_DIR", str(root))
    task = build(task_manager, ["sinktop_eventhallusion"])["sinktop_eventhallusion"]
    doc = next(iter(task.test_docs()))
    assert doc["video"].startswith(str(root))  # never damage the session's shared copy
    Path(doc["video"]).write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(FileNotFoundError, match="corrupt or unreadable: " + doc["video"]):
        task.doc_to_visual(doc)
    Path(doc["video"]).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="empty: " + doc["video"]):
        task.doc_to_visual(doc)
    Path(doc["video"]).unlink()
    with pytest.raises(FileNotFoundError, match="not found: " + doc["video"]):
        task.doc_to_visual(doc)


def test_judged_process_results_without_judge_are_nan(task_manager):
    task = build(task_manager, ["sinktop_eventhallusion"])["sinktop_eventhallusion"]
    docs = list(task.test_docs())
    description = next(d for d in docs if d["kind"] == "description")
    out = task.process_results(description, ["A shape moves."])
    assert math.isnan(out["desc_acc"]["score"]) and math.isnan(out["judge_failures"])
    binary = next(d for d in docs if d["kind"] == "binary")
    out = task.process_results(binary, [binary["answer"].upper() + " indeed"])
    assert out["binary_acc"] == 100.0 and out[f"{binary['split']}_binary_acc"] == 100.0


def test_videocomp_option_lists_inline_or_one_per_line():
    import importlib.util

    spec = importlib.util.spec_from_file_location("videocomp_utils", TASKS_DIR / "videocomp" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    assert utils.parse_options("Which matches? (A) A man runs. (B) A dog (big) runs.") == ["A man runs.",
                                                                                          "A dog (big) runs."]
    assert utils.parse_options("Which matches?\nA. a man runs\nB. a dog runs") == ["a man runs", "a dog runs"]
    assert utils.parse_options("Which caption matches the video?") == []
    assert utils.common.MICROSECONDS_PER_SECOND == 1_000_000
