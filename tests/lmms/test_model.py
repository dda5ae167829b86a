"""`SinktopModel`'s contract with lmms-eval: clear setup errors, loud failures, sample-level resume, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sinktop_eval.lmms import SinktopModel
from sinktop_eval.lmms.model import SinktopModelError, parse_visual, truncate_at_stop
from sinktop_eval.resources import TASKS_DIR



@pytest.fixture(scope="module")
def twin():
    from sinktop_eval.backbones import load_backbone

    return load_backbone("tiny_qwen25vl")


def evaluate(model, tasks, task_manager, limit=None):
    from lmms_eval.evaluator import simple_evaluate

    return simple_evaluate(model=model, tasks=tasks, task_manager=task_manager, limit=limit, bootstrap_iters=0,
                           log_samples=True)


@pytest.mark.parametrize("kwargs,named", [
    ({"pruner": "holitomm"}, "pruner='holitomm' is unknown; allowed: dense, random, uniform, visionzip, fastvid, holitom"),
    ({"ratio": 1.5}, "ratio=1.5 is invalid; allowed: a number in (0, 1]"),
    ({"stop": "maybe"}, "stop"),
    ({"batch_size": 4}, "batch_size=4 is unsupported"),
    ({"colour": "red"}, "unknown model_args ['colour']"),
])
def test_bad_settings_fail_at_setup_naming_the_value(twin, kwargs, named):
    with pytest.raises(SinktopModelError) as err:
        SinktopModel(backbone=twin, **kwargs)
    assert named in str(err.value)
    assert "\n" not in str(err.value)


def test_setup_errors_are_not_exceptions_the_cli_could_swallow():
    assert issubclass(SinktopModelError, SystemExit) and not issubclass(SinktopModelError, Exception)


def test_visual_and_stop_string_helpers():
    assert parse_visual(["a.mp4"]) == ("a.mp4", None, None)
    assert parse_visual([{"path": "a.mp4", "start": 1.0, "end": 2.5}]) == ("a.mp4", 1.0, 2.5)
    with pytest.raises(ValueError, match="doc_to_visual"):
        parse_visual([42])
    assert truncate_at_stop("yes.\n\nQuestion: no", ["\n\n", "Question:"]) == "yes."
    assert truncate_at_stop("yes", None) == "yes"


def test_a_generation_failure_stops_the_run_naming_task_and_doc(twin, task_manager, clean_task_env, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("CUDA out of memory")

    model = SinktopModel(backbone=twin, pruner="uniform", stop="off", frames=4, max_new_tokens=2)
    monkeypatch.setattr(twin, "generate", broken)
    with pytest.raises(SinktopModelError, match=r"task 'sinktop_mvbench_local' doc 0: CUDA out of memory"):
        evaluate(model, ["sinktop_mvbench_local"], task_manager, limit=2)


def test_a_rerun_reuses_finished_generations(twin, task_manager, clean_task_env, tmp_path, monkeypatch):
    records = tmp_path / "generations.jsonl"
    settings = dict(backbone=twin, pruner="holitom", stop="on", ratio=0.25, frames=4, max_new_tokens=4,
                    records_path=str(records))
    first = SinktopModel(**settings)
    done = evaluate(first, ["sinktop_videocomp_activitynet"], task_manager, limit=2)
    lines = records.read_text().splitlines()
    assert len(lines) == 2 and not any(r.get("resumed") for r in first.records)

    # the interrupted run's file ends with a half-written line: it is ignored and that doc redone
    records.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    calls = []
    original = twin.generate
    monkeypatch.setattr(twin, "generate", lambda **kw: calls.append(kw) or original(**kw))
    second = SinktopModel(**settings)
    again = evaluate(second, ["sinktop_videocomp_activitynet"], task_manager, limit=2)
    assert len(calls) == 1  # only the doc whose line was cut
    assert [r.get("resumed", False) for r in second.records] == [True, False]
    assert [r["prediction"] for r in second.records] == [r["prediction"] for r in first.records]
    key = "activitynet_acc,none"
    assert again["results"]["sinktop_videocomp_activitynet"][key] == \
        done["results"]["sinktop_videocomp_activitynet"][key]
    assert json.loads(records.read_text().splitlines()[-1])["doc_id"] == second.records[1]["doc_id"]


@pytest.mark.slow
def test_the_documented_cli_line_runs_and_a_bad_one_exits_nonzero(tmp_path, smoke_root):
    env_cmd = [sys.executable, "-m", "lmms_eval", "eval", "--model", "sinktop", "--tasks", "sinktop_mvbench_local",
               "--include_path", str(TASKS_DIR), "--limit", "2", "--output_path", str(tmp_path / "out")]
    env = {**__import__("os").environ, "SINKTOP_SMOKE_DIR": str(smoke_root), "SINKTOP_DATA_ROOT": "builtin:smoke"}
    ok = subprocess.run(env_cmd + ["--log_samples", "--model_args",
                                   "pretrained=tiny_qwen25vl,pruner=holitom,stop=on,ratio=0.1,frames=4"],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "sinktop_mvbench_local" in ok.stdout and "acc" in ok.stdout
    # pretrained= names lmms-eval's output folder, like any HF model's
    [results_file] = (tmp_path / "out" / "tiny_qwen25vl").glob("*_results.json")
    results = json.loads(results_file.read_text())
    assert results["config"]["model_args"].startswith("pretrained=tiny_qwen25vl")
    assert results["usage"]["total"]["n_api_calls"] == 2 and results["usage"]["total"]["output_tokens"] > 0
    [samples_file] = (tmp_path / "out" / "tiny_qwen25vl").glob("*_samples_sinktop_mvbench_local.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(samples) == 2
    assert all(0 < s["token_counts"][0]["kept_visual_tokens"] < s["token_counts"][0]["dense_visual_tokens"]
               for s in samples)
    bad = subprocess.run(env_cmd + ["--model_args", "backbone=tiny_qwen25vl,pruner=nope"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0
    assert "pruner='nope' is unknown" in bad.stderr


def test_the_backbones_paper_cap_on_new_tokens_applies_below_the_tasks(twin, task_manager, clean_task_env,
                                                                       monkeypatch):
    """EventHallusion's descriptions allow 4096 new tokens (the LLaVA generator); Qwen2.5-VL's is 1024."""
    from sinktop_eval.backbones.base import Generation

    asked = []
    monkeypatch.setattr(twin, "generate", lambda **kw: asked.append(kw["max_new_tokens"]) or Generation("No.", [], {}))
    evaluate(SinktopModel(backbone=twin, pruner="dense", frames=4), ["sinktop_eventhallusion"], task_manager, limit=1)
    assert twin.generation_cap == 1024 and asked == [1024]
    asked.clear()
    evaluate(SinktopModel(backbone=twin, pruner="dense", frames=4, max_new_tokens=7), ["sinktop_eventhallusion"],
             task_manager, limit=1)
    assert asked == [7]  # the run's own cap is the smallest
