"""The paper's tables from results rows, with the paper's reported numbers beside ours (pandas throughout).

A cell we have no result for is shown as missing; nothing is interpolated. PDR is the mean relative drop
versus the dense run of the same backbone over the table's columns; when only some columns exist it is
computed over those and marked †.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..resources import PAPER_REFERENCE
from .layout import DENSE, PAPER_BACKBONE, PAPER_METHOD, TABLES, Method, TableSpec, canonical_metric

MISSING = "–"
CERTAINTY_MARK = {"confirmed_twice": "", "secondary": "*", "doubtful": "?"}
CERTAINTY_LEGEND = "paper values: unmarked = confirmed twice, * = secondary source, ? = doubtful"
REQUIRED = ("family", "weights", "benchmark")  # written by the runner since the results format has them
# LaTeX for the marks our cells carry (everything else is escaped by pandas' Styler)
LATEX_MARKS = (("–", "--"), ("†", r"$^\dagger$"), ("*", r"$^{*}$"), ("?", r"$^{?}$"))


def canonical_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows that belong to a benchmark, with the paper's metric name in ``paper_metric``."""
    missing = [c for c in REQUIRED if c not in results]
    if missing:
        raise ValueError(f"results have no {', '.join(missing)} column (written by an older sinktop-eval); "
                         "re-run the combinations, or rescore=true to rewrite their results.csv from the saved answers")
    frame = results[results["benchmark"].notna()].copy()
    frame["paper_metric"] = [canonical_metric(s, m) for s, m in zip(frame["split"], frame["metric"])]
    return frame


def load_paper_reference(path=PAPER_REFERENCE) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"paper reference {path} is missing; it ships with the package (results/paper/)")
    return pd.read_csv(path)


def pdr(values: dict[str, float | None], dense: dict[str, float | None]) -> tuple[float | None, int]:
    """Mean relative drop (%) vs dense over the columns both have; (value, number of columns used)."""
    ours, reference = pd.Series(values, dtype=float), pd.Series(dense, dtype=float).reindex(list(values))
    usable = ours.notna() & reference.notna() & (reference != 0)
    drops = (reference[usable] - ours[usable]) / reference[usable] * 100.0
    return (float(drops.mean()), int(usable.sum())) if usable.any() else (None, 0)


def _fmt(value: float | None) -> str:
    return MISSING if value is None or pd.isna(value) else f"{value:.2f}"


def _ratio_key(value: float) -> float:
    return round(float(value), 6)


@dataclass
class BuiltTable:
    spec: TableSpec
    backbone: str
    ratio: float
    frame: pd.DataFrame  # one row per method; ours and the paper's value side by side, as display strings
    notes: list[str] = field(default_factory=list)

    @property
    def caption(self) -> str:
        return f"Table {self.spec.number}: {self.spec.title} — ours: {self.backbone}, r = {self.ratio:g}"

    @property
    def header(self) -> list[str]:
        return ["Method", *self.frame.columns]

    @property
    def rows(self) -> list[list[str]]:
        return [[label, *cells] for label, cells in zip(self.frame.index, self.frame.values.tolist())]


def _our_cells(rows: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """(pruner, stop, ratio) x column label -> value; the latest run of a cell wins."""
    if "timestamp" in rows:
        rows = rows.sort_values("timestamp", kind="stable")
    rows = rows.assign(ratio=rows["ratio"].map(_ratio_key))
    cells = rows.pivot_table(index=["pruner", "stop", "ratio"], columns=["benchmark", "paper_metric"], values="value",
                             aggfunc="last", dropna=False)
    wanted = pd.MultiIndex.from_tuples([(c.benchmark, c.metric) for c in spec.columns])
    return cells.reindex(columns=wanted).set_axis([c.label for c in spec.columns], axis=1)


def _paper_cells(paper: pd.DataFrame, spec: TableSpec, family: str) -> pd.DataFrame:
    """(method, stop, ratio) x (column label | PDR) -> the paper's value as text with its certainty mark."""
    rows = paper[paper["backbone"] == PAPER_BACKBONE.get(family)]
    rows = rows.assign(ratio=rows["ratio"].map(_ratio_key),
                       text=[f"{v:.2f}{CERTAINTY_MARK.get(c, '?')}" for v, c in zip(rows["value"], rows["certainty"])])
    cells = rows.pivot_table(index=["method", "stop", "ratio"], columns=["benchmark", "metric"], values="text",
                             aggfunc="first")
    wanted = pd.MultiIndex.from_tuples([(c.benchmark, c.metric) for c in spec.columns] + [("all", "pdr")])
    return cells.reindex(columns=wanted).set_axis([c.label for c in spec.columns] + ["PDR"], axis=1)


def _lookup(cells: pd.DataFrame, key: tuple) -> pd.Series | None:
    return cells.loc[key] if key in cells.index else None


def build_table(spec: TableSpec, results: pd.DataFrame, paper: pd.DataFrame, backbone: str, ratio: float) -> BuiltTable:
    """One table for one of our backbones at one ratio (``results``: canonical rows)."""
    ours = _our_cells(results[results["backbone"] == backbone], spec)
    theirs = _paper_cells(paper, spec, spec.family)
    labels = [c.label for c in spec.columns]
    empty = pd.Series({label: None for label in labels}, dtype=object)

    def ratio_of(method: Method) -> float:
        return _ratio_key(1.0 if method == DENSE else ratio)  # the reference row is the unpruned (r = 1) run

    dense = _lookup(ours, ("dense", "off", 1.0))
    dense = empty if dense is None else dense
    table, notes = {}, []
    for method in spec.methods:
        values = _lookup(ours, (method.pruner, method.stop, ratio_of(method)))
        values = empty if values is None else values
        paper_method = PAPER_METHOD.get((method.pruner, method.stop), method.pruner)
        paper_stop = "on" if method.stop in ("stsp", "sttp") else method.stop
        reported = _lookup(theirs, (paper_method, paper_stop, ratio_of(method)))
        if method == DENSE:
            pdr_cell = MISSING if values.isna().all() else "0.00"
        else:
            value, used = pdr(values.to_dict(), dense.to_dict())
            pdr_cell = _fmt(value)
            if value is not None and used < len(labels):
                pdr_cell += "†"
                notes.append(f"† {method.label} ({method.pruner}, stop={method.stop}): PDR over {used} of "
                             f"{len(labels)} columns (the others have no result for it or for dense)")
        row = {}
        for label in labels:  # each of our columns is followed by the paper's value for the same cell
            row[label] = _fmt(values.get(label))
            row[f"{label} paper"] = MISSING if reported is None or pd.isna(reported[label]) else reported[label]
        row["PDR (%)"] = pdr_cell
        row["PDR paper"] = MISSING if reported is None or pd.isna(reported["PDR"]) else reported["PDR"]
        label = f"{method.pruner} + SToP" if method.label == "+ SToP" else method.label
        table[label] = row
    notes.append(CERTAINTY_LEGEND)
    weights = results.loc[results["backbone"] == backbone, "weights"]
    if (weights == "random").any():
        notes.append(f"ours come from the random-weight twin {backbone} (pipeline check, not a measurement of the "
                     f"method); paper values are {PAPER_BACKBONE.get(spec.family, spec.family)} on the real benchmarks")
    frame = pd.DataFrame.from_dict(table, orient="index").rename_axis("Method")
    return BuiltTable(spec, backbone, ratio, frame, notes)


def to_markdown(table: BuiltTable) -> str:
    body = table.frame.to_markdown(colalign=["left"] + ["right"] * len(table.frame.columns))
    return "\n".join([f"### {table.caption}", "", body, "", *[f"- {note}" for note in table.notes]]) + "\n"


def _latex_marks(text: str) -> str:
    for mark, latex in LATEX_MARKS:
        text = text.replace(mark, latex)
    return text


def to_latex(table: BuiltTable) -> str:
    styler = table.frame.style.format(_latex_marks, escape="latex")  # pandas escapes first, then adds our marks
    styler = styler.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    latex = styler.to_latex(caption=_latex_marks(table.caption.replace("_", r"\_")), hrules=True, position="t",
                            position_float="centering", column_format="l" + "r" * len(table.frame.columns))
    notes = " ".join(_latex_marks(n.replace("_", r"\_").replace("%", r"\%")) for n in table.notes)
    return latex.replace(r"\end{table}", rf"\par\footnotesize {notes}" + "\n" + r"\end{table}")


def build_tables(results: pd.DataFrame, paper: pd.DataFrame, ratios: list[float] | None = None) -> list[BuiltTable]:
    """Every table for every backbone of its family and every pruned ratio present in the results."""
    rows = canonical_rows(results)
    built = []
    for spec in TABLES.values():
        family_rows = rows[rows["family"] == spec.family]
        for backbone, mine in family_rows.groupby("backbone", sort=True):
            present = sorted(mine.loc[mine["pruner"] != "dense", "ratio"].unique()) or [0.1]
            for ratio in ratios or present:
                built.append(build_table(spec, family_rows, paper, str(backbone), float(ratio)))
    return built
