"""`run_combination` in-process on the tiny Qwen twin over the smoke tasks: the run directory, skip-if-done,
force (nothing deleted), sample-level resume after a crash, and the offline W&B record.

The twin is loaded once per module into its own `BackboneCache` (from the environment's SINKTOP_CACHE,
before `clean_task_env` points that at a per-test folder for the judge cache), and every run gets it.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from sinktop_eval.benchmarks import judge
from sinktop_eval.benchmarks.smoke_data import SMOKE_ENV
from sinktop_eval.results import COLUMNS
from sinktop_eval.runner import run
from sinktop_eval.runner.config import ConfigError, compose, resolve_run
from sinktop_eval.runner.run import GENERATIONS_FILE, BackboneCache, run_combination

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
# limit/frames/max_new_tokens keep one run over the 8 smoke tasks to a few seconds on CPU
BASE = ("+model=tiny_qwen25vl", "+pruner=holitom", "limit=2", "frames=4", "max_new_tokens=4")
RUN_ENV = ("SINKTOP_JUDGE_URL", "SINKTOP_JUDGE_KEY", "SINKTOP_JUDGE_MODEL", "SINKTOP_JUDGE_RETRIES",
           "SINKTOP_JUDGE_BACKOFF", "SINKTOP_JUDGE_TIMEOUT", "OPENAI_API_URL", "OPENAI_API_KEY", "MODEL_VERSION",
           "SINKTOP_DATA_ROOT", "SINKTOP_EVENTHALLUSION_DIR", "SINKTOP_VIDEOCOMP_DIR", "SINKTOP_VIDEOCHATGPT_DIR",
           "SINKTOP_SKIP_MISSING_VIDEOS")


def compose_spec(output_dir: Path, *overrides: str):
    """(RunSpec, resolved Hydra config) the way `python -m sinktop_eval` builds them."""
    cfg = compose([*BASE, f"output_dir='{output_dir}'", *overrides])
    return resolve_run(cfg), OmegaConf.to_container(cfg, resolve=True)


class GenerateSpy:
    """Wraps the backbone's `generate`: counts calls, and raises once `fail_after` calls went through."""

    def __init__(self, backbone, fail_after: int | None = None):
        self.real = type(backbone).generate.__get__(backbone)  # the real one, not an earlier spy
        self.fail_after, self.calls = fail_after, 0

    def __call__(self, *args, **kwargs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("injected crash")
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture(scope="module")
def backbones():
    cache = BackboneCache()
    spec, _ = compose_spec(Path("unused"))
    cache.get(spec)
    return cache


@pytest.fixture(scope="module")
def backbone(backbones):
    spec, _ = compose_spec(Path("unused"))
    return backbones.get(spec)


@pytest.fixture(autouse=True)
def _restore_environ():
    """Runs export judge/data settings to os.environ (for lmms-eval's tasks); undo that after each test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def isolate(mp: pytest.MonkeyPatch, smoke_root: Path, cache: Path) -> None:
    for name in RUN_ENV:
        mp.setenv(name, "")
        mp.delenv(name)
    mp.setenv(SMOKE_ENV, str(smoke_root))
    mp.setenv("SINKTOP_CACHE", str(cache))  # judge cache only: the twin is already loaded
    judge.reset()


@dataclass
class Finished:
    spec: object
    outcome: run.RunOutcome
    generate_calls: int


@pytest.fixture(scope="module")
def finished(tmp_path_factory, smoke_root, backbones, backbone) -> Finished:
    """One finished run (W&B offline), shared by the tests that only read it."""
    base = tmp_path_factory.mktemp("finished")
    saved = dict(os.environ)
    try:
        with pytest.MonkeyPatch.context() as mp:
            isolate(mp, smoke_root, base / "cache")
            spy = GenerateSpy(backbone)
            mp.setattr(backbone, "generate", spy)
            spec, cfg = compose_spec(base / "runs", "wandb.mode=offline")
            outcome = run_combination(spec, cfg, backbones=backbones)
    finally:
        judge.reset()
        os.environ.clear()
        os.environ.update(saved)
    return Finished(spec, outcome, spy.calls)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- a finished run


def test_finished_run_directory_holds_every_artifact(finished):
    spec, outcome = finished.spec, finished.outcome
    run_dir = spec.run_dir
    assert outcome.status == "done" and outcome.run_dir == run_dir
    assert run_dir.name == spec.run_id and run_dir.parent == spec.output_dir

    config = OmegaConf.load(run_dir / "config.yaml")
    assert config.run.run_id == spec.run_id and config.run.pruner == "holitom" and config.run.config.frames == 4
    assert config.run.pruner_settings.tau == 0.8  # the pruner's own defaults, resolved, are recorded
    assert config.hydra_config.model.backbone == "tiny_qwen25vl"  # the composed Hydra config is kept too
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["packages"]["lmms-eval"] and "commit" in environment["git"]

    generations = read_jsonl(run_dir / GENERATIONS_FILE)
    assert len(generations) == finished.generate_calls > 0  # one line per backbone call
    assert len({g["key"] for g in generations}) == len(generations)
    assert all(0 < g["kept_visual_tokens"] < g["dense_visual_tokens"] for g in generations)

    leaves = {g["task"] for g in generations}
    assert len(leaves) == 8  # every smoke task family ran
    assert {p.stem for p in (run_dir / "samples").glob("*.jsonl")} == leaves
    for task in leaves:
        samples = read_jsonl(run_dir / "samples" / f"{task}.jsonl")
        assert len(samples) == 2  # limit=2
        assert all(s["generations"] and s["generations"][0]["task"] == task for s in samples)
    lmms = json.loads((run_dir / "lmms_results.json").read_text())
    assert leaves <= set(lmms["results"]) and "samples" not in lmms
    # every generation says which kept tokens sit at the video's sink positions; the run sums them up
    assert all(0 <= g["sink"]["kept_at_sink"] <= g["sink"]["dense_at_sink"] for g in generations)
    sinks = json.loads((run_dir / "sink_stats.json").read_text())
    assert sinks["videos"] == len(generations) and sinks["kept_at_sink"] == sum(g["sink"]["kept_at_sink"]
                                                                                 for g in generations)
    h, w = sinks["grid"]
    assert len(sinks["selection_frequency"]) == h * w and all(0 <= f <= 1 for f in sinks["selection_frequency"])


def test_results_csv_has_the_design_columns_and_no_stderr_rows(finished):
    spec = finished.spec
    rows = pd.read_csv(spec.run_dir / "results.csv")
    assert list(rows.columns[:len(COLUMNS)]) == COLUMNS
    assert len(rows) == len(finished.outcome.rows) > 0
    assert not rows["metric"].str.contains("stderr").any()
    assert not rows["metric"].isin(["alias"]).any()
    assert set(rows["run_id"]) == {spec.run_id}
    assert (rows["pruner"] == "holitom").all() and (rows["stop"] == "on").all()
    assert (rows["ratio"] == 0.1).all() and (rows["frames"] == 4).all() and (rows["limit"] == 2).all()
    assert (rows["n_samples"] == 2).all()
    assert (rows["family"] == "qwen25vl").all() and (rows["weights"] == "random").all()
    # the task set names what each listed task measures: the tables select by it
    benchmarks = rows.drop_duplicates("task").set_index("task")["benchmark"].to_dict()
    assert benchmarks == {"sinktop_eventhallusion": "eventhallusion", "sinktop_videocomp_activitynet": "videocomp",
                          "sinktop_videocomp_youcook2": "videocomp", "sinktop_vcg_generic": "vcgbench",
                          "sinktop_vcg_temporal": "vcgbench", "sinktop_vcg_consistency": "vcgbench",
                          "sinktop_mvbench_local": "mvbench", "sinktop_argus": "argus"}
    assert (rows["kept_visual_tokens"] < rows["dense_visual_tokens"]).all()
    assert rows["judge_model"].isna().all()  # no judge configured
    assert (rows["sink_kept"] <= rows["sink_dense"]).all() and rows["sink_dense"].gt(0).all()
    # every metric of the smoke tasks has a row; judge metrics without a judge are empty, not zero
    metrics = set(rows["metric"])
    assert {"binary_acc", "acc", "activitynet_acc", "youcook2_acc", "ci", "desc_acc"} <= metrics
    assert rows.loc[rows["metric"] == "ci", "value"].isna().all()
    assert rows.loc[rows["metric"] == "acc", "value"].notna().all()


def test_offline_wandb_run_holds_the_results_table(finished):
    run_dir = finished.spec.run_dir
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((run_dir / "wandb").iterdir()) if (run_dir / "wandb").exists() else "no wandb dir"
    assert list(offline[0].glob("run-*.wandb"))  # the record `wandb sync` uploads later
    tables = list(offline[0].glob("files/media/table/results_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    rows = pd.read_csv(run_dir / "results.csv")
    assert table["columns"] == list(rows.columns)
    assert len(table["data"]) == len(rows)
    assert {r[table["columns"].index("metric")] for r in table["data"]} == set(rows["metric"])


def test_second_call_is_skipped_without_touching_the_backbone(finished, backbones, backbone, monkeypatch,
                                                            clean_task_env):
    spy = GenerateSpy(backbone, fail_after=0)  # any generation would raise
    monkeypatch.setattr(backbone, "generate", spy)
    before = {p.name: p.stat().st_mtime_ns for p in finished.spec.run_dir.iterdir()}
    loads = backbones.loads

    outcome = run_combination(finished.spec, backbones=backbones)
    assert outcome.status == "skipped" and spy.calls == 0 and backbones.loads == loads
    pd.testing.assert_frame_equal(outcome.rows, pd.read_csv(finished.spec.run_dir / "results.csv"))
    assert {p.name: p.stat().st_mtime_ns for p in finished.spec.run_dir.iterdir()} == before


# --------------------------------------------------------------------------- force


def test_force_reruns_and_moves_the_previous_run_aside(finished, backbones, backbone, monkeypatch, clean_task_env,
                                                       tmp_path):
    old = finished.spec.run_dir
    spec, cfg = compose_spec(tmp_path, "force=true", "wandb.mode=disabled", f"data_root={tmp_path}")
    assert spec.run_id == finished.spec.run_id  # force, output_dir and data_root are not part of the identity
    shutil.copytree(old, spec.run_dir)
    spy = GenerateSpy(backbone)
    monkeypatch.setattr(backbone, "generate", spy)
    environ_before = {k: os.environ.get(k) for k in ("SINKTOP_DATA_ROOT", "HF_HOME", "OPENAI_API_URL")}

    outcome = run_combination(spec, cfg, backbones=backbones)
    # what the run exported for the tasks ends with it: the next job of a sweep starts clean
    assert {k: os.environ.get(k) for k in environ_before} == environ_before
    assert outcome.status == "done" and backbones.loads == 1  # the module's one load serves every run
    assert spy.calls == finished.generate_calls  # everything generated again, nothing resumed
    assert len(read_jsonl(spec.run_dir / GENERATIONS_FILE)) == finished.generate_calls
    assert (spec.run_dir / "results.csv").exists()
    assert not (spec.run_dir / "wandb").exists()  # wandb.mode=disabled writes no W&B directory

    backups = [p for p in tmp_path.iterdir() if p.name.startswith(f"{spec.run_id}.replaced-")]
    assert len(backups) == 1
    for name in ("results.csv", GENERATIONS_FILE, "config.yaml", "lmms_results.json"):
        assert (backups[0] / name).read_bytes() == (old / name).read_bytes(), name
    # the tables read the new run only, not the attempt kept aside
    from sinktop_eval.results import read_results

    assert read_results([tmp_path])["timestamp"].unique().tolist() == outcome.rows["timestamp"].unique().tolist()


def test_rescore_judges_the_saved_answers_without_generating(finished, backbones, backbone, monkeypatch,
                                                            clean_task_env, stub_judge, use_judge, tmp_path):
    """The finished run had no judge (judge metrics missing); with one configured, rescore fills them in."""
    before = pd.read_csv(finished.spec.run_dir / "results.csv")
    assert before.loc[before["metric"] == "desc_acc", "value"].isna().all()
    spec, cfg = compose_spec(tmp_path, "rescore=true", "wandb.mode=disabled")
    shutil.copytree(finished.spec.run_dir, spec.run_dir)
    spy = GenerateSpy(backbone, fail_after=0)  # any generation would raise
    monkeypatch.setattr(backbone, "generate", spy)
    use_judge(stub_judge().url)

    outcome = run_combination(spec, cfg, backbones=backbones)
    assert outcome.status == "done" and spy.calls == 0
    after = pd.read_csv(spec.run_dir / "results.csv")
    judged = after[after["metric"].isin(["desc_acc", "ci", "tu", "co", "judge_failures"])]
    assert len(judged) >= 5 and judged["value"].notna().all() and after["judge_model"].eq("stub-judge").all()
    unjudged = ["binary_acc", "activitynet_acc", "acc"]
    pd.testing.assert_series_equal(
        after[after["metric"].isin(unjudged)].sort_values(["task", "metric"])["value"].reset_index(drop=True),
        before[before["metric"].isin(unjudged)].sort_values(["task", "metric"])["value"].reset_index(drop=True))
    assert [p.name for p in tmp_path.iterdir() if ".replaced-" in p.name]  # the unjudged run kept aside


def test_forced_run_failing_its_preflight_leaves_the_finished_run_in_place(finished, backbones, backbone, monkeypatch,
                                                                          clean_task_env, use_judge,
                                                                          closed_port_url, tmp_path):
    spec, cfg = compose_spec(tmp_path, "force=true", "wandb.mode=disabled")
    shutil.copytree(finished.spec.run_dir, spec.run_dir)
    spy = GenerateSpy(backbone, fail_after=0)
    monkeypatch.setattr(backbone, "generate", spy)
    use_judge(closed_port_url)  # a judge that cannot be reached fails the preflight

    with pytest.raises(ConfigError, match="judge unreachable"):
        run_combination(spec, cfg, backbones=backbones)
    assert (spec.run_dir / "results.csv").read_bytes() == (finished.spec.run_dir / "results.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != run.LOCKS_DIR) == [spec.run_id]  # nothing moved aside
    assert spy.calls == 0


def test_a_second_process_on_the_same_combination_refuses_in_one_line(finished, tmp_path):
    import subprocess
    import sys

    spec, _ = compose_spec(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; from pathlib import Path\n"
        f"p = Path({str(tmp_path / run.LOCKS_DIR / (spec.run_id + '.lock'))!r}); p.parent.mkdir(parents=True)\n"
        "h = open(p, 'a+'); fcntl.flock(h, fcntl.LOCK_EX); h.write('pid 4242 on elsewhere'); h.flush()\n"
        "print('locked', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(run.RunLocked, match=r"is being evaluated by pid 4242 on elsewhere into .*; wait for it"):
            run_combination(spec)
        assert not spec.run_dir.exists()  # nothing started, nothing appended
    finally:
        holder.kill()
        holder.wait()
    with run.run_lock(spec):  # the holder's death released it
        pass


def test_forcing_twice_within_a_second_keeps_both_previous_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(run.time, "strftime", lambda fmt, *args: "20260101-000000")
    run_dir = tmp_path / "combo"
    for attempt in ("first", "second"):
        run_dir.mkdir()
        (run_dir / "results.csv").write_text(attempt)
        run._start_fresh(run_dir)
        assert not run_dir.exists()
    backups = sorted(tmp_path.iterdir())
    assert [p.name for p in backups] == ["combo.replaced-20260101-000000", "combo.replaced-20260101-000000-1"]
    assert [(p / "results.csv").read_text() for p in backups] == ["first", "second"]


# --------------------------------------------------------------------------- crash and resume


def test_crash_mid_run_leaves_no_results_and_the_rerun_generates_only_the_rest(finished, backbones, backbone,
                                                                               monkeypatch, clean_task_env, tmp_path):
    spec, cfg = compose_spec(tmp_path, "wandb.mode=disabled")
    done_before_crash = 5  # mid-way through the third smoke task
    crashing = GenerateSpy(backbone, fail_after=done_before_crash)
    monkeypatch.setattr(backbone, "generate", crashing)
    with pytest.raises(SystemExit, match="injected crash"):  # SinktopModelError passes lmms-eval's handlers
        run_combination(spec, cfg, backbones=backbones)

    generations = spec.run_dir / GENERATIONS_FILE
    assert not (spec.run_dir / "results.csv").exists()
    first = read_jsonl(generations)
    assert len(first) == done_before_crash

    (spec.run_dir / "error.log").write_text("the crash's traceback, as __main__ writes it")
    resumed = GenerateSpy(backbone)
    monkeypatch.setattr(backbone, "generate", resumed)
    outcome = run_combination(spec, cfg, backbones=backbones)
    assert not (spec.run_dir / "error.log").exists()  # superseded by the finished run
    assert outcome.status == "done" and (spec.run_dir / "results.csv").exists() and backbones.loads == 1
    assert resumed.calls == finished.generate_calls - done_before_crash

    records = read_jsonl(generations)
    assert records[:done_before_crash] == first  # appended to, never rewritten
    assert len(records) == finished.generate_calls and len({r["key"] for r in records}) == len(records)
    reused = [g for path in (spec.run_dir / "samples").glob("*.jsonl") for s in read_jsonl(path)
              for g in s["generations"] if g.get("resumed")]
    assert sorted(g["key"] for g in reused) == sorted(r["key"] for r in first)

    # the interrupted-then-resumed run equals an uninterrupted one
    uninterrupted = {r["key"]: r["prediction"] for r in read_jsonl(finished.spec.run_dir / GENERATIONS_FILE)}
    assert {r["key"]: r["prediction"] for r in records} == uninterrupted
    key = ["task", "split", "metric"]
    ours = outcome.rows.sort_values(key)[key + ["value", "n_samples"]].reset_index(drop=True)
    theirs = finished.outcome.rows.sort_values(key)[key + ["value", "n_samples"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)
