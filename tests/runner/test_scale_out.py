"""Scaling out as users do it, end to end on the tiny twin: `python -m sinktop_eval` under `torchrun` with 2 CPU
(gloo) ranks gives exactly the single-process predictions and results, and fails non-zero when one rank
fails; a sweep through Hydra's submitit launcher (``hydra/launcher=submitit_local``, the Slurm launcher's
local twin) gives the basic launcher's results (`run_combination` in the calling process, computed here
once), its summary, and resumes; the feature cache saves encoder passes across a sweep's combinations.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sinktop_eval.benchmarks.smoke_data import SMOKE_ENV
from sinktop_eval.runner.config import task_set

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
FAST = ("tasks=smoke", "limit=2", "frames=4", "max_new_tokens=3", "wandb.mode=disabled")
DROPPED_ENV = ("SINKTOP_JUDGE_URL", "SINKTOP_JUDGE_KEY", "SINKTOP_JUDGE_MODEL", "OPENAI_API_URL", "OPENAI_API_KEY",
               "MODEL_VERSION", "SINKTOP_DATA_ROOT", "SINKTOP_SKIP_MISSING_VIDEOS", "HYDRA_FULL_ERROR",
               "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU")
KEY = ["run_id", "task", "split", "metric"]
COMPARED = KEY + ["value", "n_samples", "kept_visual_tokens", "dense_visual_tokens", "prefill_tflops"]


def launch(*args: str, smoke_root: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update({SMOKE_ENV: str(smoke_root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
                "TOKENIZERS_PARALLELISM": "false"})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def sinktop(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return launch("-m", "sinktop_eval", *args, **kwargs)


def torchrun(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return launch("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "sinktop_eval",
                  *args, **kwargs)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, smoke_root) -> dict[str, Path]:
    """The single-process runs (what `python -m sinktop_eval` and the basic launcher do: `run_combination` in
    the calling process), in this process: pruner -> run directory."""
    from omegaconf import OmegaConf

    from sinktop_eval.benchmarks import judge
    from sinktop_eval.runner.config import compose, resolve_run
    from sinktop_eval.runner.run import BackboneCache, run_combination

    out = tmp_path_factory.mktemp("baseline")
    saved = dict(os.environ)
    backbones = BackboneCache()
    try:
        for name in DROPPED_ENV:
            os.environ.pop(name, None)
        os.environ[SMOKE_ENV] = str(smoke_root)
        runs = {}
        for pruner in ("holitom", "uniform"):
            cfg = compose(["+model=tiny_qwen25vl", f"+pruner={pruner}", *FAST, f"output_dir={out}"])
            runs[pruner] = run_combination(resolve_run(cfg), OmegaConf.to_container(cfg, resolve=True),
                                           backbones=backbones).run_dir
    finally:
        judge.reset()
        os.environ.clear()
        os.environ.update(saved)
    return runs


def predictions(run_dir: Path) -> dict[tuple[str, int], str]:
    """(task, doc) -> answer, from every rank's generations file (the data folder may differ between runs)."""
    return {(r["task"], r["doc_id"]): r["prediction"] for path in sorted(run_dir.glob("generations*.jsonl"))
            for r in map(json.loads, path.read_text().splitlines())}


def rows(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame.sort_values(KEY)[COMPARED].reset_index(drop=True)


def the_run(out: Path) -> Path:
    [run_dir] = [p for p in out.iterdir() if p.name not in ("_hydra", ".locks")]
    return run_dir


def rank1_only_video(smoke_root: Path) -> Path:
    """A video that, with limit=2 and 2 ranks, only rank 1 reads (lmms-eval gives rank r the docs r, r+2, ...)."""
    from lmms_eval.tasks import TaskManager, get_task_dict

    from sinktop_eval.resources import TASKS_DIR
    from sinktop_eval.runner.config import task_set

    def leaves(tree):
        for value in tree.values():
            yield from leaves(value) if isinstance(value, dict) else [value]

    names = list(task_set("smoke").names)
    saved = {k: os.environ.get(k) for k in (SMOKE_ENV, "SINKTOP_DATA_ROOT")}
    os.environ.update({SMOKE_ENV: str(smoke_root), "SINKTOP_DATA_ROOT": "builtin:smoke"})
    try:
        docs = [task.eval_docs for task in leaves(get_task_dict(names, TaskManager(include_path=[str(TASKS_DIR)])))]
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    rank0, rank1 = ({d[i]["video"] for d in docs} for i in (0, 1))
    only = sorted(rank1 - rank0)
    assert only, "the smoke data gives rank 1 no video of its own"
    return Path(only[0])


def test_two_cpu_ranks_fail_together_resume_per_rank_and_give_the_single_process_predictions(tmp_path, smoke_root,
                                                                                            baseline):
    # rank 1 fails (a corrupt video in its shard only): the job exits non-zero and marks nothing finished
    data = tmp_path / "smoke"
    shutil.copytree(smoke_root, data)
    victim = data / rank1_only_video(smoke_root).relative_to(smoke_root)
    original = victim.read_bytes()
    victim.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    command = ("+model=tiny_qwen25vl", "+pruner=holitom", *FAST, f"output_dir={tmp_path / 'two'}")
    failed = torchrun(*command, smoke_root=data, cwd=tmp_path)
    assert failed.returncode != 0
    assert "failed on rank 1 of 2" in failed.stderr and victim.name in failed.stderr
    run_dir = the_run(tmp_path / "two")
    assert not (run_dir / "results.csv").exists() and (run_dir / "error.rank1.log").exists()
    left = len(predictions(run_dir))  # what the ranks finished before the job stopped

    # the video repaired, the same command resumes every rank's finished generations and completes
    victim.write_bytes(original)
    two = torchrun(*command, smoke_root=data, cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("done: ") == 1  # rank 0 reports, once
    assert not list(run_dir.glob("error*.log"))  # the failed attempt's traceback is superseded
    assert run_dir.name == baseline["holitom"].name  # the same combination, the same run id
    assert sorted(p.name for p in run_dir.glob("generations*.jsonl")) == ["generations.rank0.jsonl",
                                                                          "generations.rank1.jsonl"]
    expected = predictions(baseline["holitom"])  # limit=2 over every smoke task, in one process
    assert predictions(run_dir) == expected and len(expected) == 2 * len(task_set("smoke").names)
    pd.testing.assert_frame_equal(rows(run_dir / "results.csv"), rows(baseline["holitom"] / "results.csv"))
    logged = [g for path in (run_dir / "samples").glob("*.jsonl") for sample in map(json.loads, path.read_text().splitlines())
              for g in sample["generations"]]
    assert len(logged) == len(expected) and sum(bool(g.get("resumed")) for g in logged) == left
    lmms = json.loads((run_dir / "lmms_results.json").read_text())
    assert lmms["usage"]["total"]["n_api_calls"] == len(expected) - left  # every rank's new tokens were counted
    assert "pruner=holitom" in lmms["config"]["model_args"] and "frames=4" in lmms["config"]["model_args"]


def test_submitit_sweep_equals_the_basic_launcher_resumes_and_saves_encoder_passes(tmp_path, smoke_root, baseline):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = ("-m", "+model=tiny_qwen25vl", "+pruner=holitom,uniform", *FAST, "hydra/launcher=submitit_local",
             "hydra.launcher.timeout_min=10")
    out = tmp_path / "submitit"
    first = sinktop(*sweep, f"output_dir={out}", f"feature_cache={tmp_path / 'features'}", smoke_root=smoke_root,
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]

    [sweep_dir] = (out / "_hydra").glob("multirun_*")
    assert (sweep_dir / ".submitit").is_dir()  # the jobs ran in submitit's own processes
    jobs = [json.loads(line) for line in (sweep_dir / "sweep_runs.jsonl").read_text().splitlines()]
    assert sorted(j["status"] for j in jobs) == ["done", "done"]
    for job in jobs:
        assert (Path(job["run_dir"]) / "results.csv").exists()  # a CSV per combination
    summary = pd.read_csv(sweep_dir / "summary.csv").sort_values(KEY)[COMPARED].reset_index(drop=True)
    expected = pd.concat([pd.read_csv(run / "results.csv") for run in baseline.values()])
    pd.testing.assert_frame_equal(summary, expected.sort_values(KEY)[COMPARED].reset_index(drop=True))

    # one vision pass per video for the whole sweep: the second combination reads every video from the cache
    passes = {k: sum(j["encoder_passes"][k] for j in jobs) for k in ("hit", "miss")}
    generations = [r for job in jobs for r in map(json.loads, (Path(job["run_dir"]) / "generations.jsonl")
                                                  .read_text().splitlines())]
    videos = len({r["video"] for r in generations})
    assert passes["miss"] >= videos and passes["hit"] + passes["miss"] == len(generations)
    assert passes["hit"] >= 28 - 2 * videos  # concurrent jobs may both encode a video first, never more
    assert f"{passes['hit']} vision-encoder pass(es) saved" in first.stdout

    again = sinktop(*sweep, f"output_dir={out}", smoke_root=smoke_root, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    [second] = [d for d in (out / "_hydra").glob("multirun_*") if d != sweep_dir]
    assert [json.loads(line)["status"] for line in (second / "sweep_runs.jsonl").read_text().splitlines()] == \
        ["skipped", "skipped"]
    pd.testing.assert_frame_equal(pd.read_csv(second / "summary.csv").sort_values(KEY)[COMPARED].reset_index(drop=True),
                                  summary)
