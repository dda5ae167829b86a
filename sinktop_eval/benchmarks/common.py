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
    SINKTOP_SKIP_MISSING_VIDEOS  1: evaluate without items whose video file is missing (default: stop)
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


def check_videos(docs: list[dict], what: str, folder: Path, env_var: str) -> list[dict]:
    """Stop (one line) when videos are missing, unless SINKTOP_SKIP_MISSING_VIDEOS=1 drops their items."""
    missing = [d for d in docs if not os.path.isfile(d["video"])]
    if not missing:
        return docs
    if os.environ.get(SKIP_MISSING_ENV, "").strip().lower() in ("1", "true", "yes"):
        log.warning("%s: %d of %d items dropped because their video is missing (first: %s)", what, len(missing),
                    len(docs), missing[0]["video"])
        kept = [d for d in docs if os.path.isfile(d["video"])]
        if not kept:
            raise DataRootError(f"{what}: no video found under {folder} (first looked for {missing[0]['video']}); "
                                f"set {env_var}")
        return kept
    raise DataRootError(f"{what}: {len(missing)} of {len(docs)} videos missing under {folder}, first "
                        f"{missing[0]['video']}; set {env_var} to the release folder, or {SKIP_MISSING_ENV}=1 to "
                        f"evaluate without them")


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


def checked_video(path: str, what: str = "video") -> str:
    """The path, after making sure the file exists, is not empty and decodes (else `VideoFileError`)."""
    try:
        stat = os.stat(path)
    except OSError:
        raise VideoFileError(f"{what}: video file not found: {path}") from None
    if stat.st_size == 0:
        raise VideoFileError(f"{what}: video file is empty: {path}")
    problem = _probe(path, stat.st_size, stat.st_mtime)
    if problem:
        raise VideoFileError(f"{what}: video file is corrupt or unreadable: {path} ({problem})")
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


def _value(item: Any) -> float:
    if isinstance(item, dict):
        item = item.get("score", NAN)
    try:
        return float(item)
    except (TypeError, ValueError):
        return NAN


def mean_scored(items: list) -> float:
    """Mean over the items that were scored (None = not applicable, NaN = not judged); NaN when none were."""
    values = [v for v in map(_value, items) if not math.isnan(v)]
    return sum(values) / len(values) if values else NAN


def mean_all(items: list) -> float:
    """Mean over every applicable item (None skipped); NaN if any is NaN (a pooled score needs all its parts)."""
    values = [_value(i) for i in items if i is not None]
    return sum(values) / len(values) if values else NAN


def total(items: list) -> float:
    """Sum of the scored items (judge failures); NaN when nothing was judged."""
    values = [v for v in map(_value, items) if not math.isnan(v)]
    return float(sum(values)) if values else NAN
