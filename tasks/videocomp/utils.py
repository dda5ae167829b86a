"""VideoComp (ActivityNet-Comp, YouCook2-Comp) multiple choice, in SToP's local layout of the release.

    <dir>/activitynet_comp_val.json     <dir>/activitynet_video/v_<video_id>.{mp4,mkv,webm}
    <dir>/youcook2_comp_val.json        <dir>/raw_videos/video/<video_id>.{mp4,mkv,webm}

<dir> is $SINKTOP_VIDEOCOMP_DIR, else $SINKTOP_DATA_ROOT/VideoComp (builtin:smoke: the synthetic copy). A video
not at those paths is looked up by file name anywhere below activitynet_video/ or raw_videos/.

Each item is shown only its query window: ``query_video/start_time`` .. ``query_video/end_time``, stored
in microseconds (divided by common.MICROSECONDS_PER_SECOND; SToP reads them the same way) and taken as absolute
times in the video. ``doc_to_visual`` returns ``[{"path", "start", "end"}]`` (seconds).
The prompt is the item's ``question`` verbatim (it lists the options, "(A) ... (B) ..."), as both the
official evaluation and the SToP release send it; a reply is read by
`sinktop_eval.benchmarks.answers.parse_choice` (letter or option text) and is correct when it picks
``answer``. Metrics: <source>_acc (percent), one task per source; skipped (items left out for a bad video).

The SToP release samples its frames over the whole video instead of the query window (its LLaVA loader
is never given the window); a release-style accuracy would need a second generation per item, so it is
documented (tasks/README.md), not computed.
"""
from __future__ import annotations

import functools
import math
import re
from pathlib import Path

from sinktop_eval.benchmarks import common
from sinktop_eval.benchmarks.answers import answer_letter, parse_choice

BENCHMARK = "VideoComp"
ENV_VAR = "SINKTOP_VIDEOCOMP_DIR"
START_KEY, END_KEY = "query_video/start_time", "query_video/end_time"
SOURCES = {
    "activitynet": {"annotations": "activitynet_comp_val.json", "folder": "activitynet_video", "direct": "activitynet_video",
                    "prefix": "v_"},
    "youcook2": {"annotations": "youcook2_comp_val.json", "folder": "raw_videos", "direct": "raw_videos/video",
                 "prefix": ""},
}
_OPTION = re.compile(r"\(([A-Z])\)\s*(.*?)(?=\s*\([A-Z]\)\s|\s*$)", re.DOTALL)
_OPTION_LINE = re.compile(r"^\s*([A-Z])[.)]\s+(.+?)\s*$", re.MULTILINE)
NAN = common.NAN


def parse_options(question: str) -> list[str]:
    """The option texts listed in a question, in letter order: "(A) ... (B) ..." inline, or one per line as
    "A. ..." / "A) ..."; [] when the question lists none (replies are then read as letters only)."""
    for pattern in (_OPTION, _OPTION_LINE):
        found = {letter: text.strip() for letter, text in pattern.findall(question or "")}
        letters = [chr(ord("A") + i) for i in range(len(found))]
        if len(found) >= 2 and all(letter in found for letter in letters):
            return [found[letter] for letter in letters]
    return []


def _video_index(folder: Path) -> dict[str, Path]:
    """File stem -> path for every video below ``folder`` (fallback lookup, built once per load)."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.rglob("*")) if p.suffix in common.VIDEO_EXTENSIONS and p.is_file()}


def _video_path(base: Path, source: str, video_id: str, index: dict | None) -> tuple[Path, dict | None]:
    spec = SOURCES[source]
    stems = [video_id] if video_id.startswith(spec["prefix"]) else [spec["prefix"] + video_id, video_id]
    candidates = [base / spec["direct"] / f"{stem}{ext}" for stem in stems for ext in common.VIDEO_EXTENSIONS]
    found = common.first_existing(candidates)
    if found is None:
        index = _video_index(base / spec["folder"]) if index is None else index
        found = next((index[s] for s in stems if s in index), None)
    return (found or candidates[0]), index


def _seconds(value) -> float:
    try:
        return float(value) / common.MICROSECONDS_PER_SECOND
    except (TypeError, ValueError):
        return NAN


def load_docs(base: Path, how: str, source: str) -> list[dict]:
    spec = SOURCES[source]
    records = common.read_json(base / spec["annotations"], BENCHMARK, ENV_VAR, how)
    if not isinstance(records, list):
        raise common.DataRootError(f"{BENCHMARK} annotation file {base / spec['annotations']} is not a JSON list")
    docs, index = [], None
    for i, record in enumerate(records):
        try:
            doc, index = _record_doc(base, source, record, index)
        except (KeyError, TypeError, AttributeError) as err:
            raise common.malformed(base / spec["annotations"], i, err) from None
        docs.append(doc)
    return common.check_videos(docs, f"{BENCHMARK} {source}", base / spec["folder"], ENV_VAR)


def _record_doc(base: Path, source: str, record: dict, index: dict | None) -> tuple[dict, dict | None]:
    video_id = str(record["video_id"])
    video, index = _video_path(base, source, video_id, index)
    question = str(record.get("question", ""))
    options = parse_options(question)
    start, end = _seconds(record.get(START_KEY)), _seconds(record.get(END_KEY))
    windowed = not (math.isnan(start) or math.isnan(end)) and end > start
    answer = str(record.get("answer", ""))
    doc = {"key": str(record.get("key", "")), "source": source, "video_id": video_id, "type": str(record.get("type", "")),
           "question": question, "options": options, "answer": answer,
           "answer_letter": answer_letter(answer, options or None) or "",
           "positive_text": str(record.get("positive_text", "")), "negative_text": str(record.get("negative_text", "")),
           "start": start if windowed else None, "end": end if windowed else None, "video": str(video)}
    return doc, index


activitynet_docs = common.docs_of(functools.partial(load_docs, source="activitynet"), BENCHMARK, ENV_VAR)
youcook2_docs = common.docs_of(functools.partial(load_docs, source="youcook2"), BENCHMARK, ENV_VAR)


def doc_to_visual(doc):
    return common.windowed_visual(doc, f"{BENCHMARK} {doc['source']} {doc['key']}")


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


def doc_to_target(doc):
    return doc["answer_letter"] or doc["answer"]


def _score(doc, results) -> dict:
    prediction = results[0] if results else ""
    options = list(doc.get("options") or [])
    truth = doc["answer_letter"]
    picked = parse_choice(str(prediction), options or None, letters=None if options else "AB")
    return {"score": 100.0 if truth and picked == truth else 0.0, "picked": picked, "answer": truth, "type": doc["type"]}


def process_results_activitynet(doc, results):
    return {"activitynet_acc": _score(doc, results), "skipped": doc.get(common.SKIPPED_FIELD, 0)}


def process_results_youcook2(doc, results):
    return {"youcook2_acc": _score(doc, results), "skipped": doc.get(common.SKIPPED_FIELD, 0)}


mean_scored = common.mean_scored
skipped = common.skipped
