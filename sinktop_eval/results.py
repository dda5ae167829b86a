"""Results rows (one per run x task x metric), per-sample logs, and the files that hold them.

Files are written whole to a temporary name and renamed into place, so a crash leaves either the
previous file or the new one, never half a row.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .files import atomic_write_text

# design.md "Results": one row per (run, task, metric). `family` (the backbone's architecture) and
# `benchmark` (the task set's name for what a task measures) are what tables select by.
COLUMNS = [
    "run_id", "timestamp", "backbone", "family", "weights", "checkpoint", "pruner", "pruner_settings", "stop", "mu_s",
    "mu_t", "mu_source", "gamma", "ratio", "frames", "seed", "limit", "benchmark", "task", "split", "metric", "value",
    "n_samples", "skipped", "kept_visual_tokens",
    "dense_visual_tokens", "prefill_tflops", "prefill_tflops_dense", "latency_s", "peak_mem_gb", "sink_kept",
    "sink_dense", "judge_model", "code_version",
]
RESULTS_FILE = "results.csv"
SINK_STATS_FILE = "sink_stats.json"  # beside results.csv: the run's sink statistics (runner.run.sink_summary)
# mu_source of a run whose SToP parameters were set by hand (a calibration run, not the paper's setting);
# pruning.defaults.stop_parameters writes it for mu overrides, the combination for a gamma override
USER_OVERRIDE = "user override"
COST_KEYS = ("vision_s", "pruning_s", "prefill_s", "decode_s")


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def atomic_write_jsonl(path: Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in records))


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def cost_summary(records: list[dict]) -> dict[str, float | None]:
    """Mean per-generation cost of a set of model records (the design's cost columns), and the mean kept and
    dense tokens at the video's sink positions (``sink_kept``, ``sink_dense``: the paper's Fig. 4 count)."""
    def mean_of(key: str, scale: float = 1.0):
        value = _mean([r.get(key) for r in records])
        return None if value is None else value / scale

    latency = _mean([sum(r.get(k) or 0.0 for k in COST_KEYS) for r in records]) if records else None
    peaks = [r.get("peak_mem_gb") for r in records if r.get("peak_mem_gb") is not None]
    sinks = [r["sink"] for r in records if isinstance(r.get("sink"), dict)]
    return {"sink_kept": _mean([s.get("kept_at_sink") for s in sinks]),
            "sink_dense": _mean([s.get("dense_at_sink") for s in sinks]),
            "kept_visual_tokens": mean_of("kept_visual_tokens"), "dense_visual_tokens": mean_of("dense_visual_tokens"),
            "prefill_tflops": mean_of("prefill_flops", 1e12), "prefill_tflops_dense": mean_of("prefill_flops_dense", 1e12),
            "latency_s": latency, "peak_mem_gb": max(peaks) if peaks else None}


def split_metric_key(key: str) -> tuple[str, str] | None:
    """'acc,none' -> ('acc', ''); 'acc,flex' -> ('acc', 'flex'); stderr/alias keys -> None.

    lmms-eval names standard errors ``<metric>_stderr`` and, by method, ``<metric>_stderr_clt`` /
    ``<metric>_stderr_clustered``: none of them is a table metric.
    """
    if "," not in key:
        return None
    metric, filt = key.split(",", 1)
    if re.search(r"_stderr(_[a-z]+)?$", metric) or metric == "alias":
        return None
    return metric, ("" if filt == "none" else filt)


def _leaf_tasks(results: dict, task: str) -> list[str]:
    """A task's leaf subtasks (itself when it is not a group)."""
    children = results.get("group_subtasks", {}).get(task)
    if not children:
        return [task]
    return [leaf for child in children for leaf in _leaf_tasks(results, child)]


def _as_value(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def skipped_count(lmms_results: dict, task: str) -> int | None:
    """Items a task (a group: its leaves) left out for a bad video, from its ``skipped`` metric; None when a
    task does not report one (lmms-eval's built-ins stop at a missing video instead)."""
    counts = [_as_value(lmms_results.get("results", {}).get(leaf, {}).get("skipped,none"))
              for leaf in _leaf_tasks(lmms_results, task)]
    return None if not counts or None in counts else int(sum(counts))


def duration_accuracies(lmms_results: dict) -> list[tuple[str, str, str, float, int]]:
    """VideoMME accuracy per video duration (the paper's "VideoMME short" column), from logged samples.

    lmms-eval only logs these per-duration numbers; its scored samples carry ``duration``,
    ``pred_answer`` and ``answer``. Returns (task, duration, "acc", percent, n) rows.
    """
    rows = []
    for task, samples in (lmms_results.get("samples") or {}).items():
        scored = [s.get("videomme_perception_score") for s in samples]
        scored = [x for x in scored if isinstance(x, dict) and {"duration", "pred_answer", "answer"} <= set(x)]
        for duration in sorted({str(x["duration"]) for x in scored}):
            group = [x for x in scored if str(x["duration"]) == duration]
            correct = sum(x["pred_answer"] == x["answer"] for x in group)
            rows.append((task, duration, "acc", 100.0 * correct / len(group), len(group)))
    return rows


def results_rows(run: dict[str, Any], lmms_results: dict, records: list[dict],
                 benchmark_of: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows for every numeric metric of every task and group in an lmms-eval results dict.

    ``run`` carries the run-level columns (run_id, backbone, pruner, ...); ``benchmark_of`` names the
    benchmark of each task the task set lists (the subtasks of a listed group get none: the group's row is
    the benchmark's number, theirs are details). Cost columns are the means
    over the model records of the task's leaf subtasks. A metric the task reports as missing (e.g. a
    judge metric with no judge configured) becomes an empty value, not a zero. ``skipped`` (every row of a
    task) is how many of its items were left out for a bad video (empty: the task does not report it).
    """
    timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    benchmark_of = benchmark_of or {}
    n_samples = lmms_results.get("n-samples", {})
    rows = []
    for task, metrics in lmms_results.get("results", {}).items():
        leaves = set(_leaf_tasks(lmms_results, task))
        costs = cost_summary([r for r in records if r.get("task") in leaves])
        count = sum(n_samples.get(leaf, {}).get("effective", 0) for leaf in leaves) or None
        skipped = skipped_count(lmms_results, task)
        for key, value in metrics.items():
            parsed = split_metric_key(key)
            if parsed is None:
                continue
            metric, filt = parsed
            if value is not None and _as_value(value) is None and not (isinstance(value, float)):
                continue  # non-numeric payloads (lists, dicts) are not table metrics
            rows.append({**run, "timestamp": timestamp, "benchmark": benchmark_of.get(task), "task": task,
                         "split": filt, "metric": metric, "value": _as_value(value), "n_samples": count,
                         "skipped": skipped, **costs})
    for task, split, metric, value, count in duration_accuracies(lmms_results):
        costs = cost_summary([r for r in records if r.get("task") == task])
        rows.append({**run, "timestamp": timestamp, "benchmark": benchmark_of.get(task), "task": task, "split": split,
                     "metric": metric, "value": value, "n_samples": count, "skipped": skipped_count(lmms_results, task),
                     **costs})
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]


def sample_logs(lmms_results: dict, records: list[dict]) -> dict[str, list[dict]]:
    """Per task: lmms-eval's logged samples, each with the model records (prediction + cost) of its doc."""
    by_doc: dict[tuple[str, Any], list[dict]] = {}
    for record in records:
        by_doc.setdefault((record.get("task"), record.get("doc_id")), []).append(record)
    logs = {}
    for task, samples in (lmms_results.get("samples") or {}).items():
        logs[task] = [{**{k: v for k, v in s.items() if k not in ("arguments",)},
                       "generations": by_doc.get((task, s.get("doc_id")), [])} for s in samples]
    return logs


def results_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every results.csv found under the given files/directories (recursively), attempts kept aside excluded."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            # a forced re-run keeps the previous attempt as <run_id>.replaced-<time>/: not a result
            files.extend(f for f in sorted(p.rglob(RESULTS_FILE)) if not any(".replaced-" in d for d in f.relative_to(p).parts))
        else:
            raise FileNotFoundError(f"results path {p} does not exist; pass run directories or results.csv files")
    if not files:
        raise FileNotFoundError(f"no {RESULTS_FILE} under {', '.join(map(str, paths))}; run a combination first "
                                f"(python -m sinktop_eval +model=... +pruner=...)")
    return files


def read_results(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate every results.csv found under the given files/directories (recursively)."""
    return pd.concat([pd.read_csv(f) for f in results_files(paths)], ignore_index=True)
