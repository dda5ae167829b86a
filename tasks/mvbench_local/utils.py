"""MVBench-style multiple choice from a local copy in the OpenGVLab/MVBench release layout.

    <dir>/json/<task>.json      items with ``video``, ``question``, ``candidates``, ``answer`` (one of the
                                candidates) and optional ``start`` / ``end`` seconds
    <dir>/video/<source>/...    the videos; an item's ``video`` is looked up by file name below video/

<dir> is $SINKTOP_MVBENCH_DIR, else $SINKTOP_DATA_ROOT/MVBench (builtin:smoke: the synthetic copy, the
MCQA stand-in of the embedded benchmark; the paper's MVBench numbers come from lmms-eval's built-in
tasks, `sinktop_mvbench`). Every json/*.json file is one sub-task. Protocol as MVBench's: the question,
the candidates as "(A) ...", an instruction to give only the best option, and the reply primed with
"Best option:("; the answer's letter is its index in ``candidates``. Replies are read by
`sinktop_eval.benchmarks.answers.parse_choice` (letter or candidate text). Metric: acc (percent).
"""
from __future__ import annotations

import string
from pathlib import Path

from sinktop_eval.benchmarks import common
from sinktop_eval.benchmarks.answers import parse_choice

BENCHMARK = "MVBench"
ENV_VAR = "SINKTOP_MVBENCH_DIR"
INSTRUCTION = ("Watch the video closely: what appears, in which order, how things move. "
               "Then pick the option that answers the question.\n")
OPTION_PROMPT = "Only give the best option."
ANSWER_PREFIX = "Best option:("


def _video_index(folder: Path) -> dict[str, list[Path]]:
    """File name -> every video of that name below ``folder``."""
    index: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.suffix in common.VIDEO_EXTENSIONS and path.is_file():
            index.setdefault(path.name, []).append(path)
    return index


def load_docs(base: Path, how: str) -> list[dict]:
    files = sorted((base / "json").glob("*.json"))
    if not files:
        raise common.data_error(BENCHMARK, base / "json", ENV_VAR, how)
    index = _video_index(base / "video")
    docs = []
    for path in files:
        task = path.stem
        for i, item in enumerate(common.read_json(path, BENCHMARK, ENV_VAR, how)):
            try:
                candidates = [str(c) for c in item["candidates"]]
                answer, name = str(item["answer"]), str(item["video"])
                start, end = item.get("start"), item.get("end")
            except (KeyError, TypeError, AttributeError) as err:
                raise common.malformed(path, i, err) from None
            if answer not in candidates:
                raise common.DataRootError(f"{path} item {i}: answer {answer!r} is not one of its candidates")
            found = index.get(Path(name).name, [])
            if len(found) > 1:
                raise common.DataRootError(f"{path} item {i}: video {name!r} is ambiguous under {base / 'video'} "
                                           f"({', '.join(map(str, found[:3]))})")
            docs.append({"task": task, "index": i, "video": str(found[0] if found else base / "video" / name),
                         "question": str(item["question"]), "candidates": candidates, "answer": answer,
                         "answer_letter": string.ascii_uppercase[candidates.index(answer)],
                         "start": None if start is None else float(start), "end": None if end is None else float(end)})
    return common.check_videos(docs, BENCHMARK, base / "video", ENV_VAR)


mvbench_docs = common.docs_of(load_docs, BENCHMARK, ENV_VAR)


def doc_to_visual(doc):
    return common.windowed_visual(doc, f"{BENCHMARK} {doc['task']} #{doc['index']}")


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
                    "answer": doc["answer_letter"], "task": doc["task"]},
            "skipped": doc.get(common.SKIPPED_FIELD, 0)}


mean_scored = common.mean_scored
skipped = common.skipped
