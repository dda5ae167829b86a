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
    assert eh["desc_acc_release"] == eh["overall_acc_release"] == 100.0 and eh["skipped"] == 0
    assert {eh[f"{s}_{k}_acc"] for s in ("entire", "interleave", "misleading") for k in ("binary", "desc")} == {100.0}
    assert metrics["sinktop_videocomp_activitynet"] == {"activitynet_acc": 100.0, "skipped": 0}
    assert metrics["sinktop_videocomp_youcook2"] == {"youcook2_acc": 100.0, "skipped": 0}
    assert metrics["sinktop_vcg_generic"] == {"ci": 4.0, "do": 4.0, "cu": 4.0, "ci_release": 4.0, "do_release": 4.0,
                                              "cu_release": 4.0, "judge_failures": 0.0, "skipped": 0}
    assert metrics["sinktop_vcg_temporal"] == {"tu": 4.0, "tu_release": 4.0, "judge_failures": 0.0, "skipped": 0}
    assert metrics["sinktop_vcg_consistency"] == {"co": 4.0, "co_release": 4.0, "judge_failures": 0.0, "skipped": 0}
    assert metrics["sinktop_mvbench_local"] == {"acc": 100.0, "skipped": 0}
    assert metrics["sinktop_argus"] == {"hallucination_rate": 0.0, "omission_rate": 0.0, "skipped_clips": 0.0,
                                        "judge_failures": 0.0, "skipped": 0}
    # windows reached the model in seconds; every request had a video
    windows = [v for task, v in model.visuals if isinstance(v, dict)]
    assert windows and all(0 <= w["start"] < w["end"] <= 4.0 for w in windows)
    assert {t for t, v in model.visuals if isinstance(v, dict)} == {
        "sinktop_videocomp_activitynet", "sinktop_videocomp_youcook2", "sinktop_mvbench_local"}
    assert len(results["samples"]["sinktop_eventhallusion"]) == 18
    # judge traffic: 6 EH descriptions + the release's 2 interleave ones (against the caption; entire's is
    # the same request, a cache hit) + 4 x 3 generic + 2 temporal + 2 consistency pairs + 3 Argus clips (a caption
    # equal to the human one makes its two judgements the same prompt: the second comes from the judge cache)
    assert stub.count == 6 + 2 + 12 + 2 + 2 + 3
    interleave = [b for b in stub.requests if "Unexpected event:" in b["messages"][-1]["content"]]
    assert len(interleave) == 4  # each interleave description: against its unexpected event, then its caption
    # the runner's results rows take this output as is
    from sinktop_eval.results import results_rows

    rows = results_rows({"run_id": "t"}, results, [])
    rows = rows[~rows["metric"].str.contains("_stderr")]
    assert rows["value"].notna().all() and len(rows) == sum(len(v) for v in metrics.values())
    assert (rows["skipped"] == 0).all()


def test_rescoring_with_a_warm_cache_makes_no_judge_call(task_manager, stub_judge, use_judge):
    """issue 11.3: a second scoring of the same answers (what rescore=true does) is served from the cache."""
    stub = stub_judge()
    use_judge(stub.url)
    tasks = ["sinktop_eventhallusion", "sinktop_vcg_generic", "sinktop_vcg_temporal", "sinktop_vcg_consistency"]
    first, _ = evaluate(task_manager, tasks)
    calls = stub.count
    assert calls == 8 + 12 + 2 + 2
    second, _ = evaluate(task_manager, tasks)
    assert stub.count == calls  # zero requests
    assert leaf_metrics(second) == leaf_metrics(first)


def test_without_a_judge_judge_metrics_are_missing_with_one_warning(task_manager, caplog):
    tasks = ["sinktop_eventhallusion", "sinktop_vcg_generic", "sinktop_vcg_consistency"]
    with caplog.at_level(logging.WARNING, logger="sinktop_eval.benchmarks.judge"):
        results, _ = evaluate(task_manager, tasks)
    metrics = leaf_metrics(results)
    eh = metrics["sinktop_eventhallusion"]
    assert eh["binary_acc"] == 100.0 and eh["entire_binary_acc"] == 100.0
    for name in ("desc_acc", "overall_acc", "judge_failures", "entire_desc_acc", "desc_acc_release",
                 "overall_acc_release"):
        assert math.isnan(eh[name]), name
    for task in ("sinktop_vcg_generic", "sinktop_vcg_consistency"):
        assert all(math.isnan(v) for k, v in metrics[task].items() if k != "skipped"), task
    warnings = [r for r in caplog.records if "no LLM judge configured" in r.getMessage()]
    assert len(warnings) == 1


def test_a_judge_that_always_fails_gives_missing_metrics_and_counts_the_failures(task_manager, stub_judge, use_judge):
    """issue 11.4: nothing was measured, so no 0.00 that reads as measured; judge_failures says why."""
    stub = stub_judge(always_fail=True)
    use_judge(stub.url, retries=0)
    tasks = ["sinktop_eventhallusion", "sinktop_vcg_temporal", "sinktop_vcg_consistency"]
    results, _ = evaluate(task_manager, tasks)
    metrics = leaf_metrics(results)
    eh = metrics["sinktop_eventhallusion"]
    for name in ("desc_acc", "overall_acc", "entire_desc_acc", "desc_acc_release", "overall_acc_release"):
        assert math.isnan(eh[name]), name
    assert eh["judge_failures"] == 6 + 2 and eh["binary_acc"] == 100.0  # the binary part is still measured
    assert math.isnan(metrics["sinktop_vcg_temporal"]["tu"]) and metrics["sinktop_vcg_temporal"]["judge_failures"] == 2
    assert math.isnan(metrics["sinktop_vcg_consistency"]["co"])
    assert metrics["sinktop_vcg_consistency"]["judge_failures"] == 2
    assert stub.count == 8 + 2 + 2  # retries=0: one request per judgement
    samples = results["samples"]["sinktop_eventhallusion"]
    failed = [s["desc_acc"] for s in samples if isinstance(s["desc_acc"], dict)]
    assert len(failed) == 6 and all("HTTP 500" in f["judge_error"] for f in failed)


def test_partial_judge_failures_score_0_and_the_release_mean_drops_them(task_manager, stub_judge, use_judge):
    """Unusable HTTP-200 replies are failures: 0 in lmms-eval's mean (counted), left out of the release's."""
    def reply(body):
        text = body["messages"][-1]["content"]
        if "score" not in text.lower():  # EventHallusion: "no verdict" for every interleave description
            return "Hard to tell." if "Unexpected event:" in text else "Yes, consistent."
        return "{'score': 4}" if "moves" in text.split("Predicted Answer")[1] else "I refuse."

    stub = stub_judge(reply=reply)
    use_judge(stub.url)
    results, _ = evaluate(task_manager, ["sinktop_eventhallusion", "sinktop_vcg_temporal"])
    metrics = leaf_metrics(results)
    eh = metrics["sinktop_eventhallusion"]
    assert eh["entire_desc_acc"] == eh["misleading_desc_acc"] == 100.0
    assert math.isnan(eh["interleave_desc_acc"])  # every judgement of that split failed: not measured
    assert eh["desc_acc"] == pytest.approx(100.0 * 4 / 6) and eh["judge_failures"] == 2 + 2
    assert eh["desc_acc_release"] == 100.0  # entire only: the interleave judgements failed
    assert eh["overall_acc_release"] == 100.0  # 12 binary + 2 entire descriptions, all correct
    tu = metrics["sinktop_vcg_temporal"]
    predictions = [s["tu"]["pred"] for s in results["samples"]["sinktop_vcg_temporal"]]
    good = sum("moves" in p for p in predictions)
    assert 0 < good < len(predictions)  # the smoke answers give one of each
    assert tu["tu"] == pytest.approx(4.0 * good / len(predictions)) and tu["tu_release"] == 4.0
    assert tu["judge_failures"] == len(predictions) - good
