"""Sweep bookkeeping (sweep_runs.jsonl -> summary.csv, exit 1 on failures) and the W&B mode rules, without models."""
from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

from sinktop_eval.runner.sweep import SWEEP_LOG, SweepSummary, read_jobs, record_job, summarise
from sinktop_eval.runner.tracking import log_table_run, resolve_mode


def fake_run(root, run_id: str, metrics: dict[str, float]):
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    pd.DataFrame([{"run_id": run_id, "task": "t", "split": None, "metric": m, "value": v} for m, v in metrics.items()]
                 ).to_csv(run_dir / "results.csv", index=False)
    return run_dir


@pytest.fixture
def sweep(tmp_path):
    """A sweep dir whose log has: a done run, a skipped one, the done one again (dense under stop=on and
    off is one combination) and two failures (one without a run dir: a config error), one of them twice."""
    sweep_dir = tmp_path / "_hydra" / "multirun_x"
    a = fake_run(tmp_path, "A", {"acc": 0.5, "ci": 3.0})
    b = fake_run(tmp_path, "B", {"acc": 0.25})
    crashed = tmp_path / "C"
    crashed.mkdir()
    for entry in ({"run_id": "A", "run_dir": str(a), "status": "done"},
                  {"run_id": "B", "run_dir": str(b), "status": "skipped"},
                  {"run_id": "C", "run_dir": str(crashed), "status": "failed", "error": "CUDA out of memory"},
                  {"run_id": "+pruner=visionzip,stop=sttp", "run_dir": None, "status": "failed",
                   "error": "config error: stop=sttp needs holitom"},
                  {"run_id": "A", "run_dir": str(a), "status": "skipped"},
                  {"run_id": "C", "run_dir": str(crashed), "status": "failed", "error": "CUDA out of memory"}):
        record_job(sweep_dir, entry)
    return sweep_dir


def multirun_config(sweep_dir):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}, "wandb": {"mode": "disabled"}})


def test_jobs_are_appended_one_json_line_each(sweep):
    lines = (sweep / SWEEP_LOG).read_text().splitlines()
    assert len(lines) == 6 and [j["run_id"] for j in read_jobs(sweep)][:3] == ["A", "B", "C"]
    assert read_jobs(sweep.parent / "elsewhere") == []


def test_summary_has_each_finished_run_once_and_lists_the_failures(sweep):
    rows, failed = summarise(sweep)
    assert sorted(zip(rows["run_id"], rows["metric"])) == [("A", "acc"), ("A", "ci"), ("B", "acc")]
    assert sorted(j["run_id"] for j in failed) == ["+pruner=visionzip,stop=sttp", "C"]  # C failed twice: once


def test_sweep_end_writes_summary_csv_and_exits_1_naming_the_failures(sweep, capsys):
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary().on_multirun_end(multirun_config(sweep))
    assert exit_info.value.code == 1
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 3 and set(summary["run_id"]) == {"A", "B"}
    err = capsys.readouterr().err
    assert "FAILED C: CUDA out of memory" in err and "config error: stop=sttp needs holitom" in err
    assert "2 combination(s) failed" in err


def test_sweep_without_failures_ends_normally(tmp_path):
    sweep_dir = tmp_path / "sweep"
    record_job(sweep_dir, {"run_id": "A", "run_dir": str(fake_run(tmp_path, "A", {"acc": 1.0})), "status": "done"})
    SweepSummary().on_multirun_end(multirun_config(sweep_dir))  # no SystemExit
    assert pd.read_csv(sweep_dir / "summary.csv")["value"].tolist() == [1.0]


def test_sweep_where_everything_failed_writes_no_summary_and_exits_1(tmp_path):
    sweep_dir = tmp_path / "sweep"
    record_job(sweep_dir, {"run_id": "X", "run_dir": None, "status": "failed", "error": "config error: nope"})
    with pytest.raises(SystemExit, match="1"):
        SweepSummary().on_multirun_end(multirun_config(sweep_dir))
    assert not (sweep_dir / "summary.csv").exists()


# --------------------------------------------------------------------------- W&B mode


@pytest.fixture
def no_wandb_login(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc


@pytest.mark.parametrize("env,expected", [("offline", "offline"), ("disabled", "disabled"), ("online", "online"),
                                          ("dryrun", "offline"), ("", "offline")])
def test_auto_mode_follows_wandb_mode_else_stays_offline_without_a_login(env, expected, monkeypatch, no_wandb_login):
    monkeypatch.setenv("WANDB_MODE", env)
    assert resolve_mode("auto") == resolve_mode(None) == expected


def test_auto_mode_goes_online_only_with_credentials(monkeypatch, no_wandb_login):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"


def test_explicit_mode_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    assert resolve_mode("offline") == "offline" and resolve_mode("disabled") == "disabled"


def test_disabled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    rows = pd.DataFrame([{"task": "t", "split": "", "metric": "acc", "value": 1.0}])
    assert log_table_run("r", {}, rows, tmp_path / "run", {"mode": "disabled"}) is None
    assert not (tmp_path / "run").exists()


def test_metrics_a_failing_judge_left_missing_are_named():
    from sinktop_eval.runner.run import unmeasured_judge_metrics

    rows = pd.DataFrame([
        {"task": "eh", "metric": "binary_acc", "value": 50.0},
        {"task": "eh", "metric": "desc_acc", "value": float("nan")},  # every judge call failed
        {"task": "eh", "metric": "judge_failures", "value": 6.0},
        {"task": "vcg", "metric": "ci", "value": float("nan")},  # no judge configured: missing by design
        {"task": "vcg", "metric": "judge_failures", "value": float("nan")},
        {"task": "tu", "metric": "tu", "value": 3.0},  # some calls failed, the rest measured it
        {"task": "tu", "metric": "judge_failures", "value": 1.0},
    ])
    assert unmeasured_judge_metrics(rows) == ["eh/desc_acc"]
    assert unmeasured_judge_metrics(rows[rows["task"] != "eh"]) == []


def test_a_sweeper_gets_the_objective_metric_of_a_finished_run():
    from sinktop_eval.runner.cli import objective_value

    rows = pd.DataFrame([{"benchmark": "eventhallusion", "metric": "binary_acc", "value": 61.0},
                         {"benchmark": "eventhallusion", "metric": "desc_acc", "value": float("nan")},
                         {"benchmark": None, "metric": "binary_acc", "value": 5.0}])
    assert objective_value(rows, "eventhallusion/binary_acc") == 61.0
    assert objective_value(rows, "eventhallusion/desc_acc") != objective_value(rows, "eventhallusion/desc_acc")  # NaN


def test_results_files_are_group_readable_and_sweep_folders_do_not_collide(tmp_path):
    """Results on a shared filesystem are readable by the group (mkstemp alone gives 0600); a sweep folder
    carries microseconds, so two sweeps started in the same second get their own."""
    import stat

    from sinktop_eval.files import atomic_write_text
    from sinktop_eval.resources import CONFIG_DIR

    atomic_write_text(tmp_path / "results.csv", "a\n")
    assert stat.S_IMODE((tmp_path / "results.csv").stat().st_mode) == 0o644
    sweep_dir = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "config.yaml"))["hydra"]["sweep"]["dir"]
    assert sweep_dir.startswith("${output_dir}/_hydra/multirun_") and sweep_dir.endswith("%S-%f}")
