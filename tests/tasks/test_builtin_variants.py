"""NExT-QA and LongVideoBench: thin variants of lmms-eval's built-ins with our answer reader.

Their data cannot be fetched here (no hub), so the built-ins and our variants are built by lmms-eval's real
TaskManager over a hand-made dataset standing in for the download: same data source, same prompt, same
videos; only the scoring differs, and a reply the built-in would settle with a random letter scores 0.
"""
from __future__ import annotations

import math

import datasets
import pytest
from lmms_eval.api.task import ConfigurableTask

from sinktop_eval.runner.config import task_set

VARIANTS = {"sinktop_nextqa_mc_test": "nextqa_mc_test", "sinktop_longvideobench_val_v": "longvideobench_val_v"}
# the keys where a variant may differ from its built-in
OURS = {"task", "process_results", "metric_list", "metadata"}

NEXTQA_DOC = {"video": "4010069381", "frame_count": 1000, "width": 640, "height": 480, "qid": 7, "type": "CW",
              "question": "why did the boy clap his hands", "a0": "to dance", "a1": "he is happy",
              "a2": "to call the dog", "a3": "the music ended", "a4": "it is cold", "answer": 1}
LVB_DOC = {"video_id": "abc", "video_path": "abc.mp4", "subtitle_path": "abc_en.json", "duration": 95.0,
           "duration_group": 60, "starting_timestamp_for_subtitles": 0.0, "question_category": "E2O", "id": "abc_0",
           "question": "What does the woman hold when she enters?", "option0": "a red umbrella",
           "option1": "a cup of coffee", "option2": "a leather bag", "option3": "a newspaper", "option4": "N/A",
           "correct_choice": 2, "level": "L1-Perception", "topic_category": "NP-News-Programs"}
DOCS = {"nextqa_mc_test": NEXTQA_DOC, "longvideobench_val_v": LVB_DOC}


@pytest.fixture(scope="session")
def hf_root(tmp_path_factory):
    """One HF_HOME for the session: the built-ins' utils fix their video folders from it when first imported."""
    root = tmp_path_factory.mktemp("hf_home")
    video = root / "nextqa" / "NExTVideo" / f"{NEXTQA_DOC['video']}.mp4"  # NExT-QA's doc_to_visual checks it exists
    video.parent.mkdir(parents=True)
    video.write_bytes(b"")
    return root


@pytest.fixture
def hf_home(monkeypatch, hf_root):
    monkeypatch.setenv("HF_HOME", str(hf_root))
    try:  # NExT-QA's utils fetch NLTK data from GitHub whenever they load: not in the tests
        import nltk

        monkeypatch.setattr(nltk, "download", lambda *args, **kwargs: True)
    except ImportError:
        pass
    return hf_root


@pytest.fixture
def offline_download(monkeypatch):
    """Replace the hub download by a one-doc dataset of the built-in's columns; record what was asked for."""
    asked = {}

    def download(self, dataset_kwargs=None):
        base = next(b for b in DOCS if self.config.task in (b, f"sinktop_{b}"))
        asked[self.config.task] = (self.DATASET_PATH, getattr(self, "DATASET_NAME", None), dataset_kwargs,
                                   self.config.test_split)
        self.dataset = datasets.DatasetDict({self.config.test_split: datasets.Dataset.from_list([DOCS[base]])})

    monkeypatch.setattr(ConfigurableTask, "download", download)
    return asked


def code_of(value):
    """Functions by their code (the same function loaded as two module objects), anything else as is."""
    code = getattr(value, "__code__", None)
    return (code.co_filename, code.co_qualname) if code else value


def test_the_mcqa_set_maps_the_benchmark_ids_to_the_variants(task_manager):
    benchmarks = task_set("mcqa").benchmarks
    assert benchmarks["nextqa"] == ("sinktop_nextqa_mc_test",)
    assert benchmarks["longvideobench"] == ("sinktop_longvideobench_val_v",)
    for ours in VARIANTS:
        assert task_manager.task_index[ours]["type"] == "task"


@pytest.mark.parametrize("ours, builtin", VARIANTS.items())
def test_config_is_the_builtins_but_for_the_scoring(ours, builtin, task_manager, hf_home):
    mine, theirs = task_manager._get_config(ours), task_manager._get_config(builtin)
    assert set(mine) - OURS == set(theirs) - OURS
    for key in set(theirs) - OURS:
        assert code_of(mine[key]) == code_of(theirs[key]), key
    assert [m["metric"] for m in mine["metric_list"]] == ["acc"]
    assert mine["metric_list"][0]["higher_is_better"] is True
    assert code_of(mine["process_results"]) != code_of(theirs["process_results"])


@pytest.mark.parametrize("ours, builtin", VARIANTS.items())
def test_built_tasks_read_the_same_data_and_ask_the_same_prompt(ours, builtin, task_manager, hf_home,
                                                                offline_download):
    from lmms_eval.tasks import get_task_dict

    tasks = get_task_dict([ours, builtin], task_manager)
    assert offline_download[ours] == offline_download[builtin]
    doc = DOCS[builtin]
    mine, theirs = tasks[ours], tasks[builtin]
    assert mine.doc_to_text(doc) == theirs.doc_to_text(doc)
    assert mine.doc_to_visual(doc) == theirs.doc_to_visual(doc)
    assert str(mine.doc_to_visual(doc)[0]).startswith(str(hf_home))
    assert mine.config.generation_kwargs == theirs.config.generation_kwargs


def test_nextqa_prompt_and_hub_source(task_manager, hf_home, offline_download):
    from lmms_eval.tasks import get_task_dict

    task = get_task_dict(["sinktop_nextqa_mc_test"], task_manager)["sinktop_nextqa_mc_test"]
    assert offline_download["sinktop_nextqa_mc_test"][:2] == ("lmms-eval/NExTQA", "MC")
    assert task.doc_to_text(NEXTQA_DOC).splitlines() == [
        "why did the boy clap his hands", "A. to dance", "B. he is happy", "C. to call the dog",
        "D. the music ended", "E. it is cold"]


class GuessSpy:
    """Stands in for the built-in module's `random`: records that the built-in had to guess."""

    def __init__(self):
        self.guesses = 0

    def choice(self, seq):
        self.guesses += 1
        return seq[0]


def builtin_module(name: str):
    import importlib

    return importlib.import_module(f"lmms_eval.tasks.{name}.utils")


def variant(folder: str):
    import importlib

    return importlib.import_module(f"sinktop_eval.tasks.{folder}.utils")


@pytest.mark.parametrize("reply, parsed, score", [
    ("B", "B", 100.0), ("(b) he is happy", "B", 100.0), ("The answer is B.", "B", 100.0), ("he is happy", "B", 100.0),
    ("C. to call the dog", "C", 0.0),
    ("A and C both fit", None, 0.0),  # two options: no answer, not the last one mentioned
    ("I cannot tell from this video what the boy is doing.", None, 0.0),  # the built-in guesses here
    ("", None, 0.0),
])
def test_nextqa_scores_the_reply_deterministically(reply, parsed, score, hf_home):
    out = variant("nextqa").process_results(NEXTQA_DOC, [reply])
    assert out == {"acc": {"score": score, "parsed": parsed, "answer": "B"}}


def test_nextqa_reply_the_builtin_randomises_scores_as_no_answer(hf_home, monkeypatch):
    reply = "I cannot tell from this video what the boy is doing."
    spy = GuessSpy()
    builtin = builtin_module("nextqa")
    monkeypatch.setattr(builtin, "random", spy)
    builtin.nextqa_mc_process_results(NEXTQA_DOC, [reply])
    assert spy.guesses == 1  # lmms-eval's scorer had to draw a letter
    out = variant("nextqa").process_results(NEXTQA_DOC, [reply])["acc"]
    assert out["parsed"] is None and out["score"] == 0.0
    assert [variant("nextqa").process_results(NEXTQA_DOC, [reply])["acc"] for _ in range(3)] == [out] * 3


@pytest.mark.parametrize("reply, parsed, score", [
    ("C", "C", 100.0), ("The best answer is (C).", "C", 100.0), ("a leather bag", "C", 100.0),
    ("A man walks in with a leather bag.", "C", 100.0),  # the built-in reads the article as option A
    ("B. a cup of coffee", "B", 0.0),
    ("E", None, 0.0),  # option4 is "N/A": not shown, not an answer
    ("There is no way to determine what she is carrying from these frames at all.", None, 0.0),
])
def test_longvideobench_scores_the_reply_deterministically(reply, parsed, score, hf_home):
    out = variant("longvideobench").process_results(LVB_DOC, [reply])
    assert out == {"acc": {"score": score, "parsed": parsed, "answer": "C"}}


def test_longvideobench_reply_the_builtin_randomises_scores_as_no_answer(hf_home, monkeypatch):
    reply = "There is no way to determine what she is carrying from these frames at all."
    spy = GuessSpy()
    builtin = builtin_module("longvideobench")
    monkeypatch.setattr(builtin, "random", spy)
    builtin.longvideobench_process_results(LVB_DOC, [reply])
    assert spy.guesses == 1
    assert variant("longvideobench").process_results(LVB_DOC, [reply])["acc"]["parsed"] is None
    # where the built-in reads the article "A" as an answer, ours reads the option text
    assert builtin.longvideobench_process_results(LVB_DOC, ["A man walks in with a leather bag."])[
        "lvb_acc"]["parsed_pred"] == "A"


def test_longvideobench_letters_follow_the_shown_options(hf_home):
    doc = {**LVB_DOC, "option1": "N/A", "option4": "a phone", "correct_choice": 4}  # shown: 0, 2, 3, 4 -> A..D
    utils = variant("longvideobench")
    assert utils.process_results(doc, ["D"])["acc"] == {"score": 100.0, "parsed": "D", "answer": "D"}
    broken = {**LVB_DOC, "correct_choice": 4}  # the answer is the hidden "N/A": unscorable, not wrong
    assert math.isnan(utils.process_results(broken, ["A"])["acc"]["score"])


def test_accuracy_is_a_percentage_over_the_scored_docs(hf_home):
    utils = variant("nextqa")
    items = [utils.process_results(NEXTQA_DOC, [r])["acc"] for r in ("B", "C", "no idea", "he is happy")]
    assert utils.mean_scored(items) == 50.0
