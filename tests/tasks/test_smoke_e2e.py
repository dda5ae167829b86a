"""End to end through lmms-eval's real `simple_evaluate`: the local tasks over the synthetic benchmark (what the
`smoke` task set runs) with a canned-answer model standing in for the model layer and a stub judge on 127.0.0.1."""
import logging
import math
import os

import pytest
from lmms_eval.api.model import lmms

from sinktop_eval.runner.config import task_set

pytestmark = pytest.mark.slow
SMOKE_TASKS = list(task_set("smoke").names)


class CannedModel(lmms):
    """Answers from the doc itself, in varied reply styles, after asking the task for the video like the
    real model does (``doc_to_visual(doc)[0]``: a path, or {"path", "start", "end"} for a window)."""

    is_simple = True

    def __init__(self):
        super().__init__()
        self.visuals = []

    def _reply(self, doc: dict, doc_id: int) -> str:
        if "kind" in doc:  # EventHallusion
            return f"{doc['answer'].rstrip('.')}, I am sure." if doc["kind"] == "binary" else doc["answer"]
        if "options" in doc:  # VideoComp: letter or option text, several styles
            letter = doc["answer_letter"]
            text = doc["options"]["AB".index(letter)]
            return [f"The best answer is {letter}", f"({letter.lower()}) {text}", text, f"I think {letter}"][doc_id % 4]
        if "candidates" in doc:  # MVBench-style, primed with "Best option:("
            letter = doc["answer_letter"]
            return f"{letter}) {doc['answer']}" if doc_id % 2 else doc["answer"]
        if "human_caption" in doc:  # Argus: the human caption itself
            return doc["human_caption"]
        return doc["answer"]  # VideoChatGPT: the reference answer

    def generate_until(self, requests):
        out = []
        for request in requests:
            _context, _gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            visual = doc_to_visual(doc)[0]
            path = visual if isinstance(visual, str) else visual["path"]
            assert os.path.isfile(path), path
            self.visuals.append((task, visual))
            out.append(self._reply(doc, doc_id))
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


def evaluate(task_manager, tasks, limit=None):
    from lmms_eval.evaluator import simple_evaluate

    model = CannedModel()
    results = simple_evaluate(model=model, tasks=tasks, task_manager=task_manager, limit=limit, log_samples=True,
                              bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                              fewshot_random_seed=0)
    return results, model


def leaf_metrics(results):
    """{task: {metric: value}} for leaf tasks (groups excluded), without stderr/alias/samples entries."""
    groups = {g for g, members in results["group_subtasks"].items() if members}
    return {task: {k.split(",")[0]: v for k, v in values.items() if "," in k and "_stderr" not in k}
            for task, values in results["results"].items() if task not in groups}


def test_every_family_end_to_end_with_a_stub_judge(task_manager, stub_judge, use_judge):
    stub = stub_judge()
    use_judge(stub.url)
    results, model = evaluate(task_manager, SMOKE_TASKS, limit=100)
    metrics = leaf_metrics(results)
    assert set(metrics) == set(SMOKE_TASKS)
    for task, values in metrics.items():
        assert values, task
        for name, value in values.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (task, name, value)
    eh = metrics["sinktop_eventhallusion"]
    assert eh["binary_acc"] == eh["desc_acc"] == eh["overall_acc"] == 100.0 and eh["judge_failures"] == 0
    assert {eh[f"{s}_{k}_acc"] for s in ("entire", "interleave", "misleading") for k in ("binary", "desc")} == {100.0}
    assert metrics["sinktop_videocomp_activitynet"] == {"activitynet_acc": 100.0}
    assert metrics["sinktop_videocomp_youcook2"] == {"youcook2_acc": 100.0}
    assert metrics["sinktop_vcg_generic"] == {"ci": 4.0, "do": 4.0, "cu": 4.0, "judge_failures": 0.0}
    assert metrics["sinktop_vcg_temporal"] == {"tu": 4.0, "judge_failures": 0.0}
    assert metrics["sinktop_vcg_consistency"] == {"co": 4.0, "judge_failures": 0.0}
    assert metrics["sinktop_mvbench_local"] == {"acc": 100.0}
    assert metrics["sinktop_argus"] == {"hallucination_rate": 0.0, "omission_rate": 0.0, "skipped_clips": 0.0,
                                        "judge_failures": 0.0}
    # windows reached the model in seconds; every request had a video
    windows = [v for task, v in model.visuals if isinstance(v, dict)]
    assert windows and all(0 <= w["start"] < w["end"] <= 4.0 for w in windows)
    assert {t for t, v in model.visuals if isinstance(v, dict)} == {
        "sinktop_videocomp_activitynet", "sinktop_videocomp_youcook2", "sinktop_mvbench_local"}
    assert len(results["samples"]["sinktop_eventhallusion"]) == 18
    # judge traffic: 6 EH descriptions + 4 x 3 generic + 2 temporal + 2 consistency pairs + 3 Argus clips (a caption
    # equal to the human one makes its two judgements the same prompt: the second comes from the judge cache)
    assert stub.count == 6 + 12 + 2 + 2 + 3
    # the runner's results rows take this output as is
    from sinktop_eval.results import results_rows

    rows = results_rows({"run_id": "t"}, results, [])
    rows = rows[~rows["metric"].str.contains("_stderr")]
    assert rows["value"].notna().all() and len(rows) == sum(len(v) for v in metrics.values())


def test_without_a_judge_judge_metrics_are_missing_with_one_warning(task_manager, caplog):
    tasks = ["sinktop_eventhallusion", "sinktop_vcg_generic", "sinktop_vcg_consistency"]
    with caplog.at_level(logging.WARNING, logger="sinktop_eval.benchmarks.judge"):
        results, _ = evaluate(task_manager, tasks)
    metrics = leaf_metrics(results)
    eh = metrics["sinktop_eventhallusion"]
    assert eh["binary_acc"] == 100.0 and eh["entire_binary_acc"] == 100.0
    for name in ("desc_acc", "overall_acc", "judge_failures", "entire_desc_acc"):
        assert math.isnan(eh[name]), name
    assert all(math.isnan(v) for v in metrics["sinktop_vcg_generic"].values())
    assert all(math.isnan(v) for v in metrics["sinktop_vcg_consistency"].values())
    warnings = [r for r in caplog.records if "no LLM judge configured" in r.getMessage()]
    assert len(warnings) == 1


def test_a_failing_judge_is_counted_not_dropped(task_manager, stub_judge, use_judge):
    stub = stub_judge(always_fail=True)
    use_judge(stub.url, retries=1, backoff=0.001)
    tasks = ["sinktop_eventhallusion", "sinktop_vcg_temporal", "sinktop_vcg_consistency"]
    results, _ = evaluate(task_manager, tasks)
    metrics = leaf_metrics(results)
    eh = metrics["sinktop_eventhallusion"]
    assert eh["desc_acc"] == 0.0 and eh["judge_failures"] == 6.0  # scored 0, counted, still in the mean
    assert eh["binary_acc"] == 100.0 and eh["overall_acc"] == pytest.approx(100.0 * 12 / 18)
    assert metrics["sinktop_vcg_temporal"] == {"tu": 0.0, "judge_failures": 2.0}
    assert metrics["sinktop_vcg_consistency"] == {"co": 0.0, "judge_failures": 2.0}
    assert stub.count == 2 * (6 + 2 + 2)  # every call tried twice (retries=1)
    samples = results["samples"]["sinktop_eventhallusion"]
    failed = [s["desc_acc"] for s in samples if isinstance(s["desc_acc"], dict)]
    assert len(failed) == 6 and all("HTTP 500" in f["judge_error"] for f in failed)
