"""EventHallusion (entire / interleave / misleading) from its official release layout.

    <dir>/questions/{entire,mix,misleading}_questions.json      (older releases: interleave_questions.json)
    <dir>/videos/{entire,interleave,misleading}/<id>.mp4         (mix ids live in videos/interleave/)

<dir> is $SINKTOP_EVENTHALLUSION_DIR, else $SINKTOP_DATA_ROOT/EventHallusion (under
SINKTOP_DATA_ROOT=builtin:smoke: the synthetic copy). One task holds two kinds of docs, ordered round-robin over
the splits so ``--limit`` still samples all three:

* binary: one per question, prompt = question + "\nPlease answer yes or no:"; correct when the reply's
  first word (lower-cased, punctuation stripped) equals the answer's ("Yes." / "No.").
* description: one per video, "Please describe this video in detail."; an LLM judge
  (`sinktop_eval.benchmarks.judge`) plays the official referee (`JUDGE_PROMPTS`: the official templates'
  content, roles and argument order, in our words): entire and misleading are checked against the video's
  ``caption``, interleave against its ``unexpected`` event. Verdict: the official rule (Markdown removed,
  the reply starts with "yes"; `judge.parse_verdict`). A reply with no verdict or a failed call scores 0 and
  counts in ``judge_failures``; if every description's judgement failed, the description metrics are NaN;
  without a judge they are NaN (one warning per run).

The SToP release judges differently (entire + interleave only, interleave against the *caption*, a
first-token binary rule): ``desc_acc_release`` / ``overall_acc_release`` compute its numbers beside ours
(one extra judge call per interleave video; entire's release judgement is ours, served from the cache).

Metrics (percent): binary_acc, desc_acc, overall_acc (pooled over every binary and description item),
<split>_binary_acc and <split>_desc_acc for split in entire/interleave/misleading, desc_acc_release,
overall_acc_release; judge_failures (failed judge calls, a count), skipped (items left out for a bad video).
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

# The official referee templates (EventHallusion constants.py), in our words: same content, one user
# message, the model's output first and the event second. The official request also carries a chat-app
# persona as its system message; ours says only what of it bears on the reply (short, reasoning allowed).
JUDGE_SYSTEM = "You are a helpful assistant. Keep replies to a sentence or two unless the request needs reasoning."
_REFEREE = ("Act as a referee who evaluates the output of a model. The model was asked for a detailed description "
            "of a video. ")
_SCOPE = ("Judge only whether the events and actions agree; do not judge how particular objects, the setting, the "
          "atmosphere or similar details are described. Your reply must begin with yes or no as its first word; "
          "then give your analysis")
JUDGE_PROMPTS = {
    "entire": (_REFEREE + "You are given the model's output and a ground-truth event. Decide whether the event the "
               "model's output describes agrees with the ground-truth event: if it does, answer \"yes\"; if it "
               "does not, answer \"no\". " + _SCOPE + " and reasoning.\nModel output: {prediction}\n"
               "Ground-truth event: {event}"),
    "interleave": (_REFEREE + "You are given the output of the model under test and one special event. Decide whether "
                   "this special event is mentioned in the model's output: if it is, answer \"yes\"; otherwise "
                   "answer \"no\". " + _SCOPE + ".\nOutput: {prediction}\nUnexpected event: {event}"),
    "misleading": (_REFEREE + "You are given the model's output and the ground-truth event. Decide whether the model's "
                   "description agrees with the ground-truth event. If the output describes anything that is "
                   "unrelated to the ground-truth event, answer \"no\"; otherwise answer \"yes\". " + _SCOPE +
                   " and reasoning.\nModel output: {prediction}\nGround-truth event: {event}"),
}
RELEASE_SPLITS = ("entire", "interleave")  # the release judges these, each against the caption


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


def judge_description(doc, prediction: str, split: str, event: str) -> dict:
    """{"score": 100/0/NaN, "failed", "verdict", "judge_reply", "judge_error", "judge_model"} for one description
    judged with ``split``'s referee template against ``event``."""
    config = judge.active_config()
    if not config.configured:
        judge.warn_no_judge()
        return {"score": NAN, "failed": NAN, "verdict": None, "judge_reply": None, "judge_error": "no judge"}
    prompt = JUDGE_PROMPTS[split].format(prediction=prediction.strip() or "(empty)", event=event)
    reply = judge.get_client(config).ask(prompt, system=JUDGE_SYSTEM, parse=judge.parse_verdict)
    verdict = reply.value if reply.ok else None
    return {"score": 100.0 if verdict else 0.0, "failed": 0.0 if reply.ok else 1.0,
            "verdict": None if verdict is None else ("yes" if verdict else "no"),
            "judge_reply": reply.text, "judge_error": reply.error, "judge_model": config.model}


def release_binary_correct(prediction: str, answer: str) -> bool:
    """The release's binary rule: the reply's first space-separated token, stripped of "." and ",", lower-cased,
    equals the answer treated the same way."""
    def token(text: str) -> str:
        return text.strip().split(" ")[0].strip().strip(".").lower().strip(",")

    return token(answer) == token(prediction)


def _release_item(verdict: dict) -> dict:
    """A description as the release counts it: dropped (None) when the judgement failed."""
    return {**verdict, "release": verdict["score"] if verdict["failed"] != 1.0 else None}


def process_results(doc, results):
    """Every metric for every doc (lmms-eval needs each declared key): None where it does not apply
    (a binary doc's desc_acc, another split's metrics), NaN where a judge was needed but there is none."""
    prediction = results[0] if results else ""
    prediction = prediction if isinstance(prediction, str) else str(prediction)
    split = doc["split"]
    out = {f"{s}_{kind}_acc": None for s in SPLITS for kind in ("binary", "desc")}
    out["skipped"] = doc.get(common.SKIPPED_FIELD, 0)
    if doc["kind"] == "binary":
        score = 100.0 if yes_no_correct(prediction, doc["answer"]) else 0.0
        release = 100.0 if release_binary_correct(prediction, doc["answer"]) else 0.0
        out.update({"binary_acc": score, "desc_acc": None, "overall_acc": score, "judge_failures": None,
                    f"{split}_binary_acc": score, "desc_acc_release": None, "overall_acc_release": release})
        return out
    verdict = {**judge_description(doc, prediction, split, doc["answer"]), "qid": doc["qid"]}
    failures = verdict["failed"]
    release = None
    if split in RELEASE_SPLITS:
        same = doc["answer"] == doc["caption"]  # entire: the release's judgement is ours
        release = _release_item(verdict if same else judge_description(doc, prediction, split, doc["caption"]))
        failures = failures + (0.0 if same else release["failed"])
    out.update({"binary_acc": None, "desc_acc": verdict, "overall_acc": verdict, "judge_failures": failures,
                f"{split}_desc_acc": verdict, "desc_acc_release": release, "overall_acc_release": release})
    return out


mean_scored = common.mean_scored
mean_judged = common.mean_judged
mean_release = common.mean_release
total = common.total
skipped = common.skipped
