"""The paper's tables from results rows, with the paper's reported numbers beside ours (pandas throughout).

A cell we have no result for is shown as missing; nothing is interpolated. PDR is the table's drop
measure (`TableSpec.pdr_note`): the mean relative drop versus the dense run of the same backbone over the
table's PDR columns, a lower-is-better column counting its relative *increase*; when only some of those
columns exist it is computed over those and marked †. The paper's values come from
``paper_reference.csv``: a cell from any table that reports the same (backbone, method, ratio, metric),
the drop column only from the table itself (the tables define their drops differently).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from ..resources import PAPER_REFERENCE
from ..results import USER_OVERRIDE
from .layout import DENSE, PAPER_BACKBONE, TABLES, Method, TableSpec, canonical_metric, with_protocol

MISSING = "–"
CERTAINTY_MARK = {"confirmed_twice": "", "secondary": "*", "doubtful": "?"}
CERTAINTY_LEGEND = "paper values: unmarked = confirmed twice, * = secondary source, ? = doubtful"
REQUIRED = ("family", "weights", "benchmark")  # written by the runner since the results format has them
# LaTeX for the marks our cells carry (everything else is escaped by pandas' Styler)
LATEX_MARKS = (("–", "--"), ("†", r"$^\dagger$"), ("‡", r"$^\ddagger$"), ("*", r"$^{*}$"), ("?", r"$^{?}$"))


def pruner_settings(settings: object) -> dict:
    """A row's pruner_settings JSON as a dict ({} when the row has none or it is unreadable)."""
    try:
        parsed = json.loads(settings) if isinstance(settings, str) else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _variant(settings: object) -> str:
    """The pruner variant recorded in a row's pruner_settings ("paper" when it has none)."""
    return str(pruner_settings(settings).get("variant", "paper"))


def canonical_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows that belong to a benchmark, with the paper's metric name in ``paper_metric`` and the pruner
    ``variant``; runs with user-set mu (calibration sweeps) are kept: the tables leave them out."""
    missing = [c for c in REQUIRED if c not in results]
    if missing:
        raise ValueError(f"results have no {', '.join(missing)} column (written by an older sinktop-eval); "
                         "re-run the combinations, or rescore=true to rewrite their results.csv from the saved answers")
    frame = results[results["benchmark"].notna()].copy()
    frame["paper_metric"] = [canonical_metric(s, m) for s, m in zip(frame["split"], frame["metric"])]
    frame["variant"] = [_variant(v) for v in frame.get("pruner_settings", pd.Series(index=frame.index, dtype=object))]
    if "frames" not in frame:
        frame["frames"] = 32
    return frame


def table_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """The runs a paper table compares: the paper's SToP values (no user-set mu: those are calibration runs)."""
    if "mu_source" not in rows:
        return rows
    return rows[rows["mu_source"].astype(str) != USER_OVERRIDE]


def load_paper_reference(path=PAPER_REFERENCE) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"paper reference {path} is missing; it ships with the package (results/paper/)")
    return pd.read_csv(path)


def pdr(values: dict[str, float | None], dense: dict[str, float | None],
        lower_is_better: frozenset[str] = frozenset()) -> tuple[float | None, int]:
    """Mean relative drop (%) vs dense over the columns both have; (value, number of columns used).

    For a lower-is-better column (a cost, a hallucination rate) the drop is the relative increase.
    """
    ours, reference = pd.Series(values, dtype=float), pd.Series(dense, dtype=float).reindex(list(values))
    usable = ours.notna() & reference.notna() & (reference != 0)
    sign = pd.Series([-1.0 if k in lower_is_better else 1.0 for k in ours.index], index=ours.index)
    drops = sign[usable] * (reference[usable] - ours[usable]) / reference[usable] * 100.0
    return (float(drops.mean()), int(usable.sum())) if usable.any() else (None, 0)


def _fmt(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _ratio_key(value: float) -> float:
    return round(float(value), 6)


@dataclass
class BuiltTable:
    spec: TableSpec
    backbone: str
    ratio: float
    frame: pd.DataFrame  # one row per method; ours and the paper's value side by side, as display strings
    notes: list[str] = field(default_factory=list)

    frames: int = 32
    variant: str = "paper"
    protocol: str = "official"

    @property
    def caption(self) -> str:
        setting = f"{self.frames} frames" + ("" if self.variant == "paper" else f", pruner variant {self.variant}")
        setting += "" if self.protocol == "official" else ", the release's metrics"
        return f"Table {self.spec.number}: {self.spec.title} — ours: {self.backbone}, r = {self.ratio:g}, {setting}"

    @property
    def header(self) -> list[str]:
        return ["Method", *self.frame.columns]

    @property
    def rows(self) -> list[list[str]]:
        return [[label, *cells] for label, cells in zip(self.frame.index, self.frame.values.tolist())]


def _latest_first(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values("timestamp", kind="stable") if "timestamp" in rows else rows


def _our_cells(rows: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """(pruner, stop, ratio) x column label -> value; the latest run of a cell wins."""
    rows = _latest_first(rows)
    rows = rows.assign(ratio=rows["ratio"].map(_ratio_key))
    cells = rows.pivot_table(index=["pruner", "stop", "ratio"], columns=["benchmark", "paper_metric"], values="value",
                             aggfunc="last", dropna=False)
    wanted = pd.MultiIndex.from_tuples([(c.benchmark, c.metric) for c in spec.columns])
    return cells.reindex(columns=wanted).set_axis([c.label for c in spec.columns], axis=1)


def _kept_tokens(rows: pd.DataFrame, spec: TableSpec) -> pd.Series:
    """(pruner, stop, ratio) -> mean kept visual tokens per sample over the table's benchmarks."""
    mine = rows[rows["benchmark"].isin({c.benchmark for c in spec.columns})]
    if "kept_visual_tokens" not in mine or mine.empty:
        return pd.Series(dtype=float)
    mine = mine.assign(ratio=mine["ratio"].map(_ratio_key))
    return mine.groupby(["pruner", "stop", "ratio"])["kept_visual_tokens"].mean()


def _incomplete(rows: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """(pruner, stop, ratio) x benchmark -> (items skipped for bad videos, failed judge calls)."""
    mine = rows[rows["benchmark"].isin({c.benchmark for c in spec.columns})]
    mine = mine.assign(ratio=mine["ratio"].map(_ratio_key),
                       skipped_items=mine["skipped"] if "skipped" in mine else 0.0,
                       failed_calls=mine["value"].where(mine["metric"] == "judge_failures"))
    by_task = mine.groupby(["pruner", "stop", "ratio", "benchmark", "task"]).agg(
        skipped=("skipped_items", "max"), failures=("failed_calls", "max"))  # one count per task, on every row
    return by_task.groupby(level=[0, 1, 2, 3]).sum(min_count=1).fillna(0)


def _paper_cells(paper: pd.DataFrame, spec: TableSpec, family: str) -> pd.DataFrame:
    """(method, stop, ratio) x (column label | PDR) -> the paper's value as text with its certainty mark."""
    rows = paper[paper["backbone"] == PAPER_BACKBONE.get(family)]
    rows = rows.assign(ratio=rows["ratio"].map(_ratio_key), other_table=rows["table"] != spec.number,
                       text=[f"{v:.2f}{CERTAINTY_MARK.get(c, '?')}" for v, c in zip(rows["value"], rows["certainty"])])
    is_pdr = (rows["benchmark"] == spec.pdr_benchmark) & (rows["metric"] == spec.pdr_metric)
    rows = rows[~is_pdr | (rows["table"] == spec.number)]  # each table's drop column is its own
    rows = rows.sort_values("other_table", kind="stable")  # the table's own value first, then another table's
    cells = rows.pivot_table(index=["method", "stop", "ratio"], columns=["benchmark", "metric"], values="text",
                             aggfunc="first")
    wanted = pd.MultiIndex.from_tuples([(c.benchmark, c.metric) for c in spec.columns] +
                                       [(spec.pdr_benchmark, spec.pdr_metric)])
    return cells.reindex(columns=wanted).set_axis([c.label for c in spec.columns] + ["PDR"], axis=1)


def _lookup(cells: pd.DataFrame | pd.Series, key: tuple):
    return cells.loc[key] if key in cells.index else None


def _column_notes(spec: TableSpec, rows: pd.DataFrame) -> list[str]:
    """Which metric each column shows, the PDR definition, and the judge that scored the judged columns."""
    metrics = ", ".join(f"{c.label} = {c.benchmark}/{c.metric}{'' if c.higher_is_better else ' (lower is better)'}"
                        for c in spec.columns)
    notes = [f"columns: {metrics}", f"PDR: {spec.pdr_note}"]
    if spec.note:
        notes.append(spec.note)
    judges = sorted({str(j) for j in rows.get("judge_model", pd.Series(dtype=object)).dropna().unique()})
    notes.append(f"judge: {', '.join(judges)}" if judges else "judge: none (judged columns are missing)")
    benchmarks = {c.benchmark for c in spec.columns}
    failures = rows[(rows["metric"] == "judge_failures") & rows["benchmark"].isin(benchmarks)]["value"].sum()
    if failures > 0:
        notes.append(f"judge failures: {failures:.0f} call(s) failed in these runs (see each run's judge_failures); "
                     "a metric none of whose calls succeeded is missing")
    return notes


def build_table(spec: TableSpec, results: pd.DataFrame, paper: pd.DataFrame, backbone: str, ratio: float,
                frames: int = 32, variant: str = "paper", protocol: str = "official") -> BuiltTable:
    """One table for one of our backbones at one ratio, frame count and pruner variant (``results``:
    canonical rows; dense rows have no variant, so they serve every variant). ``protocol="release"``
    shows each column's release metric where there is one (our cells; the paper's stay as reported)."""
    ours_spec = with_protocol(spec, protocol)
    mine = results[(results["backbone"] == backbone) & (results["frames"] == frames)
                   & ((results["variant"] == variant) | (results["pruner"] == "dense"))]
    ours, kept, incomplete = _our_cells(mine, ours_spec), _kept_tokens(mine, spec), _incomplete(mine, spec)
    theirs = _paper_cells(paper, spec, spec.family)
    labels = [c.label for c in spec.columns]
    pdr_labels = [c.label for c in spec.columns if c.in_pdr]
    lower = frozenset(c.label for c in spec.columns if not c.higher_is_better)
    empty = pd.Series({label: None for label in labels}, dtype=object)

    def ratio_of(method: Method) -> float:
        return _ratio_key(1.0 if method == DENSE else ratio)  # the reference row is the unpruned (r = 1) run

    dense = _lookup(ours, ("dense", "off", 1.0))
    dense = empty if dense is None else dense
    table, notes = {}, []
    for method in spec.methods:
        key = (method.pruner, method.stop, ratio_of(method))
        values = _lookup(ours, key)
        values = empty if values is None else values
        paper_stop = "on" if method.stop in ("stsp", "sttp") else method.stop
        reported = _lookup(theirs, (method.paper_method or method.pruner, paper_stop, ratio_of(method)))
        if method == DENSE:
            pdr_cell = MISSING if values[pdr_labels].isna().all() else "0.00"
        else:
            value, used = pdr(values[pdr_labels].to_dict(), dense[pdr_labels].to_dict(), lower)
            pdr_cell = _fmt(value)
            if value is not None and used < len(pdr_labels):
                pdr_cell += "†"
                notes.append(f"† {method.label} ({method.pruner}, stop={method.stop}): PDR over {used} of "
                             f"{len(pdr_labels)} PDR columns (the others have no result for it or for dense)")
        flagged = {}  # benchmark -> (skipped, failures) where this run lost items or judge calls
        for bench in {c.benchmark for c in spec.columns}:
            counts = _lookup(incomplete, (*key, bench))
            if counts is not None and (counts["skipped"] > 0 or counts["failures"] > 0):
                flagged[bench] = (int(counts["skipped"]), int(counts["failures"]))
        for bench, (skipped, failures) in sorted(flagged.items()):
            notes.append(f"‡ {method.label}, {bench}: {skipped} item(s) skipped for a bad video, {failures} judge "
                         "call(s) failed (a failed call scores 0; a metric with no successful call is missing)")
        row = {}
        for column in spec.columns:  # each of our columns is followed by the paper's value for the same cell
            label = column.label
            row[label] = _fmt(values.get(label)) + ("‡" if column.benchmark in flagged else "")
            row[f"{label} paper"] = MISSING if reported is None or pd.isna(reported[label]) else reported[label]
        row["PDR (%)"] = pdr_cell
        row["PDR paper"] = MISSING if reported is None or pd.isna(reported["PDR"]) else reported["PDR"]
        row["Kept"] = _fmt(_lookup(kept, key), digits=0)
        table[method.label] = row
    notes += _column_notes(ours_spec, mine)
    notes.append("Kept = mean visual tokens the LLM saw per sample (ours)")
    notes.append(CERTAINTY_LEGEND)
    if (mine["weights"] == "random").any():
        notes.append(f"ours come from the random-weight twin {backbone} (pipeline check, not a measurement of the "
                     f"method); paper values are {PAPER_BACKBONE.get(spec.family, spec.family)} on the real benchmarks")
    frame = pd.DataFrame.from_dict(table, orient="index").rename_axis("Method")
    return BuiltTable(spec, backbone, ratio, frame, notes, frames=frames, variant=variant, protocol=protocol)


def to_markdown(table: BuiltTable) -> str:
    body = table.frame.to_markdown(colalign=["left"] + ["right"] * len(table.frame.columns))
    return "\n".join([f"### {table.caption}", "", body, "", *[f"- {note}" for note in table.notes]]) + "\n"


def _latex_marks(text: str) -> str:
    for mark, latex in LATEX_MARKS:
        text = text.replace(mark, latex)
    return text


def _latex_text(text: str) -> str:
    for char, latex in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, latex)
    return _latex_marks(text)


def to_latex(table: BuiltTable) -> str:
    styler = table.frame.style.format(_latex_marks, escape="latex")  # pandas escapes first, then adds our marks
    styler = styler.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    latex = styler.to_latex(caption=_latex_text(table.caption), hrules=True, position="t",
                            position_float="centering", column_format="l" + "r" * len(table.frame.columns))
    notes = " ".join(_latex_text(n) for n in table.notes)
    return latex.replace(r"\end{table}", rf"\par\footnotesize {notes}" + "\n" + r"\end{table}")


def build_tables(results: pd.DataFrame, paper: pd.DataFrame, ratios: list[float] | None = None,
                 protocol: str = "official") -> list[BuiltTable]:
    """Every table for every backbone of its family and every pruned ratio its methods ran at.

    A table is built for a backbone only when at least one of its non-dense methods has a row there
    (Table 6 needs FlashVID runs, Table 7 Argus rows), so a results folder yields the tables it can fill.
    """
    rows = table_runs(canonical_rows(results))
    built = []
    for spec in TABLES.values():
        benchmarks = {c.benchmark for c in spec.columns}
        pruned = {(m.pruner, m.stop) for m in spec.methods if m != DENSE}
        family_rows = rows[rows["family"] == spec.family]
        mine = family_rows[family_rows["benchmark"].isin(benchmarks)]
        ran = mine[pd.Series([(p, s) in pruned for p, s in zip(mine["pruner"], mine["stop"])], index=mine.index,
                             dtype=bool)]
        settings = ran[["backbone", "frames", "variant", "ratio"]].drop_duplicates().sort_values(
            ["backbone", "frames", "variant", "ratio"])
        for backbone, frames, variant, ratio in settings.itertuples(index=False):
            if ratios and not any(abs(float(ratio) - r) < 1e-9 for r in ratios):
                continue
            built.append(build_table(spec, family_rows, paper, str(backbone), float(ratio), int(frames), str(variant),
                                     protocol))
    return built
