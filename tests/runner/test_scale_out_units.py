"""The runner's scale-out bookkeeping without models: encoder passes per run and per sweep, only rank 0
reports, per-rank generation files, the feature cache keys, hydra/<group> overrides left to Hydra."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sinktop_eval.lmms import parallel
from sinktop_eval.runner import sweep
from sinktop_eval.runner.config import ConfigError, check_overrides, compose, resolve_run
from sinktop_eval.runner.run import encoder_passes, generation_files
from sinktop_eval.runner.sweep import SweepSummary, record_job


def test_a_runs_encoder_passes_count_its_new_generations_only():
    records = [{"vision_cache": "miss"}, {"vision_cache": "hit"}, {"vision_cache": "hit"},
               {"vision_cache": "hit", "resumed": True}, {}]  # {}: a record written before the cache existed
    assert encoder_passes(records) == {"hit": 2, "miss": 1, "off": 1}


def test_generation_files_are_the_single_process_one_then_every_ranks(tmp_path):
    for name in ("generations.rank1.jsonl", "generations.jsonl", "generations.rank0.jsonl", "samples.jsonl"):
        (tmp_path / name).write_text("{}\n")
    assert [p.name for p in generation_files(tmp_path)] == ["generations.jsonl", "generations.rank0.jsonl",
                                                            "generations.rank1.jsonl"]
    assert generation_files(tmp_path / "missing") == []


def multirun_config(sweep_dir):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}, "wandb": {"mode": "disabled"}})


def test_the_sweep_prints_the_encoder_passes_its_cache_saved(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    record_job(sweep_dir, {"run_id": "A", "run_dir": None, "status": "failed", "error": "x"})  # no counts
    record_job(sweep_dir, {"run_id": "B", "run_dir": str(tmp_path / "B"), "status": "skipped", "encoder_passes": {"hit": 0, "miss": 0}})
    record_job(sweep_dir, {"run_id": "C", "run_dir": str(tmp_path / "C"), "status": "done", "encoder_passes": {"hit": 1, "miss": 5}})
    record_job(sweep_dir, {"run_id": "D", "run_dir": str(tmp_path / "D"), "status": "done", "encoder_passes": {"hit": 6, "miss": 0}})
    # C listed again in the same sweep (dense under stop=off,on): skipped, its first job's counts stay
    record_job(sweep_dir, {"run_id": "C", "run_dir": str(tmp_path / "C"), "status": "skipped", "encoder_passes": None})
    assert sweep.encoder_passes(sweep_dir) == {"hit": 7, "miss": 5, "off": 0}
    with pytest.raises(SystemExit):  # A failed
        SweepSummary().on_multirun_end(multirun_config(sweep_dir))
    assert "feature cache: 7 vision-encoder pass(es) saved, 5 run (12 generations)" in capsys.readouterr().out


def test_only_rank_0_reports_a_sweep(tmp_path, monkeypatch, capsys):
    sweep_dir = tmp_path / "sweep"
    record_job(sweep_dir, {"run_id": "A", "run_dir": None, "status": "failed", "error": "x"})
    monkeypatch.setattr(parallel, "world", lambda environ=None: parallel.World(rank=1, size=2, local_rank=1))
    SweepSummary().on_multirun_end(multirun_config(sweep_dir))  # no exit, no output: rank 0 reports
    assert capsys.readouterr() == ("", "")


def test_world_comes_from_the_launchers_variables():
    assert parallel.world({}) == parallel.World(rank=0, size=1, local_rank=0)
    here = parallel.world({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert here.distributed and not here.main and (here.rank, here.size, here.local_rank) == (3, 4, 1)


def test_feature_cache_keys_are_not_part_of_the_run_identity():
    base = resolve_run(compose(["+model=tiny_qwen25vl", "+pruner=holitom"]))
    cached = resolve_run(compose(["+model=tiny_qwen25vl", "+pruner=holitom", "feature_cache=/tmp/fc",
                                  "feature_cache_gb=2"]))
    assert cached.config.feature_cache == "/tmp/fc" and cached.config.feature_cache_gb == 2
    assert cached.run_id == base.run_id  # cached features give the same answers
    with pytest.raises(ConfigError, match=r"feature_cache_gb=0.0 is invalid; allowed: a size in GB > 0"):
        resolve_run(compose(["+model=tiny_qwen25vl", "+pruner=holitom", "feature_cache_gb=0"]))


def test_hydra_group_choices_are_left_to_hydra():
    check_overrides(["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "+model=tiny_qwen25vl",
                     "+pruner=holitom"])
