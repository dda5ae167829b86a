"""MLVU dev (task ``sinktop_mlvu_dev``): lmms-eval's ``mlvu_dev`` scored by lmms-eval, plus the pooled accuracy.

lmms-eval averages the accuracies of the 7 task types (``mlvu_percetion_score``); the SToP release divides
the correct answers by all answers (``pooled_acc``). Both read the same per-item record lmms-eval's
``mlvu_process_results`` makes (``pred_answer``, ``answer``, ``task_type``).
"""
from __future__ import annotations

import importlib

NAN = float("nan")


def process_results(doc, results):
    item = importlib.import_module("lmms_eval.tasks.mlvu.utils").mlvu_process_results(doc, results)["mlvu_percetion_score"]
    return {"mlvu_percetion_score": item, "pooled_acc": item}


def pooled_accuracy(items) -> float:
    """Percent of all items answered correctly (NaN when there are none)."""
    if not items:
        return NAN
    return 100.0 * sum(item["pred_answer"] == item["answer"] for item in items) / len(items)
