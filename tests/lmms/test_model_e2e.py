"""The lmms-eval layer end to end: `SinktopModel` on the tiny twins through the real `simple_evaluate`,
every smoke task of every family, the judge served by a stub on 127.0.0.1."""
from __future__ import annotations

import math

import pytest

from sinktop_eval.lmms import SinktopModel
from sinktop_eval.runner.config import task_set

pytestmark = pytest.mark.slow
TWINS = ("tiny_qwen25vl", "tiny_llava_ov")
COMBINATIONS = [("dense", "off"), ("holitom", "on")]
SMOKE_TASKS = list(task_set("smoke").names)


@pytest.fixture(scope="module")
def twins():
    from sinktop_eval.backbones import load_backbone

    return {name: load_backbone(name) for name in TWINS}


def evaluate(model, tasks, task_manager, limit=None):
    from lmms_eval.evaluator import simple_evaluate

    return simple_evaluate(model=model, tasks=tasks, task_manager=task_manager, limit=limit, log_samples=True,
                           bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                           fewshot_random_seed=0)


def leaf_metrics(results):
    groups = {g for g, members in results["group_subtasks"].items() if members}
    return {task: {k.split(",")[0]: v for k, v in values.items() if "," in k and "_stderr" not in k}
            for task, values in results["results"].items() if task not in groups}


@pytest.mark.parametrize("pruner,stop", COMBINATIONS)
@pytest.mark.parametrize("backbone", TWINS)
def test_every_smoke_metric_is_numeric(backbone, pruner, stop, twins, task_manager, clean_task_env, stub_judge,
                                       use_judge, tmp_path):
    use_judge(stub_judge().url)
    model = SinktopModel(backbone=twins[backbone], pruner=pruner, stop=stop, ratio=0.1, frames=8,
                         max_new_tokens=8, records_path=str(tmp_path / "generations.jsonl"))
    results = evaluate(model, SMOKE_TASKS, task_manager)

    metrics = leaf_metrics(results)
    assert set(metrics) == set(SMOKE_TASKS)
    expected = {"binary_acc", "desc_acc", "overall_acc", "judge_failures", "activitynet_acc", "youcook2_acc",
                "ci", "do", "cu", "tu", "co", "acc"}
    assert expected <= {name for values in metrics.values() for name in values}
    for task, values in metrics.items():
        for name, value in values.items():
            if (task, name) == ("sinktop_argus", "hallucination_rate") and values["skipped_clips"] > 0:
                continue  # a twin's caption is one garbled word: no sentence to judge, so left out and counted
            assert isinstance(value, (int, float)) and math.isfinite(value), (task, name, value)
        if "judge_failures" in values:
            assert values["judge_failures"] == 0, task

    # one record per request, with the pruner's kept counts
    n_requests = sum(len(samples) for samples in results["samples"].values())
    assert len(model.records) >= n_requests > 0
    for record in model.records:
        assert 0 < record["kept_visual_tokens"] <= record["dense_visual_tokens"]
        if pruner == "dense":
            assert record["kept_visual_tokens"] == record["dense_visual_tokens"]
        else:
            assert record["kept_visual_tokens"] < 0.5 * record["dense_visual_tokens"]
            assert record["mu_s"] > 0 and record["mu_t"] > 0  # the paper's SToP setting for HoliTom
    assert model.describe()["stop"] == stop
