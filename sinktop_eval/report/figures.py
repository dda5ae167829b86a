"""The paper's figures from results files: each is drawn when the results hold the runs behind it.

    Fig. 2b  selection_frequency.png   how often each position is kept (per run, on the token grid)
    Fig. 4   sink_tokens.png           kept tokens at the video's sink positions, per method with/without SToP
    Fig. 6   accuracy_vs_frames.png    EventHallusion accuracy against frames per video, per method
    Fig. 7   sink_alternatives.png     SToP vs hard pruning vs attention redistribution (and the base pruner)
    D.4      sensitivity.png           a metric against mu_s / mu_t / gamma (calibration sweeps), best values in
             calibration.json

Inputs are canonical results rows (`report.build.canonical_rows`) and, for Fig. 2b, each run's
``sink_stats.json`` (written beside its results.csv). Nothing is drawn from data that is not there.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..files import atomic_write_text  # noqa: E402
from ..results import SINK_STATS_FILE, USER_OVERRIDE  # noqa: E402
from .build import pruner_settings, table_runs  # noqa: E402
from .plots import PRUNER_COLOURS, STOP_STYLE, method_label  # noqa: E402

EH_METRICS = ("binary_acc", "desc_acc", "overall_acc")  # what Figs. 6 and 7 show (EventHallusion)
SENSITIVITY_PARAMETERS = ("mu_s", "mu_t", "gamma")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _grid_axes(count: int, cols: int = 3, size=(4.2, 3.2)):
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    return fig, list(axes.flat)


def _eh(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["benchmark"] == "eventhallusion") & rows["paper_metric"].isin(EH_METRICS) & rows["value"].notna()]


# --------------------------------------------------------------------------- Fig. 6


def accuracy_vs_frames(rows: pd.DataFrame, path: Path) -> Path | None:
    """EventHallusion metrics against frames per video: one line per (pruner, SToP), one panel per
    (backbone, metric, ratio); drawn when some method ran at two or more frame counts."""
    eh = _eh(table_runs(rows))
    varied = eh.groupby(["backbone", "pruner", "stop", "ratio"])["frames"].nunique()
    if varied.empty or varied.max() < 2:
        return None
    eh = eh.assign(ratio=eh["ratio"].round(6))
    panels = sorted(eh.groupby(["backbone", "paper_metric"]).groups)
    fig, axes = _grid_axes(len(panels))
    for ax, (backbone, metric) in zip(axes, panels):
        data = eh[(eh["backbone"] == backbone) & (eh["paper_metric"] == metric)]
        for (pruner, stop, ratio), line in data.groupby(["pruner", "stop", "ratio"]):
            line = line.groupby("frames")["value"].last().sort_index()
            label = method_label(pruner, stop) + ("" if pruner == "dense" else f" (r={ratio:g})")
            ax.plot(line.index, line.values, marker="o", color=PRUNER_COLOURS.get(pruner),
                    linestyle=STOP_STYLE.get(stop, ("", "-"))[1], label=label)
        ax.set_title(f"{backbone}: EventHallusion {metric}", fontsize=9)
        ax.set_xlabel("frames per video")
        ax.set_ylabel("accuracy")
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


# --------------------------------------------------------------------------- Fig. 7


def _alternative_label(pruner: str, stop: str, settings: object) -> str:
    options = pruner_settings(settings)
    if stop == "hard" and options.get("hard_k") is not None:
        return f"{pruner} + hard pruning (K = {100 * float(options['hard_k']):g}%)"
    if stop == "redistribute" and options.get("redistribute_p") is not None:
        return f"{pruner} + redistribution (p = {float(options['redistribute_p']):g})"
    return {"off": pruner, "on": f"{pruner} + SToP"}.get(stop, f"{pruner} + {stop}")


def sink_alternatives(rows: pd.DataFrame, path: Path) -> Path | None:
    """EventHallusion accuracy per way of handling sinks (base, SToP, hard, redistribute), grouped bars per
    (backbone, pruner, ratio); drawn when a pruner ran with hard or redistribute."""
    eh = _eh(table_runs(rows))
    alternatives = eh[eh["stop"].isin(["hard", "redistribute"])]
    if alternatives.empty:
        return None
    groups = sorted(alternatives.groupby(["backbone", "pruner", "ratio"]).groups)
    fig, axes = _grid_axes(len(groups), cols=2, size=(6.0, 3.6))
    for ax, (backbone, pruner, ratio) in zip(axes, groups):
        data = eh[(eh["backbone"] == backbone) & (eh["pruner"] == pruner) & ((eh["ratio"] - ratio).abs() < 1e-9)
                  & eh["stop"].isin(["off", "on", "hard", "redistribute"])]
        settings = data.get("pruner_settings", pd.Series("", index=data.index))
        data = data.assign(method=[_alternative_label(pruner, s, o) for s, o in zip(data["stop"], settings)])
        table = data.pivot_table(index="method", columns="paper_metric", values="value", aggfunc="last")
        order = sorted(table.index, key=lambda m: (m != pruner, "SToP" in m, m))
        table = table.reindex(order)[[m for m in EH_METRICS if m in table.columns]]
        table.T.plot.bar(ax=ax, rot=0, width=0.8)
        ax.set_title(f"{backbone}: {pruner}, r = {ratio:g} (EventHallusion)", fontsize=9)
        ax.set_ylabel("accuracy")
        ax.set_xlabel("")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


# --------------------------------------------------------------------------- Fig. 4


def _sink_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (backbone, ratio, pruner, stop): mean kept and dense tokens at sink positions per sample, over the
    tasks every run of that backbone shares (so the methods and the dense line count the same videos), at
    the most common frame count."""
    runs = table_runs(rows).dropna(subset=["sink_kept"])
    runs = runs[runs["frames"] == runs["frames"].mode().iloc[0]].drop_duplicates(["run_id", "task"])
    runs = runs.assign(weight=runs["n_samples"].fillna(1) if "n_samples" in runs else 1.0)
    counts = []
    for backbone, mine in runs.groupby("backbone"):
        common = set.intersection(*(set(group["task"]) for _, group in mine.groupby("run_id")))
        mine = mine[mine["task"].isin(common)]
        for (ratio, pruner, stop), group in mine.groupby(["ratio", "pruner", "stop"]):
            weights = group["weight"]
            counts.append({"backbone": backbone, "ratio": ratio, "pruner": pruner, "stop": stop,
                           "frames": int(group["frames"].iloc[0]),
                           "sink_kept": float((group["sink_kept"] * weights).sum() / weights.sum()),
                           "sink_dense": float((group["sink_dense"] * weights).sum() / weights.sum())})
    return pd.DataFrame(counts)


def sink_tokens(rows: pd.DataFrame, path: Path) -> Path | None:
    """Mean kept tokens at the video's sink positions per sample, per (backbone, ratio) and method, with
    the dense count for reference; drawn when results carry the sink columns."""
    if "sink_kept" not in rows or rows["sink_kept"].notna().sum() == 0:
        return None
    runs = _sink_counts(rows)
    groups = sorted(runs.loc[runs["pruner"] != "dense", ["backbone", "ratio"]].drop_duplicates().itertuples(index=False))
    if not groups:
        return None
    fig, axes = _grid_axes(len(groups), cols=2, size=(6.0, 3.6))
    for ax, (backbone, ratio) in zip(axes, groups):
        data = runs[(runs["backbone"] == backbone) & ((runs["ratio"] - ratio).abs() < 1e-9)]
        labels = [method_label(p, s) for p, s in zip(data["pruner"], data["stop"])]
        colours = [PRUNER_COLOURS.get(p, "tab:purple") for p in data["pruner"]]
        hatches = ["//" if s == "off" else "" for s in data["stop"]]
        bars = ax.bar(range(len(data)), data["sink_kept"], color=colours)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        dense = runs[(runs["backbone"] == backbone) & (runs["pruner"] == "dense")]["sink_kept"]
        if len(dense):
            ax.axhline(float(dense.iloc[0]), color="black", linestyle=":", label="dense")
            ax.legend(fontsize=7)
        ax.set_xticks(range(len(data)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("kept tokens at sink positions\n(mean per sample)")
        ax.set_title(f"{backbone}, r = {ratio:g}, {int(data['frames'].iloc[0])} frames", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


# --------------------------------------------------------------------------- Fig. 2b


def read_sink_stats(results_files: list[Path]) -> list[dict]:
    """Each run's sink summary (``sink_stats.json`` beside its results.csv), with its run id."""
    found = []
    for results in results_files:
        path = Path(results).parent / SINK_STATS_FILE
        if path.is_file():
            found.append({"run_id": Path(results).parent.name, **json.loads(path.read_text(encoding="utf-8"))})
    return found


def selection_frequency(stats: list[dict], path: Path, limit: int = 12) -> Path | None:
    """Per run: the fraction of frames in which each grid position is kept, as a heat map with the sink
    positions outlined (the paper's Fig. 2b shows a few bottom positions dominating)."""
    usable = [s for s in stats if s.get("selection_frequency") and s.get("grid")][:limit]
    if not usable:
        return None
    fig, axes = _grid_axes(len(usable), cols=3, size=(3.6, 3.4))
    for ax, run in zip(axes, usable):
        h, w = run["grid"]
        frequency = np.asarray(run["selection_frequency"], dtype=float).reshape(h, w)
        image = ax.imshow(frequency, cmap="viridis", vmin=0, vmax=max(1e-9, float(frequency.max())))
        for position in run.get("sink_positions") or []:
            ax.add_patch(plt.Rectangle((position % w - 0.5, position // w - 0.5), 1, 1, fill=False, edgecolor="red",
                                       linewidth=0.8))
        ax.set_title(run["run_id"][:48], fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("share of frames in which each position is kept (red: sink positions)", fontsize=9)
    return _save(fig, path)


# --------------------------------------------------------------------------- D.4


def sensitivity(rows: pd.DataFrame, path: Path, calibration_path: Path) -> Path | None:
    """Calibration sweeps (user-set mu_s / mu_t / gamma): each metric against the parameter that varied,
    per (backbone, pruner, ratio); the best value of each parameter per metric goes to calibration.json."""
    if "mu_source" not in rows:
        return None
    swept = rows[(rows["mu_source"].astype(str) == USER_OVERRIDE) & rows["value"].notna()]
    swept = swept[swept["paper_metric"].str.endswith("acc") | swept["paper_metric"].str.endswith("rate")]
    curves, best = [], []
    for (backbone, pruner, ratio), group in swept.groupby(["backbone", "pruner", "ratio"]):
        for parameter in SENSITIVITY_PARAMETERS:
            # one sweep per parameter: the runs whose other parameters sit at their most common values
            others = [p for p in SENSITIVITY_PARAMETERS if p != parameter]
            sweep = group[(group[others] == group[others].mode().iloc[0]).all(axis=1)]
            if sweep[parameter].nunique() < 2:
                continue
            for (benchmark, metric), data in sweep.groupby(["benchmark", "paper_metric"]):
                line = data.groupby(parameter)["value"].mean().sort_index()
                lower = metric.endswith("rate")
                winner = line.idxmin() if lower else line.idxmax()
                curves.append((backbone, pruner, ratio, parameter, f"{benchmark} {metric}", line))
                best.append({"backbone": backbone, "pruner": pruner, "ratio": float(ratio), "parameter": parameter,
                             "benchmark": benchmark, "metric": metric, "best": float(winner),
                             "value": float(line[winner]), "lower_is_better": lower,
                             "grid": [float(x) for x in line.index]})
    if not curves:
        return None
    panels = sorted({c[:4] for c in curves}, key=str)
    fig, axes = _grid_axes(len(panels))
    for ax, (backbone, pruner, ratio, parameter) in zip(axes, panels):
        for *key, label, line in curves:
            if tuple(key) == (backbone, pruner, ratio, parameter):
                ax.plot(line.index, line.values, marker="o", label=label)
        ax.set_title(f"{backbone}: {pruner}, r = {ratio:g}", fontsize=9)
        ax.set_xlabel(parameter)
        ax.set_ylabel("value")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    atomic_write_text(calibration_path, json.dumps(best, indent=2) + "\n")
    return _save(fig, path)


def paper_figures(rows: pd.DataFrame, results_files: list[Path], out: Path) -> list[Path]:
    made = [accuracy_vs_frames(rows, out / "accuracy_vs_frames.png"),
            sink_alternatives(rows, out / "sink_alternatives.png"),
            sink_tokens(rows, out / "sink_tokens.png"),
            selection_frequency(read_sink_stats(results_files), out / "selection_frequency.png"),
            sensitivity(rows, out / "sensitivity.png", out / "calibration.json")]
    return [p for p in made if p is not None]
