"""Shared by the task folders (tasks/*/utils.py): data roots, video checks, docs, metric aggregation.

lmms-eval imports a task's ``utils.py`` by file path (once per ``!function`` reference); this module is
imported normally, so there is one instance of it per process and its state (the consistency-judge
memo) is shared by every copy of the task utils.

Data roots, read when a task is built (never at import), so the lmms-eval CLI
(``SINKTOP_DATA_ROOT=/data lmms-eval --include_path <tasks> ...``) and in-process
``simple_evaluate(..., task_manager=TaskManager(include_path=[TASKS_DIR]))`` behave the same:

    SINKTOP_DATA_ROOT            common root (default ./data), holding one folder per benchmark;
                                 builtin:smoke = the synthetic benchmark (built on demand, see smoke_data)
    SINKTOP_EVENTHALLUSION_DIR   default $SINKTOP_DATA_ROOT/EventHallusion (ignored under builtin:smoke)
    SINKTOP_VIDEOCOMP_DIR        default $SINKTOP_DATA_ROOT/VideoComp
    SINKTOP_VIDEOCHATGPT_DIR     default $SINKTOP_DATA_ROOT/VideoChatGPT
    SINKTOP_MVBENCH_DIR          default $SINKTOP_DATA_ROOT/MVBench
    SINKTOP_SKIP_MISSING_VIDEOS  1: evaluate without items whose video is missing, empty or does not decode
                                 (default: stop). The runner sets it from ``skip_bad_videos`` (part of a run's
                                 identity); every kept doc records how many items were left out
                                 (``skipped_items``), which the tasks report as their ``skipped`` metric.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("sinktop_eval.tasks")

DATA_ROOT_ENV = "SINKTOP_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("data")
BUILTIN_SMOKE = "builtin:smoke"  # the data root that means the synthetic benchmark
SKIP_MISSING_ENV = "SINKTOP_SKIP_MISSING_VIDEOS"
SKIPPED_FIELD = "skipped_items"  # on every doc: items of its task left out for a bad video
VIDEO_EXTENSIONS = (".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov")
MICROSECONDS_PER_SECOND = 1_000_000  # VideoComp stores its time fields in microseconds
NAN = float("nan")

# results of the consistency judge, shared by the aggregations of one task (see videochatgpt_local)
MEMO: dict[str, Any] = {}


class DataRootError(SystemExit):
    """Benchmark data missing where a task looks for it: one line naming the path and the variable to set.

    A ``SystemExit`` on purpose: lmms-eval wraps dataset loading in a retry loop that would repeat
    an ordinary exception five times and then hide it in a ``RetryError``, and its CLI swallows
    every ``Exception``. This passes through both, before any generation starts.
    """


class VideoFileError(FileNotFoundError):
    """A video that is missing, empty or undecodable (raised while the model asks for it)."""


def benchmark_dir(benchmark: str, env_var: str) -> tuple[Path, str]:
    """(folder, how it was chosen) for one benchmark: the synthetic copy under builtin:smoke, else
    $env_var, else $SINKTOP_DATA_ROOT/<benchmark>, else ./data/<benchmark>."""
    root = os.environ.get(DATA_ROOT_ENV)
    if root == BUILTIN_SMOKE:
        from .smoke_data import ensure_smoke_data

        smoke = ensure_smoke_data()
        return smoke / benchmark, f"{DATA_ROOT_ENV}={BUILTIN_SMOKE} (the synthetic benchmark at {smoke})"
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser(), f"{env_var}={os.environ[env_var]}"
    if root:
        return Path(root).expanduser() / benchmark, f"{DATA_ROOT_ENV}={root}"
    return DEFAULT_DATA_ROOT.resolve() / benchmark, f"default root ./{DEFAULT_DATA_ROOT} ({DATA_ROOT_ENV} unset)"


def docs_of(load: Callable[[Path, str], list[dict]], benchmark: str, env_var: str, *, on_build: Callable[[], Any] = None):
    """A task's ``process_docs``: the placeholder dataset lmms-eval passes is replaced by ``load(folder, how)``
    over the benchmark's folder (bind per-task arguments with functools.partial)."""
    def process_docs(dataset):
        if on_build is not None:
            on_build()
        folder, how = benchmark_dir(benchmark, env_var)
        return to_dataset(load(folder, how))

    return process_docs


def data_error(benchmark: str, path: Path, env_var: str, how: str) -> DataRootError:
    return DataRootError(f"{benchmark} data not found: {path} (from {how}); set {env_var} to your {benchmark} "
                         f"folder, or {DATA_ROOT_ENV} to the folder that holds it")


def read_json(path: Path, benchmark: str, env_var: str, how: str) -> Any:
    if not path.is_file():
        raise data_error(benchmark, path, env_var, how)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataRootError(f"{benchmark} annotation file {path} is unreadable ({err}); re-download it") from None


def malformed(path: Path, index: int, err: Exception) -> DataRootError:
    """An annotation record without a field the task needs (KeyError/TypeError while reading it)."""
    return DataRootError(f"annotation file {path}: record {index} is malformed ({type(err).__name__}: {err}); "
                         f"is this the official release?")


def first_existing(candidates: Iterable[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def skip_bad_videos() -> bool:
    return os.environ.get(SKIP_MISSING_ENV, "").strip().lower() in ("1", "true", "yes")


def check_videos(docs: list[dict], what: str, folder: Path, env_var: str) -> list[dict]:
    """The docs whose video is usable, each with ``skipped_items`` (how many of the task's items were not).

    Default: stop (one line) at a missing or empty video (decoding is left to generation, which names a
    corrupt file). With SINKTOP_SKIP_MISSING_VIDEOS=1, every video is also decoded once, and the items of
    missing, empty and corrupt videos alike are left out.
    """
    skip = skip_bad_videos()
    problems = {path: problem for path in dict.fromkeys(d["video"] for d in docs)
                if (problem := video_problem(path, decode=skip))}
    bad = [d for d in docs if d["video"] in problems]
    if bad and not skip:
        first = bad[0]["video"]
        raise DataRootError(f"{what}: {len(bad)} of {len(docs)} items have a missing or empty video under {folder}, "
                            f"first {first} ({problems[first]}); set {env_var} to the release folder, or "
                            f"{SKIP_MISSING_ENV}=1 (skip_bad_videos=true) to evaluate without them")
    kept = [d for d in docs if d["video"] not in problems]
    if not kept:
        first = bad[0]["video"]
        raise DataRootError(f"{what}: no usable video under {folder} (first: {first}, {problems[first]}); set {env_var}")
    if bad:
        log.warning("%s: %d of %d items left out (%s): their video is missing, empty or corrupt (first: %s, %s)",
                    what, len(bad), len(docs), SKIP_MISSING_ENV, bad[0]["video"], problems[bad[0]["video"]])
    return [{**d, SKIPPED_FIELD: len(bad)} for d in kept]


@functools.lru_cache(maxsize=4096)
def _probe(path: str, size: int, mtime: float) -> str | None:
    """None when the file opens as a video and its first frame decodes, else the reason."""
    try:
        import av
    except ImportError:  # nothing to probe with; the model's decoder will report
        return None
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return "no video stream"
            for _ in container.decode(video=0):
                return None
            return "no decodable frame"
    except Exception as err:  # noqa: BLE001 - any decoder failure means a corrupt file
        return f"{type(err).__name__}: {err}"


def video_problem(path: str, decode: bool = True) -> str | None:
    """None for a usable video, else what is wrong: "not found", "empty", "corrupt or unreadable (why)"."""
    try:
        stat = os.stat(path)
    except OSError:
        return "not found"
    if stat.st_size == 0:
        return "empty"
    problem = _probe(path, stat.st_size, stat.st_mtime) if decode else None
    return f"corrupt or unreadable ({problem})" if problem else None


def checked_video(path: str, what: str = "video") -> str:
    """The path, after making sure the file exists, is not empty and decodes (else `VideoFileError`)."""
    problem = video_problem(path)
    if problem:
        kind, _, detail = problem.partition(" (")
        raise VideoFileError(f"{what}: video file {'' if kind == 'not found' else 'is '}{kind}: {path}"
                             + (f" ({detail}" if detail else ""))
    return path


def windowed_visual(doc: dict, what: str) -> list:
    """``doc_to_visual`` of a doc with ``video`` and optional ``start`` / ``end`` seconds: ``[path]`` or
    ``[{"path", "start", "end"}]`` (the form `sinktop_eval.lmms.model.parse_visual` reads)."""
    path = checked_video(doc["video"], what)
    if doc.get("start") is None or doc.get("end") is None:
        return [path]
    return [{"path": path, "start": float(doc["start"]), "end": float(doc["end"])}]


def to_dataset(docs: list[dict]):
    import datasets

    return datasets.Dataset.from_list(docs)


# --------------------------------------------------------------------------- aggregation


def _value(item: Any, key: str = "score") -> float:
    if isinstance(item, dict):
        item = item.get(key, NAN)
    try:
        return float(item)
    except (TypeError, ValueError):
        return NAN


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else NAN


def mean_scored(items: list) -> float:
    """Mean over the items that were scored (None = not applicable, NaN = not scored); NaN when none were."""
    return _mean([v for v in map(_value, items) if not math.isnan(v)])


def mean_judged(items: list) -> float:
    """A judged metric (items: scores, or dicts with ``score`` and ``failed``; None = not applicable).

    A failed judgement counts 0 (lmms-eval's rule; ``judge_failures`` counts it), but when every
    judgement failed nothing was measured: NaN. NaN too when any item is unjudged (no judge configured:
    a pooled score needs all its parts).
    """
    items = [i for i in items if i is not None]
    values = [_value(i) for i in items]
    if not values or any(math.isnan(v) for v in values):
        return NAN
    judged = [_value(i, "failed") for i in items if isinstance(i, dict) and "failed" in i]
    if judged and all(f == 1.0 for f in judged):
        return NAN
    return _mean(values)


def mean_release(items: list) -> float:
    """The SToP release's mean: over the items it keeps (dicts: their ``release`` value, None = dropped,
    i.e. a failed judgement; plain numbers count as they are). NaN when none is kept, when any is
    unjudged (no judge), or when every judgement failed (a pooled mean would silently lose its judged part)."""
    items = [i for i in items if i is not None]
    judged = [_value(i, "failed") for i in items if isinstance(i, dict) and "failed" in i]
    if judged and all(f == 1.0 for f in judged):
        return NAN
    values = [i.get("release") if isinstance(i, dict) else i for i in items]
    values = [v for v in values if v is not None]
    if any(_value(v) != _value(v) for v in values):  # NaN: no judge
        return NAN
    return _mean([float(v) for v in values])


def total(items: list) -> float:
    """Sum of the scored items (judge failures); NaN when nothing was judged."""
    values = [v for v in map(_value, items) if not math.isnan(v)]
    return float(sum(values)) if values else NAN


def skipped(items: list) -> float:
    """The ``skipped`` metric: items of the task left out for a bad video (each doc carries the count)."""
    return float(max((int(i) for i in items if i is not None), default=0))
