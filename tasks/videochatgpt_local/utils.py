"""VideoChatGPT / VCGBench (generic, temporal, consistency) from a local copy of lmms-lab/VideoChatGPT.

    <dir>/{Generic,Temporal,Consistency}/*.parquet      <dir>/Test_Videos/<video_name>.{mp4,MP4,mkv,avi,mov}

<dir> is $SINKTOP_VIDEOCHATGPT_DIR, else $SINKTOP_DATA_ROOT/VideoChatGPT (builtin:smoke: the synthetic copy).
Prompts and judging are lmms-eval's own videochatgpt code (`lmms_eval.tasks.videochatgpt.utils`: its
doc_to_text, its judge prompts and HTTP calls in get_eval_generic / get_eval_consistency, its
score averaging), pointed at our judge (`sinktop_eval.judge`: the module's URL / key / model / retry
sleep are set from it before each call, the same values `export_vcg_env` exports). What differs from
the built-in tasks: data and videos come from the folder above; a missing video is an error naming
the file (not ``sys.exit``); judge replies are parsed by regex (no literal_eval); a judge failure
scores 0 like lmms-eval but is also counted in ``judge_failures``; without a judge the scores are NaN.

Metrics (0-5, the paper's names): generic -> ci (correctness), do (detail orientation), cu (context);
temporal -> tu; consistency -> co (one judge call per question pair, paired by video_name; an unpaired
row is skipped, as lmms-eval does). Each task also reports judge_failures (a count).
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import math
import os
from pathlib import Path

from sinktop_eval.benchmarks import common, judge

BENCHMARK = "VideoChatGPT"
ENV_VAR = "SINKTOP_VIDEOCHATGPT_DIR"
CONFIGS = ("Generic", "Temporal", "Consistency")
GENERIC_DIMENSIONS = {"ci": "correctness", "do": "detailed_orientation", "cu": "context"}
MAX_JUDGE_TOKENS = 64  # what lmms-eval's VCG tasks ask for
NAN = common.NAN


def vcg():
    """lmms-eval's videochatgpt utils, pointed at our judge. (Its import needs HF_HOME; HF's default is used.)"""
    os.environ.setdefault("HF_HOME", str(Path("~/.cache/huggingface").expanduser()))
    module = importlib.import_module(judge.VCG_MODULE)
    judge.sync_vcg_module(module)
    return module


# --------------------------------------------------------------------------- loading


def load_docs(base: Path, how: str, config: str) -> list[dict]:
    import pandas as pd

    folder = base / config
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        raise common.data_error(BENCHMARK, folder / "test-00000-of-00001.parquet", ENV_VAR, how)
    try:
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    except Exception as err:  # noqa: BLE001 - a broken parquet is a data problem
        raise common.DataRootError(f"{BENCHMARK} {config} parquet under {folder} is unreadable ({err})") from None
    docs = []
    for row in frame.to_dict(orient="records"):
        doc = {k: ("None" if v is None else str(v)) for k, v in row.items()}
        candidates = [base / "Test_Videos" / f"{doc['video_name']}{ext}" for ext in common.VIDEO_EXTENSIONS]
        doc["video"] = str(common.first_existing(candidates) or candidates[0])
        docs.append(doc)
    return common.check_videos(docs, f"{BENCHMARK} {config}", base / "Test_Videos", ENV_VAR)


def _new_run() -> None:
    judge.new_run()
    common.MEMO.clear()  # consistency judgements are remembered within one run only


generic_docs, temporal_docs, consistency_docs = (
    common.docs_of(functools.partial(load_docs, config=config), BENCHMARK, ENV_VAR, on_build=_new_run)
    for config in CONFIGS)


# --------------------------------------------------------------------------- prompting (lmms-eval's)


def doc_to_visual(doc):
    return [common.checked_video(doc["video"], f"{BENCHMARK} {doc['video_name']}")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return vcg().videochatgpt_doc_to_text(doc, lmms_eval_specific_kwargs)


def doc_to_text_consistency(doc, lmms_eval_specific_kwargs=None):
    return vcg().videochatgpt_doc_to_text_consistency(doc, lmms_eval_specific_kwargs)


def doc_to_target(doc):
    return doc["answer"]


# --------------------------------------------------------------------------- scoring


def _judged(review: str | None) -> tuple[float, float]:
    """(score, failed) from a judge reply: an unusable reply scores 0 and counts as a failure."""
    score = judge.parse_score(review)
    return (0.0, 1.0) if score is None else (score, 0.0)


def _score_one(doc, prediction: str, dimension: str) -> dict:
    item = {"video_name": doc["video_name"], "Q": doc["question"], "A": doc["answer"], "pred": prediction}
    config = judge.active_config()
    if not config.configured:
        judge.warn_no_judge()
        return {**item, "score": NAN, "failed": NAN, "review": None}
    review, _ = vcg().get_eval_generic(doc["question"], doc["answer"], prediction, dimension, MAX_JUDGE_TOKENS,
                                       retries=config.retries + 1)
    score, failed = _judged(review)
    return {**item, "score": score, "failed": failed, "review": review}


def process_results_generic(doc, results):
    prediction = str(results[0]) if results else ""
    out = {name: _score_one(doc, prediction, dimension) for name, dimension in GENERIC_DIMENSIONS.items()}
    failed = [o["failed"] for o in out.values()]
    out["judge_failures"] = NAN if any(math.isnan(f) for f in failed) else float(sum(failed))
    return out


def process_results_temporal(doc, results):
    prediction = str(results[0]) if results else ""
    item = _score_one(doc, prediction, "temporal")
    return {"tu": item, "judge_failures": item["failed"]}


def process_results_consistency(doc, results):
    prediction = str(results[0]) if results else ""
    if doc["question_1"] != "None":
        item = {"video_name": doc["video_name"], "Q1": doc["question_1"], "A": doc["answer"], "pred1": prediction}
    else:
        item = {"video_name": doc["video_name"], "Q2": doc["question_2"], "A": doc["answer"], "pred2": prediction}
    return {"co": item, "judge_failures": item}


def pair_consistency(items: list[dict]) -> list[dict]:
    """Join each video's question-1 row with its question-2 row (in order); unpaired rows are left out."""
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


def _judge_pairs(items: list[dict]) -> tuple[float, float]:
    """(mean consistency score, failures), computed once per set of items (both aggregations ask)."""
    config = judge.active_config()
    if not config.configured:
        judge.warn_no_judge()
        return NAN, NAN
    pairs = pair_consistency(items)
    if not pairs:
        return NAN, NAN
    key = hashlib.sha256(json.dumps([config.endpoint, config.model, pairs], sort_keys=True).encode()).hexdigest()
    if key not in common.MEMO:
        module = vcg()
        scores, failures = [], 0.0
        for pair in pairs:
            review, _ = module.get_eval_consistency(pair["Q1"], pair["Q2"], pair["A"], pair["pred1"], pair["pred2"],
                                                    MAX_JUDGE_TOKENS, retries=config.retries + 1)
            score, failed = _judged(review)
            scores.append(score)
            failures += failed
        common.MEMO[key] = (sum(scores) / len(scores), failures)
    return common.MEMO[key]


def aggregate_consistency(items):
    return _judge_pairs(items)[0]


def aggregate_consistency_failures(items):
    return _judge_pairs(items)[1]


def aggregate_score(items, args=None):
    """lmms-eval's own VCG average (NaN stays NaN: no judge)."""
    return vcg().videochatgpt_aggregate_score(items, args)


total = common.total
