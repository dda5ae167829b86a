"""MVBench-style multiple choice over the synthetic benchmark (the smoke stand-in for the MCQA family).

Layout as OpenGVLab/MVBench: <smoke>/MVBench/json/<task>.json (``video``, ``question``, ``candidates``,
``answer`` = one candidate, optional ``start``/``end`` in seconds) and videos under
<smoke>/MVBench/video/<task prefix>/<video>. Protocol as MVBench's: the question, the candidates as
"(A) ...", an instruction to give only the best option, and the reply primed with "Best option:(";
the answer's letter is its index in ``candidates``. Replies are read by
`sinktop_eval.answers.parse_choice` (letter or candidate text). Metric: acc (percent).
"""
from __future__ import annotations

import string
from pathlib import Path


from sinktop_eval import task_common as common  # noqa: E402

from sinktop_eval.answers import parse_choice
from sinktop_eval.smoke_data import MVBENCH_PREFIXES

BENCHMARK = "MVBench"
INSTRUCTION = ("Watch the video closely: what appears, in which order, how things move. "
               "Then pick the option that answers the question.\n")
OPTION_PROMPT = "Only give the best option."
ANSWER_PREFIX = "Best option:("


def load_docs(base: Path, how: str, prefixes: dict[str, str]) -> list[dict]:
    docs = []
    for task, prefix in prefixes.items():
        path = base / "json" / f"{task}.json"
        for i, item in enumerate(common.read_json(path, BENCHMARK, "SINKTOP_SMOKE_DIR", how)):
            candidates = [str(c) for c in item["candidates"]]
            answer = str(item["answer"])
            if answer not in candidates:
                raise common.DataRootError(f"{path} item {i}: answer {answer!r} is not one of its candidates")
            start, end = item.get("start"), item.get("end")
            docs.append({"task": task, "index": i, "video": str(base / "video" / prefix / str(item["video"])),
                         "question": str(item["question"]), "candidates": candidates, "answer": answer,
                         "answer_letter": string.ascii_uppercase[candidates.index(answer)],
                         "start": None if start is None else float(start), "end": None if end is None else float(end)})
    return common.check_videos(docs, BENCHMARK, base / "video", "SINKTOP_SMOKE_DIR")


def smoke_docs(dataset):
    base, how = common.smoke_dir(BENCHMARK)
    return common.to_dataset(load_docs(base, how, MVBENCH_PREFIXES))


def doc_to_visual(doc):
    path = common.checked_video(doc["video"], f"{BENCHMARK} {doc['task']} #{doc['index']}")
    if doc.get("start") is None or doc.get("end") is None:
        return [path]
    return [{"path": path, "start": float(doc["start"]), "end": float(doc["end"])}]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    options = "".join(f"({string.ascii_uppercase[i]}) {c}\n" for i, c in enumerate(doc["candidates"]))
    return (f"{kwargs.get('pre_prompt', INSTRUCTION)}Question: {doc['question']}\nOptions:\n{options}"
            f"{kwargs.get('post_prompt', OPTION_PROMPT + chr(10) + ANSWER_PREFIX)}")


def doc_to_target(doc):
    return doc["answer_letter"]


def process_results(doc, results):
    prediction = str(results[0]) if results else ""
    picked = parse_choice(prediction, list(doc["candidates"]))
    return {"acc": {"score": 100.0 if picked == doc["answer_letter"] else 0.0, "picked": picked,
                    "answer": doc["answer_letter"], "task": doc["task"]}}


mean_scored = common.mean_scored
