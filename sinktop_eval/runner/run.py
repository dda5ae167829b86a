"""Run one combination end to end: skip if done, evaluate through lmms-eval, write results, log W&B.

Run directory (``<output_dir>/<run_id>/``):
    config.yaml         the resolved combination (and the Hydra config it came from)
    environment.json    package versions, git commit, machine
    generations.jsonl   every generation with its cost stats, appended as it happens (resume point);
                        generations.rank<r>.jsonl per rank under torchrun / accelerate launch
    samples/<task>.jsonl  lmms-eval's per-sample logs joined with the generations
    lmms_results.json   lmms-eval's aggregate output
    results.csv         one row per (task, metric); written last, atomically: its presence = done
"""
from __future__ import annotations

import fcntl
import gc
import json
import logging
import os
import shutil
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from ..files import atomic_write_text
from ..lmms import parallel
from ..results import RESULTS_FILE, SINK_STATS_FILE, atomic_write_csv, atomic_write_jsonl, results_rows, sample_logs
from .config import RunSpec
from .preflight import TaskEnvironment, task_environment
from .provenance import code_version, environment_report
from .tracking import log_table_run

log = logging.getLogger(__name__)
GENERATIONS_FILE = "generations.jsonl"


class BackboneCache:
    """Keeps the most recently loaded backbone.

    Hydra's basic launcher runs a sweep's jobs one after another in one process, and pruning never
    changes weights, so consecutive combinations on the same checkpoint share one load (a 7B model
    loads once per sweep, not once per combination). Only one backbone is held at a time.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._backbone: Any = None
        self.loads = 0

    def get(self, spec: RunSpec):
        model = spec.config.model
        settings = spec.backbone_settings
        key = (model.backbone, model.path, spec.dtype, model.device, model.attn_implementation,
               json.dumps(settings, sort_keys=True))
        if key != self._key:
            from ..backbones import load_backbone

            self._backbone, self._key = None, None
            gc.collect()
            self._backbone = load_backbone(model.backbone, path=model.path, dtype=spec.dtype,
                                           device=parallel.rank_device(model.device),
                                           attn_implementation=model.attn_implementation, **settings)
            self._key = key
            self.loads += 1
        return self._backbone


BACKBONES = BackboneCache()


def sink_summary(records: list[dict]) -> dict[str, Any]:
    """The run's summary of its generations' sink statistics, with the token grid when every video shares one."""
    from ..pruning import summarise_sink_statistics

    sinks = [r["sink"] for r in records if isinstance(r.get("sink"), dict)]
    grids = {tuple(r["grid"]) for r in records if r.get("grid")}
    votes = Counter(p for s in sinks for p in s.get("sink_positions", []))  # positions in a video's sink set
    common = sorted(p for p, count in votes.items() if count * 2 >= len(sinks))  # ... in at least half of them
    return {**summarise_sink_statistics(sinks), "grid": list(grids.pop()) if len(grids) == 1 else None,
            "sink_positions": common, "sink_positions_rule": "in the sink set of at least half of the videos"}


class UnmeasuredJudgeMetrics(RuntimeError):
    """A finished run whose judged metrics could not be measured (the judge failed): its results are written
    (missing, not 0), the command still fails so nobody mistakes the run for complete."""


def unmeasured_judge_metrics(rows: pd.DataFrame) -> list[str]:
    """'task/metric' of every metric left missing in a task whose judge calls failed (judge_failures > 0)."""
    failures = rows[(rows["metric"] == "judge_failures") & (rows["value"].fillna(0) > 0)]
    lost = rows[rows["task"].isin(failures["task"]) & (rows["metric"] != "judge_failures") & rows["value"].isna()]
    return [f"{t}/{m}" for t, m in zip(lost["task"], lost["metric"])]


@dataclass
class RunOutcome:
    status: str  # "done" | "skipped"
    run_dir: Path
    rows: pd.DataFrame  # empty on ranks other than 0 (rank 0 writes the results)
    encoder_passes: dict[str, int] | None = None  # this run's fresh generations by vision source: hit / miss / off


def encoder_passes(records: list[dict[str, Any]]) -> dict[str, int]:
    """How this run's new generations got their vision features: "miss"/"off" ran the encoder, "hit" saved a pass."""
    counts = {"hit": 0, "miss": 0, "off": 0}
    for record in records:
        if not record.get("resumed"):
            source = record.get("vision_cache", "off")
            counts[source] = counts.get(source, 0) + 1
    return counts


def generation_files(run_dir: Path) -> list[Path]:
    """The run's resume files: generations.jsonl and, from multi-process runs, one per rank."""
    stem, suffix = Path(GENERATIONS_FILE).stem, Path(GENERATIONS_FILE).suffix
    return [p for p in [run_dir / GENERATIONS_FILE, *sorted(run_dir.glob(f"{stem}.rank*{suffix}"))] if p.exists()]


def run_columns(spec: RunSpec, judge_model: str | None) -> dict[str, Any]:
    combo = spec.combination.describe()
    combo["pruner_settings"] = json.dumps(combo["pruner_settings"], sort_keys=True)
    return {"run_id": spec.run_id, **combo, "frames": spec.config.frames, "seed": spec.config.seed,
            "limit": spec.limit, "judge_model": judge_model, "code_version": code_version()}


def _start_fresh(run_dir: Path) -> Path | None:
    """force / rescore: keep the previous attempt aside instead of deleting anyone's finished work."""
    if not run_dir.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup, n = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}"), 1
    while backup.exists():  # forced twice within a second: moving onto it would nest the old run inside
        backup, n = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}-{n}"), n + 1
    shutil.move(str(run_dir), str(backup))
    log.warning("previous results of %s moved to %s", run_dir.name, backup)
    return backup


class RunLocked(RuntimeError):
    """Another process is evaluating the same combination into the same output_dir."""


LOCKS_DIR = ".locks"  # beside the run directories: force/rescore move a run directory, never its lock


@contextmanager
def run_lock(spec: RunSpec) -> Iterator[None]:
    """An exclusive lock per run directory (`flock`, released by the OS if the process dies): a second
    process asking for the same combination refuses with one line instead of redoing and double-appending
    its work."""
    path = spec.output_dir / LOCKS_DIR / f"{spec.run_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLocked(f"{spec.run_id} is being evaluated by {holder} into {spec.output_dir}; wait for it (the "
                            "same command then skips it) or choose another output_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_combination(spec: RunSpec, hydra_config: Any = None, backbones: BackboneCache = BACKBONES) -> RunOutcome:
    """Evaluate one combination unless its results already exist (or ``spec.force``), holding its lock
    (rank 0 holds it for a multi-process job: its ranks are one evaluation, and a refusal there ends the job)."""
    with run_lock(spec) if parallel.world().main else nullcontext():
        return _run_locked(spec, hydra_config, backbones)


def _run_locked(spec: RunSpec, hydra_config: Any, backbones: BackboneCache) -> RunOutcome:
    run_dir = spec.run_dir
    results_path = run_dir / RESULTS_FILE
    config = spec.config
    if results_path.exists() and not (config.force or config.rescore):
        log.warning("skip %s: already finished (%s); pass force=true to re-run, rescore=true to re-score its "
                    "answers", spec.run_id, results_path)
        return RunOutcome("skipped", run_dir, pd.read_csv(results_path))
    # data, judge and task build: fails before any model loads; the variables it sets end with the run
    with task_environment(spec) as task_env:
        if (config.force or config.rescore) and parallel.world().main:
            # only now: a failed preflight leaves the finished results in place
            backup = _start_fresh(run_dir)
            if config.rescore and backup is not None:
                # the saved answers are the resume point: every generation is reused, only scoring runs
                run_dir.mkdir(parents=True, exist_ok=True)
                for saved in generation_files(backup):
                    shutil.copy2(saved, run_dir / saved.name)
        if config.force or config.rescore:
            parallel.barrier()  # no rank writes into the run directory before rank 0 has moved the old one
        return _evaluate(spec, task_env, hydra_config, backbones)


def _evaluate(spec: RunSpec, task_env: TaskEnvironment, hydra_config: Any, backbones: BackboneCache) -> RunOutcome:
    from lmms_eval.evaluator import simple_evaluate

    from ..lmms import SinktopModel

    run_dir, results_path = spec.run_dir, spec.run_dir / RESULTS_FILE
    main = parallel.world().main
    run_dir.mkdir(parents=True, exist_ok=True)
    if main:
        config_text = OmegaConf.to_yaml(OmegaConf.create({"run": spec.to_dict(), "hydra_config": hydra_config or {}}))
        atomic_write_text(run_dir / "config.yaml", config_text)
        atomic_write_text(run_dir / "environment.json", json.dumps(environment_report(), indent=2))

    config = spec.config
    model = SinktopModel(backbone=backbones.get(spec), combination=spec.combination, frames=config.frames,
                         max_new_tokens=config.max_new_tokens, seed=config.seed,
                         records_path=str(run_dir / GENERATIONS_FILE), feature_cache=config.feature_cache,
                         feature_cache_gb=config.feature_cache_gb)
    seed = config.seed
    results = simple_evaluate(model=model, model_args=model.model_args, tasks=list(spec.tasks.names),
                              limit=spec.limit, log_samples=True, bootstrap_iters=0,
                              task_manager=task_env.task_manager, random_seed=seed, numpy_random_seed=seed,
                              torch_random_seed=seed, fewshot_random_seed=seed)
    records = model.all_records()  # every rank's generations, gathered (every rank takes part)
    if not main:  # lmms-eval scored every rank's samples on rank 0, which writes the results
        return RunOutcome("done", run_dir, pd.DataFrame(), encoder_passes(records))
    if not results or not results.get("results"):
        raise RuntimeError(f"lmms-eval returned no results for {spec.run_id} (tasks {list(spec.tasks.names)})")

    rows = results_rows(run_columns(spec, task_env.judge_model), results, records, spec.tasks.benchmark_of)
    for task, samples in sample_logs(results, records).items():
        atomic_write_jsonl(run_dir / "samples" / f"{task}.jsonl", samples)
    atomic_write_text(run_dir / SINK_STATS_FILE, json.dumps(sink_summary(records), indent=1))
    summary = {k: v for k, v in results.items() if k != "samples"}
    atomic_write_text(run_dir / "lmms_results.json", json.dumps(summary, indent=2, default=str))
    atomic_write_csv(results_path, rows)  # last: its presence marks the combination finished
    for stale in [run_dir / "error.log", *run_dir.glob("error.rank*.log")]:
        stale.unlink(missing_ok=True)  # an earlier attempt's failure, now superseded
    log.warning("finished %s -> %s", spec.run_id, results_path)

    try:
        log_table_run(spec.run_id, spec.to_dict(), rows, run_dir, asdict(config.wandb))
    except Exception as err:  # noqa: BLE001 - tracking must never cost a finished result
        log.error("W&B logging failed for %s (results are safe in %s): %s", spec.run_id, results_path, err)
    lost = unmeasured_judge_metrics(rows)
    if lost:
        failures = int(rows.loc[rows["metric"] == "judge_failures", "value"].fillna(0).sum())
        raise UnmeasuredJudgeMetrics(
            f"{len(lost)} judged metric(s) could not be measured ({', '.join(lost[:4])}{', ...' if len(lost) > 4 else ''};"
            f" {failures} failed judge call(s)); results are saved with them missing: fix the judge and re-score with "
            "the same command plus rescore=true (no generation is repeated)")
    return RunOutcome("done", run_dir, rows, encoder_passes(records))
