"""Sweep bookkeeping: every job's outcome in the sweep directory, and a summary when the sweep ends.

Jobs never abort the sweep on a model, data or per-combination config failure (the failure is recorded
and the next combination runs); the summary lists failures and the process exits 1 if there were any.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..results import RESULTS_FILE, atomic_write_csv
from .tracking import log_table_run

log = logging.getLogger(__name__)
SWEEP_LOG = "sweep_runs.jsonl"


def record_job(sweep_dir: Path, entry: dict[str, Any]) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with (sweep_dir / SWEEP_LOG).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    path = sweep_dir / SWEEP_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarise(sweep_dir: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """(all finished rows of the sweep's runs, the failed jobs)."""
    jobs = read_jobs(sweep_dir)
    frames = [pd.read_csv(Path(j["run_dir"]) / RESULTS_FILE) for j in jobs
              if j["status"] in ("done", "skipped") and (Path(j["run_dir"]) / RESULTS_FILE).exists()]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not rows.empty:  # a combination listed twice (e.g. dense with stop=on and off) counts once
        rows = rows.drop_duplicates(subset=["run_id", "task", "split", "metric"], keep="last")
    # a combination listed twice (dense with stop=off,on resolves to one run) reports its last outcome once
    last = {j["run_id"]: j for j in jobs}
    return rows, [j for j in last.values() if j["status"] == "failed"]


def encoder_passes(sweep_dir: Path) -> dict[str, int]:
    """The sweep's new generations by where their vision features came from, summed over its jobs (each
    job counts what it generated; a combination listed twice is skipped the second time and adds nothing)."""
    total = {"hit": 0, "miss": 0, "off": 0}
    for job in read_jobs(sweep_dir):
        for source, count in (job.get("encoder_passes") or {}).items():
            total[source] = total.get(source, 0) + count
    return total


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write summary.csv, log a W&B summary table, report failures.

    Jobs append their outcome to the sweep folder's ``sweep_runs.jsonl`` (one line each), so this works
    whichever launcher ran them: in this process (basic) or in other processes and machines (submitit),
    as long as the sweep folder is shared. Under a multi-process launch only rank 0 reports.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ..lmms.parallel import world

        if not world().main:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        passes = encoder_passes(sweep_dir)
        if passes["hit"] + passes["miss"]:
            print(f"\nfeature cache: {passes['hit']} vision-encoder pass(es) saved, {passes['miss']} run "
                  f"({passes['hit'] + passes['miss']} generations)")
        rows, failed = summarise(sweep_dir)
        if not rows.empty:
            atomic_write_csv(sweep_dir / "summary.csv", rows)
            print(f"\nsweep summary: {rows['run_id'].nunique()} runs, {len(rows)} rows -> {sweep_dir / 'summary.csv'}")
            try:
                log_table_run(f"sweep-{sweep_dir.name}", {"sweep_dir": str(sweep_dir)}, rows, sweep_dir,
                              dict(config.get("wandb") or {}), table_key="summary", job_type="sweep-summary")
            except Exception as err:  # noqa: BLE001 - the CSV is already safe
                log.error("W&B sweep summary failed (summary.csv is written): %s", err)
        for job in failed:
            print(f"FAILED {job['run_id']}: {job['error']}", file=sys.stderr)
        if failed:
            print(f"{len(failed)} combination(s) failed; fix and re-run the same command: finished ones are skipped",
                  file=sys.stderr)
            sys.exit(1)
