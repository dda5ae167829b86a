"""Table maths: PDR by hand, missing cells stay missing, paper values sit beside ours with certainty."""
import pandas as pd
import pytest

from sinktop_eval.report.build import (MISSING, build_table, canonical_rows, load_paper_reference, pdr, to_latex,
                                       to_markdown)
from sinktop_eval.report.layout import TABLES
from sinktop_eval.tables import main

BENCHMARK_OF = {"sinktop_eventhallusion": "eventhallusion", "sinktop_videochatgpt_gen": "vcgbench",
                "sinktop_argus": "argus", "sinktop_videochatgpt_temporal": "vcgbench", "sinktop_mvbench19": "mvbench",
                "sinktop_videomme": "videomme", "sinktop_mlvu_dev": "mlvu"}  # what a task set says (mvbench_* subtasks of the group have none)


def row(pruner, stop, ratio, task, metric, value, backbone="llava_ov", split=""):
    twin = backbone.startswith("tiny_")
    return {"run_id": f"{backbone}-{pruner}-{stop}-{ratio}", "backbone": backbone,
            "family": backbone.removeprefix("tiny_"), "weights": "random" if twin else "pretrained",
            "pruner": pruner, "stop": stop, "ratio": ratio, "benchmark": BENCHMARK_OF.get(task), "task": task,
            "split": split, "metric": metric, "value": value,
            "kept_visual_tokens": 640.0 if pruner != "dense" else 6272.0, "prefill_tflops": 1.0}


def test_pdr_is_the_mean_relative_drop_over_shared_columns():
    value, used = pdr({"a": 45.0, "b": 80.0}, {"a": 50.0, "b": 100.0})  # drops 10% and 20%
    assert used == 2 and value == pytest.approx(15.0)
    value, used = pdr({"a": 45.0, "b": None}, {"a": 50.0, "b": 100.0})
    assert used == 1 and value == pytest.approx(10.0)
    assert pdr({"a": None}, {"a": 50.0}) == (None, 0)
    assert pdr({"a": 1.0}, {"a": 0.0}) == (None, 0)  # no relative drop from a zero baseline


def test_table1_cells_pdr_and_paper_values():
    results = pd.DataFrame([
        row("dense", "off", 1.0, "sinktop_eventhallusion", "binary_acc", 60.0),
        row("dense", "off", 1.0, "sinktop_eventhallusion", "desc_acc", 40.0),
        row("holitom", "off", 0.1, "sinktop_eventhallusion", "binary_acc", 54.0),
        row("holitom", "off", 0.1, "sinktop_eventhallusion", "desc_acc", 36.0),
        row("holitom", "on", 0.1, "sinktop_eventhallusion", "binary_acc", 57.0),
    ])
    table = build_table(TABLES[1], canonical_rows(results), load_paper_reference(), "llava_ov", 0.1)
    by_label = {r[0]: dict(zip(table.header, r)) for r in table.rows}
    assert by_label["Dense"]["EH bin"] == "60.00" and by_label["Dense"]["PDR (%)"] == "0.00"
    assert by_label["HoliTom"]["EH bin"] == "54.00" and by_label["HoliTom"]["EH desc"] == "36.00"
    assert by_label["HoliTom"]["PDR (%)"] == "10.00†"  # (10% + 10%) / 2 over 2 of 9 columns
    assert by_label["HoliTom + SToP"]["EH desc"] == MISSING  # never invented
    assert by_label["HoliTom + SToP"]["PDR (%)"] == "5.00†"
    assert by_label["VisionZip"]["EH bin"] == MISSING and by_label["VisionZip"]["PDR (%)"] == MISSING
    # paper: dense EH binary 63.33 confirmed twice; HoliTom off 60.88 secondary; FastVID+SToP desc doubtful
    assert by_label["Dense"]["EH bin paper"] == "63.33"
    assert by_label["HoliTom"]["EH bin paper"] == "60.88*"
    assert by_label["FastVID + SToP"]["EH desc paper"] == "36.75?"
    assert by_label["HoliTom"]["PDR paper"] == "6.22*"
    assert by_label["HoliTom"]["VCG CI paper"] == MISSING
    md, tex = to_markdown(table), to_latex(table)
    holitom_line = next(line for line in md.splitlines() if line.startswith("| HoliTom "))
    assert [cell.strip() for cell in holitom_line.strip("|").split("|")][:5] == \
        ["HoliTom", "54.00", "60.88*", "36.00", "36.75*"]
    assert "PDR over 2 of 9 PDR columns" in md and md.startswith("### Table 1: Fine-grained")
    assert "EH bin = eventhallusion/binary_acc" in md and "judge: none" in md
    assert r"\begin{tabular}" in tex and r"10.00$^\dagger$" in tex and r"60.88$^{*}$" in tex
    assert r"PDR (\%)" in tex and r"\caption{Table 1" in tex and "--" in tex  # escaped, missing as --


def test_each_table_shows_its_own_drop_column_and_definition():
    """Table 2's and Table 4's paper PDRs are their own (not Table 1's); Table 4's is the EH-binary drop alone."""
    results = pd.DataFrame([
        row("dense", "off", 1.0, "sinktop_eventhallusion", "binary_acc", 60.0),
        row("dense", "off", 1.0, "sinktop_eventhallusion", "desc_acc", 40.0),
        row("holitom", "off", 0.1, "sinktop_eventhallusion", "binary_acc", 54.0),
        row("holitom", "off", 0.1, "sinktop_eventhallusion", "desc_acc", 20.0),
        row("dense", "off", 1.0, "sinktop_mvbench19", "mvbench_accuracy", 50.0),
        row("dense", "off", 1.0, "sinktop_videomme", "acc", 80.0, split="short"),
        row("dense", "off", 1.0, "sinktop_videomme", "videomme_perception_score", 60.0),
        row("holitom", "off", 0.1, "sinktop_mvbench19", "mvbench_accuracy", 45.0),
        row("holitom", "off", 0.1, "sinktop_videomme", "acc", 72.0, split="short"),
        row("holitom", "off", 0.1, "sinktop_videomme", "videomme_perception_score", 30.0),  # shown, not in Table 2's PDR
    ])
    paper, rows = load_paper_reference(), canonical_rows(results)

    def cells(number, label):
        table = build_table(TABLES[number], rows, paper, "llava_ov", 0.1)
        return {r[0]: dict(zip(table.header, r)) for r in table.rows}[label]

    assert cells(1, "HoliTom")["PDR paper"] == "6.22*"
    assert cells(2, "HoliTom")["PDR paper"] == "3.21*"  # Table 2's own, not Table 1's 6.22
    assert cells(2, "HoliTom")["PDR (%)"] == "10.00†"  # (10% + 10%) / 2 over MVBench and VideoMME short only
    assert cells(2, "HoliTom")["VideoMME"] == "30.00"
    assert cells(4, "HoliTom")["PDR paper"] == "3.87*" and cells(4, "VisionZip")["PDR paper"] == "20.46*"
    assert cells(4, "HoliTom")["PDR (%)"] == "10.00"  # EH binary alone: (60 - 54) / 60; desc's 50% drop not in it
    assert cells(4, "HoliTom")["EH bin paper"] == "60.88*"  # the same cell as Table 1's, shown where it applies
    assert cells(4, "HoliTom + STSP only")["EH bin paper"] == "62.10?"
    assert cells(4, "HoliTom + STSP only")["PDR paper"] == "1.94*"


def test_cells_of_runs_that_lost_items_or_judge_calls_are_flagged():
    results = pd.DataFrame([
        row("dense", "off", 1.0, "sinktop_eventhallusion", "binary_acc", 60.0),
        {**row("holitom", "off", 0.1, "sinktop_eventhallusion", "binary_acc", 54.0), "skipped": 2},
        {**row("holitom", "off", 0.1, "sinktop_eventhallusion", "judge_failures", 3.0), "skipped": 2},
        row("holitom", "on", 0.1, "sinktop_eventhallusion", "binary_acc", 57.0),
    ])
    table = build_table(TABLES[1], canonical_rows(results), load_paper_reference(), "llava_ov", 0.1)
    by_label = {r[0]: dict(zip(table.header, r)) for r in table.rows}
    assert by_label["HoliTom"]["EH bin"] == "54.00‡" and by_label["HoliTom + SToP"]["EH bin"] == "57.00"
    assert "‡ HoliTom, eventhallusion: 2 item(s) skipped for a bad video, 3 judge call(s) failed" in " ".join(table.notes)
    assert r"54.00$^\ddagger$" in to_latex(table)


def test_lower_is_better_columns_count_an_increase_as_the_drop():
    value, used = pdr({"cost": 60.0, "acc": 45.0}, {"cost": 50.0, "acc": 50.0}, lower_is_better=frozenset({"cost"}))
    assert used == 2 and value == pytest.approx(15.0)  # +20% cost and -10% accuracy are both a 15% mean drop
    results = pd.DataFrame([
        row("dense", "off", 1.0, "sinktop_argus", "hallucination_rate", 50.0),
        row("dense", "off", 1.0, "sinktop_argus", "omission_rate", 80.0),
        row("visionzip", "off", 0.1, "sinktop_argus", "hallucination_rate", 55.0),
        row("visionzip", "off", 0.1, "sinktop_argus", "omission_rate", 84.0),
        row("visionzip", "on", 0.1, "sinktop_argus", "hallucination_rate", 45.0),
        row("visionzip", "on", 0.1, "sinktop_argus", "omission_rate", 80.0),
        row("visionzip", "on", 0.1, "sinktop_argus", "judge_failures", 3.0),
    ])
    table = build_table(TABLES[7], canonical_rows(results), load_paper_reference(), "llava_ov", 0.1)
    by_label = {r[0]: dict(zip(table.header, r)) for r in table.rows}
    assert by_label["VisionZip"]["PDR (%)"] == "7.50"  # (+10% + +5%) / 2: worse than dense
    assert by_label["VisionZip + SToP"]["PDR (%)"] == "-5.00"  # (-10% + 0%) / 2: better than dense
    assert by_label["VisionZip"]["Argus H paper"] == "56.19*" and by_label["VisionZip + SToP"]["Argus O paper"] == "77.29*"
    assert by_label["VisionZip"]["Kept"] == "640" and by_label["Dense"]["Kept"] == "6272"
    assert any("Argus H = argus/hallucination_rate (lower is better)" in n for n in table.notes)
    assert any(n.startswith("judge failures: 3 call(s) failed") for n in table.notes)


def test_tables_cli_writes_markdown_latex_and_plots(tmp_path):
    rows = [row("dense", "off", 1.0, "sinktop_eventhallusion", "binary_acc", 50.0, backbone="tiny_llava_ov")]
    for ratio, base, stop_gain in ((0.1, 40.0, 5.0), (0.25, 45.0, 3.0)):
        rows.append(row("holitom", "off", ratio, "sinktop_eventhallusion", "binary_acc", base, "tiny_llava_ov"))
        rows.append(row("holitom", "on", ratio, "sinktop_eventhallusion", "binary_acc", base + stop_gain,
                        "tiny_llava_ov"))
    run_dir = tmp_path / "runs" / "x"
    run_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(run_dir / "results.csv", index=False)
    out = tmp_path / "tables"
    main([str(tmp_path / "runs"), "--out", str(out)])
    md = (out / "tables.md").read_text()
    assert "Table 1: Fine-grained video understanding (LLaVA-OV) — ours: tiny_llava_ov, r = 0.1" in md
    assert "r = 0.25" in md and "random-weight twin tiny_llava_ov" in md
    assert (out / "tables.tex").exists()
    assert (out / "accuracy_vs_retention.png").stat().st_size > 1000
    assert (out / "cost_vs_accuracy.png").stat().st_size > 1000


def test_tables_cli_fails_clearly_without_results(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no results.csv under" in capsys.readouterr().err


def test_results_of_an_older_format_get_one_line_saying_how_to_refresh_them(tmp_path, capsys):
    old = pd.DataFrame([row("dense", "off", 1.0, "sinktop_eventhallusion", "binary_acc", 50.0)]).drop(
        columns=["family", "benchmark"])
    old.to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "results.csv")])
    assert exit_info.value.code == 2
    assert "no family, benchmark column" in capsys.readouterr().err


def test_builtin_task_metrics_land_in_the_paper_columns_and_the_release_protocol_one_flag_away():
    results = pd.DataFrame([
        row("dense", "off", 1.0, "sinktop_videochatgpt_gen", "ci", 3.1),
        row("dense", "off", 1.0, "sinktop_videochatgpt_gen", "ci_release", 3.6),  # mean over judged items only
        row("dense", "off", 1.0, "sinktop_videochatgpt_temporal", "tu", 2.5),
        row("dense", "off", 1.0, "sinktop_mvbench19", "mvbench_accuracy", 56.0),
        row("dense", "off", 1.0, "mvbench_action_sequence", "mvbench_accuracy", 99.0),  # a subtask, not the cell
        row("dense", "off", 1.0, "sinktop_videomme", "videomme_perception_score", 58.0),
        row("dense", "off", 1.0, "sinktop_videomme", "acc", 70.0, split="short"),
        row("dense", "off", 1.0, "sinktop_mlvu_dev", "mlvu_percetion_score", 64.0),  # mean of the 7 task accuracies
        row("dense", "off", 1.0, "sinktop_mlvu_dev", "pooled_acc", 66.0),  # the release: every item pooled
    ])
    canonical = canonical_rows(results)
    got = {(b, m): v for b, m, v in zip(canonical["benchmark"], canonical["paper_metric"], canonical["value"])}
    assert got == {("vcgbench", "ci"): 3.1, ("vcgbench", "ci_release"): 3.6, ("vcgbench", "tu"): 2.5,
                   ("mvbench", "acc"): 56.0, ("videomme", "acc"): 58.0, ("videomme", "short_acc"): 70.0,
                   ("mlvu", "acc"): 64.0, ("mlvu", "pooled_acc"): 66.0}
    paper = load_paper_reference()
    table = build_table(TABLES[2], canonical, paper, "llava_ov", 0.1)
    dense = dict(zip(table.header, table.rows[0]))
    assert (dense["MVBench"], dense["VideoMME short"], dense["VideoMME"], dense["MLVU dev"]) == \
        ("56.00", "70.00", "58.00", "64.00")
    release = build_table(TABLES[2], canonical, paper, "llava_ov", 0.1, protocol="release")
    assert dict(zip(release.header, release.rows[0]))["MLVU dev"] == "66.00" and "release's metrics" in release.caption
    assert any("MLVU dev = mlvu/pooled_acc" in n for n in release.notes)
    fine = build_table(TABLES[1], canonical, paper, "llava_ov", 0.1, protocol="release")
    assert dict(zip(fine.header, fine.rows[0]))["VCG CI"] == "3.60"


def test_videomme_accuracy_per_duration_comes_from_the_scored_samples():
    from sinktop_eval.results import results_rows

    def sample(duration, pred, answer):
        return {"doc_id": 0, "videomme_perception_score": {"duration": duration, "pred_answer": pred, "answer": answer}}

    lmms = {"results": {"videomme": {"videomme_perception_score,none": 50.0}},
            "samples": {"videomme": [sample("short", "A", "A"), sample("short", "B", "A"), sample("short", "C", "C"),
                                     sample("long", "D", "A")]}}
    rows = results_rows({"run_id": "r"}, lmms, [])
    short = rows[(rows["split"] == "short") & (rows["metric"] == "acc")]
    assert short["value"].tolist() == [pytest.approx(200 / 3)] and short["n_samples"].tolist() == [3]
    assert rows[rows["split"] == "long"]["value"].tolist() == [0.0]
