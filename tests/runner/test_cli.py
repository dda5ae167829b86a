"""`python -m sinktop_eval` as a user runs it (a subprocess, outside the repository): config errors are one line and
exit 2, a missing data folder stops the run before any model loads, and a sweep survives a failed combination.

Subprocesses see the session's smoke benchmark (SINKTOP_SMOKE_DIR), no judge, offline W&B, one torch
thread, and the environment's SINKTOP_CACHE (where the tiny twins already are).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sinktop_eval.benchmarks.smoke_data import SMOKE_ENV
from sinktop_eval.runner.config import ConfigError, check_overrides, group_options

DROPPED_ENV = ("SINKTOP_JUDGE_URL", "SINKTOP_JUDGE_KEY", "SINKTOP_JUDGE_MODEL", "OPENAI_API_URL", "OPENAI_API_KEY",
               "MODEL_VERSION", "SINKTOP_DATA_ROOT", "SINKTOP_EVENTHALLUSION_DIR", "SINKTOP_VIDEOCOMP_DIR",
               "SINKTOP_VIDEOCHATGPT_DIR", "SINKTOP_SKIP_MISSING_VIDEOS", "HYDRA_FULL_ERROR")
FAST = ("limit=2", "frames=4", "max_new_tokens=4", "wandb.mode=disabled")


def cli(*args: str, output_dir: Path, smoke_root: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update({SMOKE_ENV: str(smoke_root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
                "TOKENIZERS_PARALLELISM": "false"})
    return subprocess.run([sys.executable, "-m", "sinktop_eval", *args, f"output_dir={output_dir}"],
                          cwd=output_dir.parent, env=env, capture_output=True, text=True, timeout=timeout)


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


# --------------------------------------------------------------------------- group choices, in-process


@pytest.mark.parametrize("args,bad,group", [
    (["+model=tiny_qwen25vl", "+pruner=nope"], "'nope'", "pruner"),
    (["-m", "+model=tiny_qwen25vl", "+pruner=holitom,nope"], "'nope'", "pruner"),
    (["+model=tiny_qwen25vl", "+pruner=choice(holitom,tome)"], "'tome'", "pruner"),
    (["+model=tiny_qwen", "+pruner=holitom"], "'tiny_qwen'", "model"),
    (["+model=tiny_qwen25vl", "+pruner=holitom", "tasks=nope"], "'nope'", "tasks"),
    (["+model=tiny_qwen25vl", "+pruner=holitom", "stop=maybe"], "'maybe'", "stop"),
])
def test_unknown_group_choice_names_the_value_and_the_options(args, bad, group):
    with pytest.raises(ConfigError) as err:
        check_overrides(args)
    message = str(err.value)
    assert f"{group}={bad} is unknown" in message and "\n" not in message
    assert message.endswith("allowed: " + ", ".join(group_options(group)))


def test_valid_choices_and_other_overrides_pass():
    check_overrides(["-m", "+model=tiny_qwen25vl,tiny_llava_ov", "+pruner=fastvid,holitom", "stop=off,on",
                           "tasks=smoke", "ratio=0.1,0.25", "pruner.settings.beta=0.65", "output_dir=/x=y",
                           "hydra.sweep.dir=/tmp/s", "~stop", "--cfg", "job", "+pruner=glob(*)"])


@pytest.mark.parametrize("arg,expected", [
    ("ratio=abc", "ratio='abc' is invalid: Value 'abc' of type 'str' could not be converted to Float"),
    ("frames=1.5", "frames=1.5 is invalid: Value '1.5' of type 'float' could not be converted to Integer"),
    ("ratio=0.1,abc", "ratio='abc' is invalid"),  # every value of a sweep
    ("model.dtyp=bf16", "model.dtyp='bf16' is invalid: Key 'dtyp' not in 'ModelConfig'"),
    ("retio=0.1", "retio=0.1 is invalid: Key 'retio' not in 'RunConfig'"),
    ("stop.mu_s=high", "stop.mu_s='high' is invalid"),
])
def test_values_are_checked_against_the_schema_types(arg, expected):
    with pytest.raises(ConfigError) as err:
        check_overrides(["+model=tiny_qwen25vl", "+pruner=holitom", arg])
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_pruner_settings_are_checked_against_every_chosen_pruner():
    with pytest.raises(ConfigError, match=r"pruner.settings.tau=0.65 is invalid \(pruner dense\): Key 'tau' not in"):
        check_overrides(["-m", "+model=tiny_qwen25vl", "+pruner=holitom,dense", "pruner.settings.tau=0.65"])
    with pytest.raises(ConfigError, match=r"pruner.settings.tau='x' is invalid \(pruner holitom\): .* to Float"):
        check_overrides(["+model=tiny_qwen25vl", "+pruner=holitom", "pruner.settings.tau=x"])
    check_overrides(["+model=tiny_qwen25vl", "+pruner=none", "++pruner.settings.extra=1"])  # force-add: Hydra's rule


def test_an_unparsable_override_does_not_hide_a_bad_choice_after_it():
    with pytest.raises(ConfigError, match="pruner='nope' is unknown"):
        check_overrides(["output_dir=/x=y", "+pruner=nope"])


def test_group_chosen_without_plus_says_how_to_append_it():
    with pytest.raises(ConfigError, match=r"pruner is not in the defaults list: write \+pruner=holitom"):
        check_overrides(["+model=tiny_qwen25vl", "pruner=holitom"])


# --------------------------------------------------------------------------- the CLI


@pytest.mark.slow
@pytest.mark.parametrize("args,expected", [
    (["+model=tiny_qwen25vl", "+pruner=nope"], ["pruner='nope' is unknown", *group_options("pruner")]),
    (["+model=tiny_qwen25vl", "+pruner=holitom", "ratio=1.5"], ["ratio=1.5 is invalid", "(0, 1]"]),
    (["+model=tiny_qwen25vl", "+pruner=holitom", "ratio=abc"], ["ratio='abc' is invalid", "Float"]),
    (["+pruner=holitom"], ["no model chosen", *group_options("model")]),
    (["+model=tiny_qwen25vl", "+pruner=holitom", "tasks=nope"], ["tasks='nope' is unknown", *group_options("tasks")]),
], ids=["unknown-pruner", "ratio", "ratio-type", "missing-model", "unknown-tasks"])
def test_config_errors_exit_2_with_one_line(args, expected, tmp_path, smoke_root):
    proc = cli(*args, output_dir=tmp_path / "out", smoke_root=smoke_root)
    assert proc.returncode == 2, proc.stderr
    lines = stderr_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sinktop-eval: config error: ")
    for fragment in expected:
        assert fragment in lines[0]
    assert not (tmp_path / "out").exists() or not any(p.name != "_hydra" for p in (tmp_path / "out").iterdir())


def test_an_unusable_output_dir_is_one_line_before_hydra_writes_anything(tmp_path, smoke_root):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for output_dir in (blocker, blocker / "runs"):
        proc = subprocess.run([sys.executable, "-m", "sinktop_eval", "+model=tiny_qwen25vl", "+pruner=holitom",
                               f"output_dir={output_dir}"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = stderr_lines(proc)
        assert len(lines) == 1 and lines[0].startswith(f"sinktop-eval: config error: output_dir={output_dir} is unusable")
        assert "choose another output_dir=" in lines[0]


@pytest.mark.slow
def test_missing_data_root_fails_naming_the_path_before_any_model_loads(tmp_path, smoke_root):
    empty = tmp_path / "benchmarks"
    empty.mkdir()
    proc = cli("+model=tiny_qwen25vl", "+pruner=holitom", "tasks=hallucination", f"data_root={empty}", *FAST,
               output_dir=tmp_path / "out", smoke_root=smoke_root)
    assert proc.returncode == 1, proc.stderr
    failure = [line for line in stderr_lines(proc) if "failed:" in line]
    assert len(failure) == 1, proc.stderr
    assert f"{empty}/EventHallusion" in failure[0] and "not found" in failure[0]
    assert "Loading weights" not in proc.stderr + proc.stdout  # the checkpoint was never opened
    assert not list((tmp_path / "out").rglob("generations.jsonl"))
    assert not list((tmp_path / "out").rglob("results.csv"))
    run_dirs = [p for p in (tmp_path / "out").iterdir() if p.name not in ("_hydra", ".locks")]
    assert len(run_dirs) == 1 and (run_dirs[0] / "error.log").exists()


@pytest.mark.slow
def test_an_unavailable_7b_checkpoint_fails_fast_saying_how_to_use_a_local_one(tmp_path, smoke_root):
    """The hub is offline here and the 7B model is not cached: one line pointing at model.path."""
    proc = cli("+model=qwen25vl", "+pruner=holitom", "tasks=smoke", *FAST, output_dir=tmp_path / "out",
               smoke_root=smoke_root, timeout=120)
    assert proc.returncode == 1, proc.stderr
    failure = [line for line in stderr_lines(proc) if "failed:" in line]
    assert len(failure) == 1, proc.stderr
    assert "Qwen/Qwen2.5-VL-7B-Instruct" in failure[0] and "model.path=" in failure[0]
    assert not list((tmp_path / "out").rglob("generations.jsonl"))


@pytest.mark.slow
def test_sweep_records_failed_combinations_finishes_the_others_and_exits_1(tmp_path, smoke_root):
    """visionzip: stop=sttp is a config error for it alone; uniform: holitom's `tau` is not one of its
    settings, so its combination fails to resolve (before anything loads); holitom runs (last, after both)."""
    out = tmp_path / "out"
    proc = cli("-m", "+model=tiny_qwen25vl", "+pruner=visionzip,uniform,holitom", "stop=sttp",
               "++pruner.settings.tau=0.5", *FAST, output_dir=out, smoke_root=smoke_root)
    assert proc.returncode == 1, proc.stderr[-3000:]

    sweeps = list((out / "_hydra").glob("multirun_*"))
    assert len(sweeps) == 1
    jobs = [json.loads(line) for line in (sweeps[0] / "sweep_runs.jsonl").read_text().splitlines()]
    assert [j["status"] for j in jobs] == ["failed", "failed", "done"]
    assert "pruner=visionzip" in jobs[0]["run_id"]
    assert jobs[0]["error"].startswith("config error: stop=sttp needs a pruner with a temporal")
    assert "pruner=uniform" in jobs[1]["run_id"] and jobs[1]["run_dir"] is None
    assert jobs[1]["error"].startswith("config error: bad setting for pruner 'uniform'")

    holitom = Path(jobs[2]["run_dir"])
    assert holitom.name.startswith("tiny_qwen25vl_holitom_stop-sttp_r0.1_smoke_limit2_")
    results = pd.read_csv(holitom / "results.csv")
    summary = pd.read_csv(sweeps[0] / "summary.csv")
    assert set(summary["run_id"]) == {holitom.name}
    pd.testing.assert_frame_equal(summary, results)

    failed = [line for line in stderr_lines(proc) if line.startswith("FAILED ")]
    assert any("stop=sttp" in line for line in failed) and any("pruner=uniform" in line for line in failed)
    assert "2 combination(s) failed" in proc.stderr
