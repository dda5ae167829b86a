"""VideoChatGPT / VCGBench (generic, temporal, consistency) from a local copy of lmms-lab/VideoChatGPT.

    <dir>/{Generic,Temporal,Consistency}/*.parquet      <dir>/Test_Videos/<video_name>.{mp4,MP4,mkv,avi,mov}

<dir> is $SINKTOP_VIDEOCHATGPT_DIR, else $SINKTOP_DATA_ROOT/VideoChatGPT (builtin:smoke: the synthetic copy).
Prompts, judge prompts and score reading are lmms-eval's (`lmms_eval.tasks.videochatgpt.utils`), sent
through our judge client (`sinktop_eval.benchmarks.vcg`, shared with the ``sinktop_videochatgpt_*``
tasks that read lmms-eval's HF copy). What differs from lmms-eval's built-in tasks: data and videos come
from the folder above; a missing video is an error naming the file (not ``sys.exit``); a failed
judgement scores 0 as in lmms-eval and is also counted in ``judge_failures`` (all failed: NaN); without
a judge the scores are NaN.

Metrics (0-5, the paper's names): generic -> ci (correctness), do (detail orientation), cu (context);
temporal -> tu; consistency -> co (one judge call per question pair, paired by video_name; an unpaired
row is left out, as lmms-eval does). Each also as ``<name>_release`` (the SToP release's mean over the
judgements that succeeded), plus judge_failures and skipped (counts).
"""
from __future__ import annotations

import functools
from pathlib import Path

from sinktop_eval.benchmarks import common, judge, vcg

BENCHMARK = "VideoChatGPT"
ENV_VAR = "SINKTOP_VIDEOCHATGPT_DIR"
CONFIGS = ("Generic", "Temporal", "Consistency")
NAN = common.NAN


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
    return vcg.lmms_vcg().videochatgpt_doc_to_text(doc, lmms_eval_specific_kwargs)


def doc_to_text_consistency(doc, lmms_eval_specific_kwargs=None):
    return vcg.lmms_vcg().videochatgpt_doc_to_text_consistency(doc, lmms_eval_specific_kwargs)


def doc_to_target(doc):
    return doc["answer"]


# --------------------------------------------------------------------------- scoring (shared with the HF variants)

process_results_generic = vcg.process_results_generic
process_results_temporal = vcg.process_results_temporal
process_results_consistency = vcg.process_results_consistency
aggregate_consistency = vcg.aggregate_consistency
aggregate_consistency_release = vcg.aggregate_consistency_release
aggregate_consistency_failures = vcg.aggregate_consistency_failures
mean_judged = common.mean_judged
mean_release = common.mean_release
total = common.total
skipped = common.skipped
