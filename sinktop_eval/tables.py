"""The paper's tables from results CSVs, with the paper's reported numbers beside ours.

    python -m sinktop_eval.tables results/runs [more dirs or results.csv ...] [--out results/tables]

Writes Markdown and LaTeX for Table 1 (fine-grained), Table 2 (MCQA), Table 4 (STSP/STTP ablation) and
Table 8 (Qwen2.5-VL), plus plots (see `sinktop_eval.plots`). A cell we have no result for is shown as
missing; nothing is interpolated. PDR is the mean relative drop versus the dense run of the same
backbone over the table's columns; when only some columns exist it is computed over those and marked.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .atomic_files import atomic_write_text
from .results import read_results

REPO_ROOT = Path(__file__).resolve().parent.parent
PAPER_REFERENCE = REPO_ROOT / "results" / "paper" / "paper_reference.csv"
MISSING = "–"
CERTAINTY_MARK = {"confirmed_twice": "", "secondary": "*", "doubtful": "?"}
CERTAINTY_LEGEND = "paper values: unmarked = confirmed twice, * = secondary source, ? = doubtful"

# Our backbone names -> the paper's (twins map to the model they mirror; captions say which it was).
PAPER_BACKBONE = {"llava_ov": "llava_ov_7b", "tiny_llava_ov": "llava_ov_7b",
                  "qwen25vl": "qwen25vl_7b", "tiny_qwen25vl": "qwen25vl_7b"}

# (task-name fragment, benchmark) — the first fragment found in a task name decides its benchmark.
BENCHMARK_OF_TASK = [("eventhallusion", "eventhallusion"), ("videocomp", "videocomp"), ("vcg", "vcgbench"),
                     ("videochatgpt", "vcgbench"), ("mvbench", "mvbench"), ("videomme", "videomme"),
                     ("mlvu", "mlvu")]


@dataclass(frozen=True)
class Column:
    benchmark: str
    metric: str
    label: str


@dataclass(frozen=True)
class Method:
    pruner: str
    stop: str
    label: str


@dataclass(frozen=True)
class TableSpec:
    number: int
    title: str
    family: str  # which backbones it is about (by family)
    columns: tuple[Column, ...]
    methods: tuple[Method, ...]
    higher_is_better: bool = True


GRID = (Method("dense", "off", "Dense"), Method("visionzip", "off", "VisionZip"), Method("visionzip", "on", "+ SToP"),
        Method("fastvid", "off", "FastVID"), Method("fastvid", "on", "+ SToP"), Method("holitom", "off", "HoliTom"),
        Method("holitom", "on", "+ SToP"))
FINE_GRAINED = (Column("eventhallusion", "binary_acc", "EH bin"), Column("eventhallusion", "desc_acc", "EH desc"),
                Column("vcgbench", "ci", "VCG CI"), Column("vcgbench", "do", "VCG DO"), Column("vcgbench", "cu", "VCG CU"),
                Column("vcgbench", "tu", "VCG TU"), Column("vcgbench", "co", "VCG CO"),
                Column("videocomp", "activitynet_acc", "VC ANet"), Column("videocomp", "youcook2_acc", "VC YC2"))
TABLES = {
    1: TableSpec(1, "Fine-grained video understanding (LLaVA-OV)", "llava_ov", FINE_GRAINED, GRID),
    2: TableSpec(2, "Multiple-choice QA (LLaVA-OV)", "llava_ov",
                 (Column("mvbench", "acc", "MVBench"), Column("videomme", "short_acc", "VideoMME short"),
                  Column("videomme", "acc", "VideoMME"), Column("mlvu", "acc", "MLVU dev")), GRID),
    4: TableSpec(4, "SToP ablation: STSP and STTP on HoliTom (LLaVA-OV)", "llava_ov", FINE_GRAINED,
                 (Method("dense", "off", "Dense"), Method("holitom", "off", "HoliTom"),
                  Method("holitom", "stsp", "+ STSP only"), Method("holitom", "sttp", "+ STTP only"),
                  Method("holitom", "on", "+ STSP + STTP"))),
    8: TableSpec(8, "Qwen2.5-VL", "qwen25vl",
                 (Column("eventhallusion", "overall_acc", "EH overall"), Column("eventhallusion", "binary_acc", "EH bin"),
                  Column("videocomp", "activitynet_acc", "VC ANet"), Column("mvbench", "acc", "MVBench"),
                  Column("videomme", "acc", "VideoMME")), GRID),
}
PAPER_METHOD = {("holitom", "stsp"): "holitom_stsp_only", ("holitom", "sttp"): "holitom_sttp_only"}


def benchmark_of(task: str) -> str | None:
    name = task.lower()
    return next((bench for fragment, bench in BENCHMARK_OF_TASK if fragment in name), None)


# lmms-eval's built-in metric names -> the paper's
METRIC_ALIASES = {
    "gpt_eval_score_correctness": "ci", "gpt_eval_score_detailed_orientation": "do", "gpt_eval_score_context": "cu",
    "gpt_eval_score_temporal": "tu", "gpt_eval_score_consistency": "co",
    "mvbench_accuracy": "acc", "videomme_perception_score": "acc", "mlvu_percetion_score": "acc",
}


def canonical_metric(task: str, split: str | float | None, metric: str) -> str | None:
    """Our (task, split, metric) -> the paper's metric name within its benchmark (None: not a table cell).

    Our tasks name their metrics as the paper does (binary_acc, desc_acc, activitynet_acc, ...);
    lmms-eval's built-ins are renamed by METRIC_ALIASES. A split column, when present, is prepended
    (e.g. acc + short -> short_acc). MVBench's 20 per-subtask rows are not cells: the benchmark's
    number is the group's mean (sinktop_mvbench).
    """
    if str(task).startswith("mvbench_"):
        return None
    metric = METRIC_ALIASES.get(metric, metric)
    split = split if isinstance(split, str) and split else ""
    return f"{split}_{metric}" if split else metric


def canonical_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Results rows with `benchmark` and `paper_metric` columns (rows of no paper benchmark dropped)."""
    frame = results.copy()
    frame["benchmark"] = frame["task"].astype(str).map(benchmark_of)
    frame["paper_metric"] = [canonical_metric(t, s, m) for t, s, m in zip(frame["task"], frame["split"], frame["metric"])]
    frame["family"] = frame["backbone"].astype(str).str.removeprefix("tiny_")
    return frame[frame["benchmark"].notna() & frame["paper_metric"].notna()]


def load_paper_reference(path: Path = PAPER_REFERENCE) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"paper reference {path} is missing; it ships with the repository (results/paper/)")
    return pd.read_csv(path)


def pdr(values: dict[str, float | None], dense: dict[str, float | None]) -> tuple[float | None, int]:
    """Mean relative drop (%) vs dense over the columns both have; (value, number of columns used)."""
    drops = [(dense[k] - v) / dense[k] * 100.0 for k, v in values.items()
             if v is not None and dense.get(k) not in (None, 0)]
    return (sum(drops) / len(drops), len(drops)) if drops else (None, 0)


def _fmt(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


@dataclass
class BuiltTable:
    spec: TableSpec
    backbone: str
    ratio: float
    header: list[str]
    rows: list[list[str]]
    notes: list[str]

    @property
    def caption(self) -> str:
        return f"Table {self.spec.number}: {self.spec.title} — ours: {self.backbone}, r = {self.ratio:g}"


def _cell_values(ours: pd.DataFrame, method: Method, ratio: float, columns) -> dict[str, float | None]:
    sel = ours[(ours["pruner"] == method.pruner) & (ours["stop"] == method.stop)]
    sel = sel if method.pruner == "dense" else sel[(sel["ratio"] - ratio).abs() < 1e-9]
    values = {}
    for col in columns:
        hit = sel[(sel["benchmark"] == col.benchmark) & (sel["paper_metric"] == col.metric)]["value"].dropna()
        values[col.label] = float(hit.iloc[-1]) if len(hit) else None  # the latest run wins
    return values


def _paper_values(paper: pd.DataFrame, spec: TableSpec, backbone: str, method: Method, ratio: float):
    paper_name = PAPER_BACKBONE.get(backbone)
    method_name = PAPER_METHOD.get((method.pruner, method.stop), method.pruner)
    stop = "on" if method.stop in ("stsp", "sttp") else method.stop
    sel = paper[(paper["backbone"] == paper_name) & (paper["method"] == method_name) & (paper["stop"] == stop)]
    sel = sel if method.pruner == "dense" else sel[(sel["ratio"] - ratio).abs() < 1e-9]

    def lookup(benchmark: str, metric: str) -> str:
        hit = sel[(sel["benchmark"] == benchmark) & (sel["metric"] == metric)]
        if hit.empty:
            return MISSING
        row = hit.iloc[0]
        return f"{row['value']:.2f}{CERTAINTY_MARK.get(row['certainty'], '?')}"

    return [lookup(c.benchmark, c.metric) for c in spec.columns], lookup("all", "pdr")


def build_table(spec: TableSpec, results: pd.DataFrame, paper: pd.DataFrame, backbone: str, ratio: float) -> BuiltTable:
    ours = results[results["backbone"] == backbone]
    dense = _cell_values(ours, Method("dense", "off", ""), ratio, spec.columns)
    # each of our columns is followed by the paper's value for the same cell
    header = ["Method"] + [h for c in spec.columns for h in (c.label, f"{c.label} paper")] + ["PDR (%)", "PDR paper"]
    rows, notes = [], []
    for method in spec.methods:
        values = _cell_values(ours, method, ratio, spec.columns)
        ours_cells = [_fmt(values[c.label]) for c in spec.columns]
        if method.pruner == "dense":
            pdr_cell = MISSING if all(v is None for v in values.values()) else "0.00"
        else:
            value, used = pdr(values, dense)
            pdr_cell = _fmt(value)
            if value is not None and used < len(spec.columns):
                pdr_cell += "†"
                notes.append(f"† {method.label} ({method.pruner}, stop={method.stop}): PDR over {used} of "
                             f"{len(spec.columns)} columns (the others have no result for it or for dense)")
        paper_cells, paper_pdr = _paper_values(paper, spec, backbone, method, ratio)
        label = method.label if method.label != "+ SToP" else f"{method.pruner} + SToP"
        rows.append([label] + [cell for pair in zip(ours_cells, paper_cells) for cell in pair] + [pdr_cell, paper_pdr])
    notes.append(CERTAINTY_LEGEND)
    if backbone.startswith("tiny_"):
        notes.append(f"ours come from the random-weight twin {backbone} (pipeline check, not a measurement of the "
                     f"method); paper values are {PAPER_BACKBONE[backbone]} on the real benchmarks")
    return BuiltTable(spec, backbone, ratio, header, rows, notes)


def to_markdown(table: BuiltTable) -> str:
    lines = [f"### {table.caption}", "", "| " + " | ".join(table.header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("–", "--"), ("†", r"$^\dagger$"), ("*", r"$^{*}$"), ("?", r"$^{?}$")):
        text = text.replace(a, b)
    return text


def to_latex(table: BuiltTable) -> str:
    spec = "l" + "r" * (len(table.header) - 1)
    body = [" & ".join(_latex_escape(c) for c in table.header) + r" \\", r"\midrule"]
    body += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in table.rows]
    notes = " ".join(_latex_escape(n) for n in table.notes)
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_latex_escape(table.caption)}}}",
                      rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *body, r"\bottomrule", r"\end{tabular}",
                      rf"\par\footnotesize {notes}", r"\end{table}"]) + "\n"


def build_tables(results: pd.DataFrame, paper: pd.DataFrame, ratios: list[float] | None = None) -> list[BuiltTable]:
    """Every table for every backbone of its family and every pruned ratio present in the results."""
    rows = canonical_rows(results)
    built = []
    for spec in TABLES.values():
        family_rows = rows[rows["family"] == spec.family]
        for backbone in sorted(family_rows["backbone"].unique()):
            mine = family_rows[family_rows["backbone"] == backbone]
            present = sorted(mine.loc[mine["pruner"] != "dense", "ratio"].unique()) or [0.1]
            for ratio in ratios or present:
                built.append(build_table(spec, family_rows, paper, backbone, float(ratio)))
    return built


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sinktop_eval.tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="run directories or results.csv files (searched recursively)")
    parser.add_argument("--out", default="results/tables", help="where to write the tables and plots")
    parser.add_argument("--paper", default=str(PAPER_REFERENCE), help="the paper's reported numbers (CSV)")
    parser.add_argument("--ratio", type=float, action="append", help="only these ratios (repeatable)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)

    try:
        results = read_results(args.results)
        paper = load_paper_reference(Path(args.paper))
    except FileNotFoundError as err:
        parser.exit(2, f"sinktop-eval tables: {err}\n")
    out = Path(args.out)
    tables = build_tables(results, paper, args.ratio)
    if not tables:
        parser.exit(1, "sinktop-eval tables: no rows of any paper benchmark in these results\n")
    markdown = "\n".join(to_markdown(t) for t in tables)
    atomic_write_text(out / "tables.md", markdown)
    atomic_write_text(out / "tables.tex", "\n".join(to_latex(t) for t in tables))
    print(markdown)
    print(f"wrote {out / 'tables.md'} and {out / 'tables.tex'}")
    if not args.no_plots:
        from .plots import results_plots

        for path in results_plots(canonical_rows(results), out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
