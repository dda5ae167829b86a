"""LongVideoBench (lmms-eval's ``longvideobench_val_v``) scored without guessing.

The built-in strips a few "The answer is" prefixes and takes the first capital A–E anywhere in the reply
("A man opens the door" reads as A), and picks a random letter when there is none or when a long reply
names no letter. Here `sinktop_eval.benchmarks.answers.parse_choice` reads the letter or the option text;
a reply that names no option, or several, scores 0 and is logged with ``parsed: null``.

Docs (HF ``longvideobench/LongVideoBench``): ``question``, ``option0`` … ``option4`` (unused ones are the
string "N/A" and are not shown), ``correct_choice`` = index into option0..4. The letters are those of
the prompt: the shown options in order. Metric: acc (percent).
"""
from __future__ import annotations

import string

from sinktop_eval.benchmarks import common
from sinktop_eval.benchmarks.answers import parse_choice

NOT_AN_OPTION = "N/A"
MAX_OPTIONS = 5


def shown_options(doc: dict) -> list[tuple[int, str]]:
    """(index into option0..4, text) of the options the built-in's prompt shows, in prompt order."""
    shown = []
    for i in range(MAX_OPTIONS):
        text = doc.get(f"option{i}")
        if text is not None and text != NOT_AN_OPTION:
            shown.append((i, str(text)))
    return shown


def process_results(doc, results):
    reply = results[0] if results else ""
    shown = shown_options(doc)
    positions = [i for i, _ in shown]
    correct = int(doc["correct_choice"])
    truth = string.ascii_uppercase[positions.index(correct)] if correct in positions else None
    picked = parse_choice(reply if isinstance(reply, str) else str(reply), [text for _, text in shown])
    if truth is None:  # the answer is not among the shown options: a broken record, not a wrong answer
        return {"acc": {"score": common.NAN, "parsed": picked, "answer": None}}
    return {"acc": {"score": 100.0 if picked == truth else 0.0, "parsed": picked, "answer": truth}}


mean_scored = common.mean_scored
