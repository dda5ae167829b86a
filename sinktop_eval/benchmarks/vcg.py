"""VideoChatGPT / VCGBench judging, shared by the local tasks (``sinktop_vcg_*``) and the lmms-eval
dataset variants (``sinktop_videochatgpt_*``).

Prompts and score reading are lmms-eval's (`lmms_eval.tasks.videochatgpt.utils`); only the transport is
ours (`sinktop_eval.benchmarks.judge`: the SDK's retries and timeout, the disk cache, the request family of
reasoning models). lmms-eval builds its judge messages inside the function that also posts them
(``get_eval_generic`` / ``get_eval_consistency``), so `generic_messages` runs a private copy of that
function whose ``requests`` is a stand-in that hands the payload back instead of posting it: lmms-eval's
module and its globals are never changed.

A reply is usable when lmms-eval's ``parse_score`` reads a score from it, i.e. its value agrees with the
score our regex finds in it (lmms-eval returns 0 for text it cannot read, which alone is indistinguishable
from a real 0). The score is lmms-eval's (an integer, as its averaging uses).

Per item, for every dimension: ``score`` (0 when the judgement failed: lmms-eval's rule), ``failed``
(1/0), ``release`` (the SToP release's value: the reply's number as a float, None when the item is
dropped: a failed judgement, and for Generic any failed one of its three judgements, as the release
scores the three in one try block). Without a judge every value is NaN.
"""
from __future__ import annotations

import functools
import importlib
import math
import os
import types
from pathlib import Path
from typing import Any

from . import common, judge

VCG_MODULE = "lmms_eval.tasks.videochatgpt.utils"
MAX_JUDGE_TOKENS = 64  # what lmms-eval's VCG tasks ask for
GENERIC_DIMENSIONS = {"ci": "correctness", "do": "detailed_orientation", "cu": "context"}
NAN = common.NAN


def lmms_vcg() -> types.ModuleType:
    """lmms-eval's videochatgpt utils (its import needs HF_HOME: HF's default is set when unset)."""
    os.environ.setdefault("HF_HOME", str(Path("~/.cache/huggingface").expanduser()))
    return importlib.import_module(VCG_MODULE)


class _Payload(BaseException):
    """Carries a request body out of lmms-eval's judge function (a BaseException: its ``except Exception``
    clauses must not swallow it)."""

    def __init__(self, payload: dict) -> None:
        super().__init__("captured")
        self.payload = payload


def _hand_back(url, headers=None, json=None, timeout=None):  # noqa: A002 - requests.post's keyword
    raise _Payload(json)


@functools.lru_cache(maxsize=None)
def _request_builder(name: str) -> types.FunctionType:
    """lmms-eval's ``name`` with its own code and a private copy of its globals in which ``requests.post``
    hands the payload back (written by hand: lmms-eval exposes its VCG prompts only inside this function)."""
    module = lmms_vcg()
    real = getattr(module, name)
    stand_in = types.SimpleNamespace(post=_hand_back, exceptions=module.requests.exceptions)
    namespace = {**vars(module), "requests": stand_in}
    return types.FunctionType(real.__code__, namespace, real.__name__, real.__defaults__, real.__closure__)


def _messages(name: str, *args: Any) -> list[dict]:
    try:
        _request_builder(name)(*args, MAX_JUDGE_TOKENS, retries=1)
    except _Payload as captured:
        return captured.payload["messages"]
    raise RuntimeError(f"lmms-eval's {name} sent no request; its VideoChatGPT judge code has changed")


def generic_messages(question: str, answer: str, prediction: str, dimension: str) -> list[dict]:
    """lmms-eval's judge messages for one answer (dimension: correctness, detailed_orientation, context, temporal)."""
    return _messages("get_eval_generic", question, answer, prediction, dimension)


def consistency_messages(question1: str, question2: str, answer: str, prediction1: str, prediction2: str) -> list[dict]:
    return _messages("get_eval_consistency", question1, question2, answer, prediction1, prediction2)


def read_score(text: str) -> float | None:
    """lmms-eval's score of a reply, or None when lmms-eval cannot read one from it."""
    found = judge.parse_score(text)
    if found is None:
        return None
    theirs = lmms_vcg().parse_score(text)
    return float(theirs) if theirs == int(found) else None


def judge_messages(messages: list[dict]) -> dict[str, Any]:
    """{"score", "failed", "release", "review", "judge_error", "judge_model"} of one judgement (NaN without a judge)."""
    config = judge.active_config()
    if not config.configured:
        judge.warn_no_judge()
        return {"score": NAN, "failed": NAN, "release": NAN, "review": None, "judge_error": "no judge"}
    reply = judge.get_client(config).chat(messages, max_tokens=MAX_JUDGE_TOKENS, parse=read_score)
    judged = {"review": reply.text, "judge_error": reply.error, "judge_model": config.model}
    if not reply.ok:
        return {"score": 0.0, "failed": 1.0, "release": None, **judged}
    return {"score": reply.value, "failed": 0.0, "release": judge.parse_score(reply.text), **judged}


def _prediction(results) -> str:
    return str(results[0]) if results else ""


def process_results_generic(doc, results):
    prediction = _prediction(results)
    item = {"video_name": doc["video_name"], "Q": doc["question"], "A": doc["answer"], "pred": prediction}
    judged = {name: {**item, **judge_messages(generic_messages(doc["question"], doc["answer"], prediction, dimension))}
              for name, dimension in GENERIC_DIMENSIONS.items()}
    if any(j["release"] is None for j in judged.values()):  # the release drops the item from all three
        for j in judged.values():
            j["release"] = None
    failed = [j["failed"] for j in judged.values()]
    return {**judged, **{f"{name}_release": j for name, j in judged.items()},
            "judge_failures": NAN if any(math.isnan(f) for f in failed) else float(sum(failed)),
            "skipped": doc.get(common.SKIPPED_FIELD, 0)}


def process_results_temporal(doc, results):
    prediction = _prediction(results)
    item = {"video_name": doc["video_name"], "Q": doc["question"], "A": doc["answer"], "pred": prediction,
            **judge_messages(generic_messages(doc["question"], doc["answer"], prediction, "temporal"))}
    return {"tu": item, "tu_release": item, "judge_failures": item["failed"],
            "skipped": doc.get(common.SKIPPED_FIELD, 0)}


def process_results_consistency(doc, results, full_docs=None):
    """One half of a pair (judged together in the aggregation, as lmms-eval does)."""
    prediction = _prediction(results)
    if doc["question_1"] != "None":
        item = {"video_name": doc["video_name"], "Q1": doc["question_1"], "A": doc["answer"], "pred1": prediction}
    else:
        item = {"video_name": doc["video_name"], "Q2": doc["question_2"], "A": doc["answer"], "pred2": prediction}
    return {"co": item, "co_release": item, "judge_failures": item, "skipped": doc.get(common.SKIPPED_FIELD, 0)}


def pair_consistency(items: list[dict]) -> list[dict]:
    """Join each video's question-1 row with its question-2 row (in order); unpaired rows are left out
    (lmms-eval pairs by video name)."""
    firsts: dict[str, list[dict]] = {}
    seconds: dict[str, list[dict]] = {}
    order: list[str] = []
    for item in items:
        name = item["video_name"]
        if name not in firsts:
            order.append(name)
            firsts[name], seconds[name] = [], []
        (firsts if "Q1" in item else seconds)[name].append(item)
    return [{**a, "Q2": b["Q2"], "pred2": b["pred2"]} for name in order for a, b in zip(firsts[name], seconds[name])]


def judged_pairs(items: list[dict]) -> list[dict]:
    """Every pair with its judgement; remembered per run (the task's three aggregations ask for the same)."""
    pairs = pair_consistency(items)
    config = judge.active_config()
    key = ("consistency", config.base_url, config.model, repr(pairs))
    if key not in common.MEMO:
        common.MEMO[key] = [{**pair, **judge_messages(consistency_messages(
            pair["Q1"], pair["Q2"], pair["A"], pair["pred1"], pair["pred2"]))} for pair in pairs]
    return common.MEMO[key]


def aggregate_consistency(items):
    return common.mean_judged(judged_pairs(items))


def aggregate_consistency_release(items):
    return common.mean_release(judged_pairs(items))


def aggregate_consistency_failures(items):
    return common.total([pair["failed"] for pair in judged_pairs(items)])
