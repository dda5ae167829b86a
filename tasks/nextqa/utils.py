"""NExT-QA multiple choice (lmms-eval's ``nextqa_mc_test``) scored without guessing.

The built-in reads the reply with an MMMU-style parser that, when it finds no option, picks a random
letter (Python's ``random``), so an unreadable answer scores 20 % on average and the score depends on the
random state. Here `sinktop_eval.benchmarks.answers.parse_choice` reads the letter or the option text; a
reply that names no option, or several, scores 0 and is logged with ``parsed: null``.

Docs (HF ``lmms-eval/NExTQA``, config ``MC``): ``question``, options ``a0`` … ``a4``, ``answer`` = index 0–4.
Metric: acc (percent).
"""
from __future__ import annotations

from sinktop_eval.benchmarks import common
from sinktop_eval.benchmarks.answers import parse_choice

LETTERS = "ABCDE"  # the built-in shows five options, "A. <a0>" … "E. <a4>"


def options(doc: dict) -> list[str]:
    return [str(doc[f"a{i}"]).strip() for i in range(len(LETTERS))]


def process_results(doc, results):
    reply = results[0] if results else ""
    truth = LETTERS[int(doc["answer"])]
    picked = parse_choice(reply if isinstance(reply, str) else str(reply), options(doc))
    return {"acc": {"score": 100.0 if picked == truth else 0.0, "parsed": picked, "answer": truth}}


mean_scored = common.mean_scored
