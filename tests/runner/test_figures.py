"""The paper's figures from results rows: each drawn only when the runs behind it exist, calibration
runs kept out of the tables, best calibration values found."""
import json

import pandas as pd

from sinktop_eval.report.build import build_tables, canonical_rows, load_paper_reference
from sinktop_eval.report.figures import (accuracy_vs_frames, paper_figures, selection_frequency, sensitivity,
                                         sink_alternatives, sink_tokens)


def row(pruner, stop, metric, value, frames=32, ratio=0.1, mu_s=0.0, mu_source="paper", settings="{}",
        sink_kept=None, benchmark="eventhallusion", gamma=1.1):
    return {"run_id": f"{pruner}-{stop}-{frames}-{mu_s}-{settings}", "backbone": "tiny_llava_ov",
            "family": "llava_ov", "weights": "random", "pruner": pruner, "stop": stop,
            "ratio": 1.0 if pruner == "dense" else ratio, "frames": frames, "mu_s": mu_s, "mu_t": 0.0, "gamma": gamma,
            "mu_source": mu_source, "pruner_settings": settings, "benchmark": benchmark,
            "task": f"sinktop_{benchmark}", "split": "", "metric": metric, "value": value,
            "kept_visual_tokens": 640.0, "sink_kept": sink_kept, "sink_dense": 640.0}


def test_nothing_is_drawn_without_the_runs_behind_it(tmp_path):
    rows = canonical_rows(pd.DataFrame([row("visionzip", "off", "binary_acc", 50.0)]))
    assert accuracy_vs_frames(rows, tmp_path / "f.png") is None
    assert sink_alternatives(rows, tmp_path / "a.png") is None
    assert sink_tokens(rows, tmp_path / "s.png") is None
    assert sensitivity(rows, tmp_path / "d.png", tmp_path / "c.json") is None
    assert selection_frequency([], tmp_path / "h.png") is None
    assert not list(tmp_path.iterdir())


def test_frames_alternatives_and_sink_counts_are_drawn(tmp_path):
    rows = [row(p, s, "binary_acc", 40.0 + frames / 8 + (5 if s == "on" else 0), frames=frames, sink_kept=k)
            for frames in (16, 32, 64) for p, s, k in (("visionzip", "off", 60.0), ("visionzip", "on", 12.0))]
    rows += [row("visionzip", "hard", "binary_acc", 47.0, settings=json.dumps({"hard_k": 0.1}), sink_kept=0.0),
             row("visionzip", "redistribute", "binary_acc", 45.0, settings=json.dumps({"redistribute_p": 0.6})),
             row("dense", "off", "binary_acc", 55.0, sink_kept=640.0)]
    rows = canonical_rows(pd.DataFrame(rows))
    for draw, name in ((accuracy_vs_frames, "frames.png"), (sink_alternatives, "alternatives.png"),
                       (sink_tokens, "sinks.png")):
        path = draw(rows, tmp_path / name)
        assert path is not None and path.stat().st_size > 5000, name


def test_selection_frequency_reads_each_runs_sink_summary(tmp_path):
    run = tmp_path / "runs" / "tiny_llava_ov_holitom_x"
    run.mkdir(parents=True)
    (run / "results.csv").write_text("run_id\n")
    frequency = [0.0] * 49
    frequency[45] = 1.0  # bottom row: the planted sink
    (run / "sink_stats.json").write_text(json.dumps({"grid": [7, 7], "selection_frequency": frequency,
                                                     "sink_positions": [45, 46]}))
    made = paper_figures(canonical_rows(pd.DataFrame([row("holitom", "on", "binary_acc", 1.0)])),
                         [run / "results.csv"], tmp_path / "out")
    assert [p.name for p in made] == ["selection_frequency.png"]


def test_calibration_sweeps_make_the_sensitivity_plot_and_stay_out_of_the_tables(tmp_path):
    grid = {0.0: 50.0, 0.01: 52.0, 0.03: 56.0, 0.05: 53.0}
    rows = [row("visionzip", "on", "binary_acc", v, mu_s=m, mu_source="user override") for m, v in grid.items()]
    # a gamma sweep at the paper's mu_s in the same folder: its points must not leak into the mu_s curve
    rows += [row("visionzip", "on", "binary_acc", v, mu_s=0.03, gamma=g, mu_source="user override")
             for g, v in ((1.0, 10.0), (1.2, 90.0))]
    rows += [row("visionzip", "on", "binary_acc", 51.0, mu_s=0.03), row("dense", "off", "binary_acc", 60.0)]
    canonical = canonical_rows(pd.DataFrame(rows))
    path = sensitivity(canonical, tmp_path / "sensitivity.png", tmp_path / "calibration.json")
    assert path is not None and path.stat().st_size > 5000
    mu_s, gamma = json.loads((tmp_path / "calibration.json").read_text())
    assert (mu_s["parameter"], mu_s["best"], mu_s["value"], mu_s["grid"]) == ("mu_s", 0.03, 56.0, list(grid))
    assert (gamma["parameter"], gamma["best"], gamma["grid"]) == ("gamma", 1.2, [1.0, 1.1, 1.2])
    [table] = [t for t in build_tables(pd.DataFrame(rows), load_paper_reference()) if t.spec.number == 1]
    by_label = {r[0]: dict(zip(table.header, r)) for r in table.rows}
    assert by_label["VisionZip + SToP"]["EH bin"] == "51.00"  # the paper-mu run, not a sweep point


def test_frames_and_variants_get_tables_of_their_own():
    rows = [row("visionzip", "off", "binary_acc", 50.0, frames=16), row("visionzip", "off", "binary_acc", 52.0),
            row("visionzip", "off", "binary_acc", 53.0, settings=json.dumps({"variant": "release"})),
            row("dense", "off", "binary_acc", 60.0), row("dense", "off", "binary_acc", 58.0, frames=16)]
    tables = [t for t in build_tables(pd.DataFrame(rows), load_paper_reference()) if t.spec.number == 1]
    cells = {(t.frames, t.variant): dict(zip(t.header, t.rows[1])) for t in tables}
    assert {k: v["EH bin"] for k, v in cells.items()} == {(16, "paper"): "50.00", (32, "paper"): "52.00",
                                                          (32, "release"): "53.00"}
    assert {k: dict(zip(t.header, t.rows[0]))["EH bin"] for k, t in
            zip(cells, tables)} == {(16, "paper"): "58.00", (32, "paper"): "60.00", (32, "release"): "60.00"}
    assert "16 frames" in tables[0].caption and "pruner variant release" in tables[2].caption


def test_sink_counts_compare_methods_on_the_same_videos_and_frame_count():
    from sinktop_eval.report.figures import _sink_counts

    def sink_row(pruner, stop, task, kept, dense, frames=32, n=10):
        return {**row(pruner, stop, "binary_acc", 1.0, frames=frames, sink_kept=kept), "task": task,
                "sink_dense": dense, "n_samples": n, "run_id": f"{pruner}-{stop}-{frames}"}

    rows = pd.DataFrame([
        sink_row("dense", "off", "eh", 100.0, 100.0), sink_row("dense", "off", "vc", 60.0, 60.0),
        sink_row("dense", "off", "eh", 50.0, 50.0, frames=16),  # another frame count: not on this chart
        sink_row("visionzip", "off", "eh", 40.0, 100.0),  # visionzip ran EH only: dense is compared on EH too
    ])
    counts = _sink_counts(canonical_rows(rows)).set_index("pruner")
    assert counts.loc["dense", "sink_kept"] == 100.0 and counts.loc["visionzip", "sink_kept"] == 40.0
    assert set(counts["frames"]) == {32}
