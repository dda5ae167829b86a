"""Task protocols pinned on hand-made docs (issue 15): EventHallusion's referee prompts, verdicts and release
metrics, VCGBench's release means, generation settings, VideoComp's prompt, the MVBench 19/20 means, MLVU's
two averages, the Video-MME prompt, and the built-in variants."""
import collections
import importlib.util
import math

import pytest

from sinktop_eval.benchmarks import common, vcg
from sinktop_eval.benchmarks.variants import variant_config
from sinktop_eval.resources import TASKS_DIR

NAN = float("nan")


def task_utils(folder: str):
    spec = importlib.util.spec_from_file_location(f"{folder}_utils", TASKS_DIR / folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def eh():
    return task_utils("eventhallusion")


def eh_doc(split, **kw):
    event = {"interleave": "A tyre falls off."}.get(split, "A car drives along a road.")
    return {"split": split, "id": f"{split}_001", "kind": "description", "qid": f"{split}_001#desc",
            "caption": "A car drives along a road.", "unexpected": "A tyre falls off." if split == "interleave" else "",
            "answer": event, common.SKIPPED_FIELD: 0, **kw}


# --------------------------------------------------------------------------- EventHallusion


@pytest.mark.parametrize("split, label", [("entire", "Ground-truth event:"), ("interleave", "Unexpected event:"),
                                          ("misleading", "Ground-truth event:")])
def test_eventhallusion_referee_prompts_give_the_output_first_and_the_event_second(eh, stub_judge, use_judge, split,
                                                                                     label):
    stub = stub_judge()
    use_judge(stub.url)
    prediction = "The car drives, then a tyre falls off."
    out = eh.process_results(eh_doc(split), [prediction])
    messages = stub.requests[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    prompt = messages[1]["content"]
    assert prompt.endswith(f"{prediction}\n{label} {eh_doc(split)['answer']}")
    assert prompt.index(prediction) < prompt.index(label)
    assert "referee" in prompt and "first word" in prompt and "events and actions" in prompt
    assert out["desc_acc"]["verdict"] == "yes" and out[f"{split}_desc_acc"]["score"] == 100.0
    if split == "misleading":  # anything unrelated means no
        assert 'unrelated to the ground-truth event, answer "no"' in prompt
        assert out["desc_acc_release"] is None and stub.count == 1  # the release does not judge misleading
    if split == "entire":  # the release's judgement is the same request: one call
        assert out["desc_acc_release"]["release"] == 100.0 and stub.count == 1
    if split == "interleave":  # the release judges interleave against the caption: a second call
        assert stub.count == 2
        assert stub.requests[1]["messages"][1]["content"].endswith(f"{label} A car drives along a road.")
        assert out["judge_failures"] == 0.0


@pytest.mark.parametrize("reply, score, failed", [
    ("**Yes**, the events agree.", 100.0, 0.0), ("No. The tyre never falls off.", 0.0, 0.0),
    ("I cannot say yes or no", 0.0, 1.0),  # no verdict: scored 0, counted, not cached
])
def test_eventhallusion_verdicts_follow_the_official_rule(eh, stub_judge, use_judge, reply, score, failed):
    stub = stub_judge(reply=lambda body: reply)
    use_judge(stub.url)
    out = eh.process_results(eh_doc("entire"), ["A car drives."])
    assert (out["desc_acc"]["score"], out["desc_acc"]["failed"], out["judge_failures"]) == (score, failed, failed)


def test_eventhallusion_release_binary_rule_and_means(eh):
    assert eh.release_binary_correct("Yes, it does.", "Yes.") and eh.release_binary_correct("no.", "No.")
    assert not eh.release_binary_correct("Yes!", "Yes.")  # the release keeps "!" on its first token
    binary = 100.0
    judged = {"score": 0.0, "failed": 0.0}
    failed = {"score": 0.0, "failed": 1.0}
    # official: a failed judgement counts 0; all failed -> missing
    assert common.mean_judged([binary, {"score": 100.0, "failed": 0.0}, failed]) == pytest.approx(200 / 3)
    assert math.isnan(common.mean_judged([binary, failed, failed]))
    assert common.mean_judged([binary, None, 0.0]) == 50.0  # no judged part: an ordinary mean
    assert math.isnan(common.mean_judged([binary, {"score": NAN, "failed": NAN}]))  # no judge
    # release: failed judgements dropped; all failed -> missing
    assert common.mean_release([binary, {**judged, "release": 0.0}, {**failed, "release": None}]) == 50.0
    assert math.isnan(common.mean_release([binary, {**failed, "release": None}]))
    assert math.isnan(common.mean_release([binary, {"score": NAN, "failed": NAN, "release": NAN}]))


def test_eventhallusion_generation_is_uncut_with_the_paper_cap(task_manager):
    from lmms_eval.tasks import get_task_dict

    task = get_task_dict(["sinktop_eventhallusion"], task_manager)["sinktop_eventhallusion"]
    assert task.config.generation_kwargs["until"] == [] and task.config.generation_kwargs["max_new_tokens"] == 4096


# --------------------------------------------------------------------------- VCGBench


@pytest.mark.parametrize("task", ["sinktop_vcg_generic", "sinktop_vcg_temporal", "sinktop_vcg_consistency"])
def test_vcg_generation_is_uncut_with_the_paper_cap(task_manager, task):
    """issue 15.5: without until, lmms-eval adds ["\\n\\n"] and the answer keeps its first paragraph only."""
    from lmms_eval.tasks import get_task_dict

    built = get_task_dict([task], task_manager)[task]
    assert built.config.generation_kwargs["until"] == [] and built.config.generation_kwargs["max_new_tokens"] == 4096


def test_vcg_generic_release_drops_an_item_whose_any_judgement_failed(stub_judge, use_judge, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def reply(body):
        system = body["messages"][0]["content"]
        return "no idea" if ("detail orientation" in system and "Bad" in body["messages"][1]["content"]) \
            else "{'score': 4.8}"

    stub = stub_judge(reply=reply)
    use_judge(stub.url)
    good = vcg.process_results_generic({"video_name": "v", "question": "Q?", "answer": "A."}, ["Good answer."])
    bad = vcg.process_results_generic({"video_name": "v", "question": "Q?", "answer": "A."}, ["Bad answer."])
    assert (good["ci"]["score"], good["ci"]["release"]) == (4.0, 4.8)  # lmms-eval's int vs the release's float
    assert (bad["do"]["score"], bad["do"]["failed"], bad["judge_failures"]) == (0.0, 1.0, 1.0)
    assert bad["ci"]["score"] == 4.0 and bad["ci"]["release"] is None  # dropped from all three by the release
    assert common.mean_judged([good["ci"], bad["ci"]]) == 4.0 and common.mean_release([good["ci"], bad["ci"]]) == 4.8
    assert common.mean_judged([good["do"], bad["do"]]) == 2.0


def test_vcg_consistency_pairs_by_video_and_judges_each_pair_once(stub_judge, use_judge, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    stub = stub_judge()
    use_judge(stub.url)
    common.MEMO.clear()
    docs = [{"video_name": "v1", "question_1": "Where?", "question_2": "None", "answer": "Left."},
            {"video_name": "v2", "question_1": "What?", "question_2": "None", "answer": "A dog."},
            {"video_name": "v1", "question_1": "None", "question_2": "Which way?", "answer": "Left."}]
    items = [vcg.process_results_consistency(d, [f"pred {i}"])["co"] for i, d in enumerate(docs)]
    assert vcg.aggregate_consistency(items) == 4.0 and vcg.aggregate_consistency_release(items) == 4.0
    assert vcg.aggregate_consistency_failures(items) == 0.0
    assert stub.count == 1  # one pair (v2 has no partner), judged once for the three aggregations
    assert stub.requests[0]["messages"] == vcg.consistency_messages("Where?", "Which way?", "Left.", "pred 0", "pred 2")


@pytest.mark.parametrize("variant, builtin", [("sinktop_videochatgpt_gen", "videochatgpt_gen"),
                                              ("sinktop_videochatgpt_temporal", "videochatgpt_temporal"),
                                              ("sinktop_videochatgpt_consistency", "videochatgpt_consistency")])
def test_vcg_variants_keep_lmms_eval_data_and_prompts_and_use_our_judging(task_manager, variant, builtin):
    ours = variant_config(task_manager._get_config(variant))
    theirs = task_manager._get_config(builtin)
    for key in ("dataset_path", "dataset_name", "test_split", "doc_to_visual", "doc_to_text", "doc_to_target"):
        assert ours[key] == theirs[key] or ours[key].__name__ == theirs[key].__name__, key
    assert ours["task"] == variant and "class" not in ours and "builtin" not in ours
    assert ours["process_results"].__module__ == "sinktop_eval.benchmarks.vcg"
    assert {m["metric"] for m in ours["metric_list"]} >= {"judge_failures", "skipped"}
    assert ours["generation_kwargs"]["until"] == [] and ours["generation_kwargs"]["max_new_tokens"] == 4096


# --------------------------------------------------------------------------- VideoComp, MVBench, MLVU, Video-MME


def test_videocomp_sends_the_question_verbatim(task_manager):
    from lmms_eval.tasks import get_task_dict

    task = get_task_dict(["sinktop_videocomp_activitynet"], task_manager)["sinktop_videocomp_activitynet"]
    doc = next(iter(task.test_docs()))
    assert task.doc_to_text(doc) == doc["question"]


def test_mvbench_group_means_over_19_and_20_tasks(task_manager):
    """lmms-eval aggregates a group over every leaf below it: the 20-task mean includes the nested 19."""
    from lmms_eval.api.group import ConfigurableGroup
    from lmms_eval.api.task import Task
    from lmms_eval.evaluator_utils import consolidate_group_results

    leaf_class = type("Leaf", (Task,), {"task_name": property(lambda self: self.name)})
    leaf_class.__abstractmethods__ = frozenset()

    def leaf(name):
        task = object.__new__(leaf_class)
        task.name = name
        return task

    nineteen = task_manager._get_config("sinktop_mvbench19")["task"]
    accuracy = {name: 10.0 + i for i, name in enumerate(nineteen)} | {"mvbench_fine_grained_pose": 100.0}
    results = {name: {"mvbench_accuracy,none": value, "mvbench_accuracy_stderr,none": "N/A", "samples": 200,
                      "alias": name} for name, value in accuracy.items()}
    group19 = ConfigurableGroup(config=task_manager._get_config("sinktop_mvbench19"))
    group20 = ConfigurableGroup(config=task_manager._get_config("sinktop_mvbench"))
    task_dict = {group20: {group19: {name: leaf(name) for name in nineteen},
                           "mvbench_fine_grained_pose": leaf("mvbench_fine_grained_pose")}}
    results, *_ = consolidate_group_results(collections.defaultdict(dict, results), {}, task_dict)
    assert results["sinktop_mvbench19"]["mvbench_accuracy,none"] == pytest.approx(sum(10.0 + i for i in range(19)) / 19)
    assert results["sinktop_mvbench"]["mvbench_accuracy,none"] == pytest.approx(sum(accuracy.values()) / 20)


def test_mlvu_reports_the_mean_of_task_accuracies_and_the_pooled_accuracy(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from lmms_eval.tasks.mlvu.utils import mlvu_aggregate_results_dev

    mlvu = task_utils("mlvu")
    items = ([{"task_type": "count", "pred_answer": "A", "answer": "A"}] * 3
             + [{"task_type": "ego", "pred_answer": "B", "answer": "C"}])
    assert mlvu.pooled_accuracy(items) == 75.0  # 3 of 4 items
    assert mlvu_aggregate_results_dev(items) == pytest.approx(100.0 / 7)  # (100 + 0 + 5 empty tasks at 0) / 7
    out = mlvu.process_results({"question": "Q?\n(A) a\n(B) b", "task_type": "count", "answer": "B"}, ["B"])
    assert out["pooled_acc"] is out["mlvu_percetion_score"] and out["pooled_acc"]["pred_answer"] == "B"
    assert math.isnan(mlvu.pooled_accuracy([]))


def test_videomme_variant_has_the_official_prompt_and_lmms_eval_scoring(task_manager):
    config = variant_config(task_manager._get_config("sinktop_videomme"))
    doc = {"question": "How many apples are there?", "options": ["A. 3.", "B. 5.", "C. 8.", "D. 9."]}
    assert config["doc_to_text"](doc) == (
        "Select the best answer to the following multiple-choice question based on the video. Respond with only "
        "the letter (A, B, C, or D) of the correct option.\nHow many apples are there?\nA. 3.\nB. 5.\nC. 8.\nD. 9.\n"
        "The best answer is:")
    assert "subtitles" not in config["doc_to_text"](doc)
    builtin = task_manager._get_config("videomme")
    assert config["process_results"].__name__ == builtin["process_results"].__name__ == "videomme_process_results"
    assert config["dataset_path"] == builtin["dataset_path"] and config["task"] == "sinktop_videomme"
    assert [m["metric"] for m in config["metric_list"]] == ["videomme_perception_score"]
