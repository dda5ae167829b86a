"""EventHallusion (entire / interleave / misleading) from its official release layout.

    <dir>/questions/{entire,mix,misleading}_questions.json      (older releases: interleave_questions.json)
    <dir>/videos/{entire,interleave,misleading}/<id>.mp4         (mix ids live in videos/interleave/)

<dir> is $SINKTOP_EVENTHALLUSION_DIR, else $SINKTOP_DATA_ROOT/EventHallusion (under
SINKTOP_DATA_ROOT=builtin:smoke: the synthetic copy). One task holds two kinds of docs, ordered round-robin over
the splits so ``--limit`` still samples all three:

* binary: one per question, prompt = question + "\\nPlease answer yes or no:"; correct when the reply's
  first word (lower-cased, punctuation stripped) equals the answer's ("Yes." / "No.").
* description: one per video, "Please describe this video in detail."; an LLM judge (sinktop_eval.judge)
  compares it with the ground-truth event: entire and misleading get the video's ``caption``, interleave
  its ``unexpected`` event. The judge's first word decides (yes = correct). A judge call that fails
  after its retries, or a reply with no yes/no, scores 0 and counts in ``judge_failures``. With no
  judge configured, description metrics are NaN (one warning per run).

Metrics (percent): binary_acc, desc_acc, overall_acc (pooled over every binary and description item;
NaN without a judge), <split>_binary_acc and <split>_desc_acc for split in entire/interleave/misleading,
and judge_failures (a count).
"""
from __future__ import annotations

from pathlib import Path

from sinktop_eval.benchmarks import common, judge
from sinktop_eval.benchmarks.answers import yes_no_correct

BENCHMARK = "EventHallusion"
ENV_VAR = "SINKTOP_EVENTHALLUSION_DIR"
SPLITS = ("entire", "interleave", "misleading")
# split -> annotation files to try (first found wins) and the video folder
ANNOTATIONS = {"entire": ("entire_questions.json",), "interleave": ("mix_questions.json", "interleave_questions.json"),
               "misleading": ("misleading_questions.json",)}
BINARY_SUFFIX = "\nPlease answer yes or no:"
DESCRIBE_PROMPT = "Please describe this video in detail."
NAN = common.NAN

JUDGE_SYSTEM = ("You are a strict referee checking a description of a video against the video's true content. "
                "Judge events and actions only; ignore differences in objects, colours of the scene or wording. "
                "Reply with 'yes' or 'no' as your first word, then one short sentence of reason.")
JUDGE_PROMPTS = {
    "entire": ("True event of the video: {event}\nDescription to check: {prediction}\n"
               "Is the event in the description consistent with the true event? Start with yes or no."),
    "interleave": ("Something unexpected happens in the video: {event}\nDescription to check: {prediction}\n"
                   "Does the description mention this unexpected event? Start with yes or no."),
    "misleading": ("True event of the video: {event}\nDescription to check: {prediction}\n"
                   "Does the description report the true event without adding any event that is unrelated to it? "
                   "Answer no if it describes anything unrelated to the true event. Start with yes or no."),
}


# --------------------------------------------------------------------------- loading


def _video_path(base: Path, split: str, vid: str) -> Path:
    folder = base / "videos" / split
    names = [vid]
    if split == "interleave":  # "mix_007" -> videos/interleave/interleave_007.mp4 (or mix_007.mp4)
        names.append("interleave" + vid[len("mix"):] if vid.startswith("mix") else vid)
    candidates = [folder / f"{n}{ext}" for n in names for ext in common.VIDEO_EXTENSIONS]
    return common.first_existing(candidates) or candidates[0]


def load_docs(base: Path, how: str) -> list[dict]:
    """Binary and description docs for all three splits, round-robin by video over the splits."""
    per_split: dict[str, list[list[dict]]] = {}
    for split in SPLITS:
        files = [base / "questions" / name for name in ANNOTATIONS[split]]
        path = common.first_existing(files) or files[0]
        records = common.read_json(path, BENCHMARK, ENV_VAR, how)
        if not isinstance(records, list):
            raise common.DataRootError(f"{BENCHMARK} annotation file {path} is not a JSON list of videos")
        videos = []
        for index, record in enumerate(records):
            try:
                videos.append(_record_docs(base, split, record))
            except (KeyError, TypeError, AttributeError) as err:
                raise common.malformed(path, index, err) from None
        per_split[split] = videos
    ordered = []
    for i in range(max(len(v) for v in per_split.values())):
        for split in SPLITS:
            if i < len(per_split[split]):
                ordered.extend(per_split[split][i])
    return common.check_videos(ordered, BENCHMARK, base / "videos", ENV_VAR)


def _record_docs(base: Path, split: str, record: dict) -> list[dict]:
    """One video's docs: its description request first, then one per question."""
    vid = str(record["id"])
    info = record.get("event_info") or {}
    caption = str(info.get("caption") or "")
    unexpected = str(info.get("unexpected") or "")
    video = str(_video_path(base, split, vid))
    common_fields = {"split": split, "id": vid, "video": video, "category": str(record.get("category", "")),
                     "caption": caption, "unexpected": unexpected}
    event = unexpected if split == "interleave" else caption
    docs = [{**common_fields, "kind": "description", "qid": f"{vid}#desc", "question": DESCRIBE_PROMPT,
             "answer": event}]
    for k, q in enumerate(record.get("questions") or []):
        docs.append({**common_fields, "kind": "binary", "qid": f"{vid}#{k}", "question": str(q["question"]),
                     "answer": str(q["answer"])})
    return docs


eventhallusion_docs = common.docs_of(load_docs, BENCHMARK, ENV_VAR, on_build=judge.new_run)


# --------------------------------------------------------------------------- prompting


def doc_to_visual(doc):
    return [common.checked_video(doc["video"], f"{BENCHMARK} {doc['split']} {doc['id']}")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    pre, post = kwargs.get("pre_prompt", ""), kwargs.get("post_prompt", "")
    if doc["kind"] == "description":
        return f"{pre}{DESCRIBE_PROMPT}{post}"
    return f"{pre}{doc['question']}{BINARY_SUFFIX}{post}"


def doc_to_target(doc):
    return doc["answer"]


# --------------------------------------------------------------------------- scoring


def judge_description(doc, prediction: str) -> dict:
    """{"score": 100/0/NaN, "verdict", "judge_reply", "judge_error", "failed"} for one description."""
    config = judge.active_config()
    if not config.configured:
        judge.warn_no_judge()
        return {"score": NAN, "failed": NAN, "verdict": None, "judge_reply": None, "judge_error": "no judge"}
    prompt = JUDGE_PROMPTS[doc["split"]].format(event=doc["answer"], prediction=prediction.strip() or "(empty)")
    reply = judge.get_client(config).ask(prompt, system=JUDGE_SYSTEM)
    verdict = judge.parse_verdict(reply.text) if reply.ok else None
    error = reply.error if not reply.ok else (None if verdict is not None else "judge reply has no yes/no")
    return {"score": 100.0 if verdict else 0.0, "failed": 0.0 if verdict is not None else 1.0,
            "verdict": None if verdict is None else ("yes" if verdict else "no"),
            "judge_reply": reply.text, "judge_error": error}


def process_results(doc, results):
    """Every metric for every doc (lmms-eval needs each declared key): None where it does not apply
    (a binary doc's desc_acc, another split's metrics), NaN where a judge was needed but there is none."""
    prediction = results[0] if results else ""
    prediction = prediction if isinstance(prediction, str) else str(prediction)
    out = {f"{s}_{kind}_acc": None for s in SPLITS for kind in ("binary", "desc")}
    if doc["kind"] == "binary":
        score = 100.0 if yes_no_correct(prediction, doc["answer"]) else 0.0
        out.update({"binary_acc": score, "desc_acc": None, "overall_acc": score, "judge_failures": None,
                    f"{doc['split']}_binary_acc": score})
        return out
    verdict = judge_description(doc, prediction)
    out.update({"binary_acc": None, "desc_acc": {**verdict, "qid": doc["qid"]},
                "overall_acc": verdict["score"], "judge_failures": verdict["failed"],
                f"{doc['split']}_desc_acc": verdict["score"]})
    return out


mean_scored = common.mean_scored
mean_all = common.mean_all
total = common.total
