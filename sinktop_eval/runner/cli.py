"""`python -m sinktop_eval +model=<backbone> +pruner=<pruner> [stop=on|off] [ratio=0.1] [tasks=...]`

One combination per job; `-m` sweeps over comma-separated choices (Hydra multirun). Finished
combinations are skipped, so re-running an interrupted sweep loses nothing.

Under `torchrun --nproc_per_node N` / `accelerate launch --num_processes N` every rank runs this with the
same config, answers its shard, and rank 0 writes the results. A failure on any rank ends that rank with
exit code 1 at once (the launcher then stops the others and exits non-zero): ranks of a data-parallel job
cannot skip a combination on their own, so "continue the sweep" holds for single-process sweeps only.
"""
from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ..files import check_writable, storage_problem
from ..lmms import parallel
from .config import ConfigError, check_overrides, output_dirs, register_schema, resolve_run

log = logging.getLogger("sinktop_eval")


def _print_rows(rows) -> None:
    if rows is None or rows.empty:
        return
    shown = rows[["task", "split", "metric", "value", "kept_visual_tokens"]].copy()
    print(shown.to_string(index=False, na_rep="missing"))


def _print_passes(passes: dict[str, int] | None) -> None:
    if passes and passes.get("hit", 0) + passes.get("miss", 0):
        print(f"feature cache: {passes['hit']} encoder pass(es) saved, {passes['miss']} run")


def _lmms_eval_log_level() -> None:
    """lmms-eval logs through loguru, whose default handler prints DEBUG (hundreds of task-index lines per
    run); keep its INFO and up. LMMS_EVAL_VERBOSITY=DEBUG brings the rest back."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("LMMS_EVAL_VERBOSITY", "INFO").upper())


register_schema()


@hydra.main(version_base=None, config_path="pkg://sinktop_eval.configs", config_name="config")
def main(cfg: DictConfig) -> float | None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _lmms_eval_log_level()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    sweep_dir = Path(HydraConfig.get().sweep.dir) if multirun else None
    here = parallel.world()
    try:
        spec = resolve_run(cfg)
    except ConfigError as err:
        if not multirun:
            print(f"sinktop-eval: config error: {err}", file=sys.stderr)
            sys.exit(2)
        # one invalid combination (e.g. stop=sttp for a pruner without a temporal test) must not end the
        # sweep: the others run, the summary lists this one, and the sweep exits 1 (every rank sees the same)
        from .sweep import record_job

        job = HydraConfig.get().job
        label = job.override_dirname or f"job {job.num}"
        if here.main:
            record_job(sweep_dir, {"run_id": label, "run_dir": None, "status": "failed",
                                   "error": f"config error: {err}"})
            print(f"FAILED {label}: config error: {err} (continuing the sweep)", file=sys.stderr)
        return

    from .run import run_combination  # heavy imports only once the config is known to be valid
    from .sweep import record_job

    if here.main:
        print(f"== {spec.run_id}")
    try:
        outcome = run_combination(spec, OmegaConf.to_container(cfg, resolve=True))
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a failed combination must not end the sweep
        message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        storage = storage_problem(err)
        log_name = "error.log" if not here.distributed else f"error.rank{here.rank}.log"
        if storage:  # a full disk or read-only folder: one line, and no traceback file we could not write anyway
            message = f"{storage}; free space or choose another output_dir="
        else:
            try:
                spec.run_dir.mkdir(parents=True, exist_ok=True)
                (spec.run_dir / log_name).write_text(traceback.format_exc(), encoding="utf-8")
            except OSError:
                pass
        if isinstance(err, ConfigError):
            if not multirun:
                print(f"sinktop-eval: config error: {message}", file=sys.stderr)
                sys.exit(2)
            message = f"config error: {message}"  # e.g. an unreachable judge: recorded, the sweep goes on
        elif not multirun or here.distributed:
            where = f" on rank {here.rank} of {here.size}" if here.distributed else ""
            trace = "" if storage else f"\n  (traceback: {spec.run_dir / log_name})"
            print(f"sinktop-eval: {spec.run_id} failed{where}: {message}{trace}", file=sys.stderr)
            sys.exit(1)
        record_job(sweep_dir, {"run_id": spec.run_id, "run_dir": str(spec.run_dir), "status": "failed",
                               "error": message})
        print(f"FAILED {spec.run_id}: {message} (continuing the sweep)", file=sys.stderr)
        return
    if not here.main:
        return
    if multirun:
        record_job(sweep_dir, {"run_id": spec.run_id, "run_dir": str(outcome.run_dir), "status": outcome.status,
                               "encoder_passes": outcome.encoder_passes})
    print(f"{outcome.status}: {outcome.run_dir}")
    _print_passes(outcome.encoder_passes)
    _print_rows(outcome.rows)
    if spec.config.objective:
        return objective_value(outcome.rows, spec.config.objective)
    return None


def objective_value(rows, objective: str) -> float:
    """The ``benchmark/metric`` value of a finished run (a sweeper maximises it); NaN when it was not measured."""
    benchmark, _, metric = objective.partition("/")
    hit = rows[(rows["benchmark"] == benchmark) & (rows["metric"] == metric)]["value"].dropna()
    return float(hit.iloc[0]) if len(hit) else float("nan")


def entry_point() -> None:
    try:  # Hydra's own messages for an unknown group option or a mistyped value span a dozen lines and exit 1
        check_overrides(sys.argv[1:])
        for folder in output_dirs(sys.argv[1:]):  # Hydra writes there first, with a traceback if it cannot
            try:
                check_writable(Path(folder))
            except OSError as err:
                raise ConfigError(f"output_dir={folder} is unusable ({storage_problem(err) or err}); choose another "
                                  "output_dir=") from None
    except ConfigError as err:
        print(f"sinktop-eval: config error: {err}", file=sys.stderr)
        sys.exit(2)
    main()
    parallel.shutdown()
