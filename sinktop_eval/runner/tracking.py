"""Weights & Biases logging: offline unless the user has configured W&B, never blocking on the network."""
from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)
INIT_TIMEOUT_S = 30


def wandb_configured() -> bool:
    """True when the user has set up W&B credentials (API key in the environment or `wandb login`)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str | None) -> str:
    """auto -> $WANDB_MODE if set, else online when configured, else offline."""
    mode = (mode or "auto").lower()
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if wandb_configured() else "offline"


def _metric_key(row: pd.Series) -> str:
    split = f"/{row['split']}" if isinstance(row.get("split"), str) and row["split"] else ""
    return f"{row['task']}/{row['metric']}{split}"


def _table(frame: pd.DataFrame):
    import wandb

    return wandb.Table(dataframe=frame.astype(object).where(frame.notna(), None))


def log_table_run(name: str, config: dict[str, Any], rows: pd.DataFrame, directory: Path, settings: dict,
                  table_key: str = "results", job_type: str = "eval") -> str | None:
    """Log one W&B run: every numeric metric as a summary value plus the rows as a table.

    Returns the local W&B run directory (None when disabled). A failure to reach W&B online falls back
    to offline, so results are never lost to a network problem.
    """
    mode = resolve_mode(settings.get("mode"))
    if mode == "disabled":
        return None
    import wandb

    directory.mkdir(parents=True, exist_ok=True)
    kwargs = dict(project=settings.get("project") or "sinktop-eval", entity=settings.get("entity"),
                  group=settings.get("group"), name=name, job_type=job_type, config=config, dir=str(directory),
                  reinit="finish_previous", settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, console="off", quiet=True))
    try:
        run = wandb.init(mode=mode, **kwargs)
    except Exception as err:  # noqa: BLE001 - any failure to go online must not lose the run
        if mode != "online":
            raise
        log.warning("W&B online init failed (%s); logging offline instead (wandb sync later)", err)
        run = wandb.init(mode="offline", **kwargs)
    try:
        numeric = rows[rows["value"].notna()] if "value" in rows else rows.iloc[0:0]
        for _, row in numeric.iterrows():
            run.summary[_metric_key(row)] = float(row["value"])
        run.log({table_key: _table(rows)})
        return str(run.dir)
    finally:
        run.finish()
