"""Plots people would rather look at than read: accuracy vs retention, cost vs accuracy, sink heat maps."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .layout import paper_columns  # noqa: E402

PRUNER_COLOURS = {"visionzip": "tab:blue", "fastvid": "tab:orange", "holitom": "tab:green", "random": "tab:gray",
                  "uniform": "tab:brown", "dense": "black"}
STOP_STYLE = {"off": ("", "--"), "on": (" + SToP", "-"), "stsp": (" + STSP only", "-."), "sttp": (" + STTP only", ":")}
BACKBONE_MARKERS = ("o", "s", "^", "D", "v", "P")


def method_label(pruner: str, stop: str) -> str:
    return pruner + STOP_STYLE.get(stop, (f" + {stop}", "-"))[0]


def _table_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of the paper tables' columns with a value, labelled by panel; ``lower`` marks lower-is-better ones."""
    columns = paper_columns()
    keys = list(zip(rows["benchmark"], rows["paper_metric"]))
    in_table = pd.Series([k in columns for k in keys], index=rows.index)
    found = rows[in_table & rows["value"].notna()]
    found_keys = list(zip(found["benchmark"], found["paper_metric"]))
    return found.assign(panel=found["benchmark"] + " " + found["paper_metric"],
                        lower=[not columns[k].higher_is_better for k in found_keys])


def _accuracy_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy columns only (higher is better, named *acc): what a mean accuracy may average."""
    found = _table_rows(rows)
    return found[~found["lower"] & found["paper_metric"].str.endswith("acc")]


def accuracy_vs_retention(rows: pd.DataFrame, path: Path) -> Path | None:
    """One panel per (backbone, paper column): its value against retention ratio per pruner,
    SToP on solid, off dashed, dense as a dotted line; lower-is-better panels say so."""
    acc = _table_rows(rows)
    panels = sorted(acc.groupby(["backbone", "panel"]).groups)
    if not panels:
        return None
    cols = min(3, len(panels))
    fig, axes = plt.subplots(math.ceil(len(panels) / cols), cols, figsize=(4.2 * cols, 3.2 * math.ceil(len(panels) / cols)),
                             squeeze=False)
    for ax, (backbone, panel) in zip(axes.flat, panels):
        data = acc[(acc["backbone"] == backbone) & (acc["panel"] == panel)]
        dense = data[data["pruner"] == "dense"]["value"]
        if len(dense):
            ax.axhline(dense.iloc[-1], color="black", linestyle=":", label="dense")
        for (pruner, stop), line in data[data["pruner"] != "dense"].groupby(["pruner", "stop"]):
            line = line.groupby("ratio")["value"].last().sort_index()
            ax.plot(line.index, line.values, marker="o", color=PRUNER_COLOURS.get(pruner, None),
                    linestyle=STOP_STYLE.get(stop, ("", "-"))[1], label=method_label(pruner, stop))
        lower = bool(data["lower"].iloc[0])
        ax.set_title(f"{backbone}: {panel}{' (lower is better)' if lower else ''}", fontsize=9)
        ax.set_xlabel("retention ratio r")
        ax.set_ylabel("cost" if lower else "accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    legend = {}
    for ax in axes.flat:  # every method that appears in any panel, once
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels, handles = list(legend), list(legend.values())
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def cost_vs_accuracy(rows: pd.DataFrame, path: Path) -> Path | None:
    """Mean accuracy of each run against its kept visual tokens and its prefill TFLOPs.

    Colour = pruner, filled = SToP active (hollow = off), marker = backbone."""
    acc = _accuracy_rows(rows)
    if acc.empty:
        return None
    runs = acc.groupby(["run_id", "backbone", "pruner", "stop", "ratio"], dropna=False).agg(
        accuracy=("value", "mean"), kept=("kept_visual_tokens", "mean"), tflops=("prefill_tflops", "mean")).reset_index()
    markers = {b: BACKBONE_MARKERS[i % len(BACKBONE_MARKERS)] for i, b in enumerate(sorted(runs["backbone"].unique()))}
    legend_rows = math.ceil(runs.groupby(["backbone", "pruner", "stop"]).ngroups / 3)
    height = 3.6 + 0.2 * legend_rows
    fig, axes = plt.subplots(1, 2, figsize=(10, height))
    for ax, column, label in ((axes[0], "kept", "kept visual tokens (mean per sample)"),
                              (axes[1], "tflops", "LLM prefill TFLOPs (analytic, mean per sample)")):
        for (backbone, pruner, stop), group in runs.groupby(["backbone", "pruner", "stop"]):
            colour = PRUNER_COLOURS.get(pruner, "tab:purple")
            ax.scatter(group[column], group["accuracy"], color=colour, marker=markers[backbone],
                       facecolors="none" if stop == "off" and pruner != "dense" else colour,
                       label=f"{backbone}: {method_label(pruner, stop)}", s=40)
        ax.set_xlabel(label)
        ax.set_ylabel("mean accuracy over benchmarks")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, (0.2 * legend_rows + 0.15) / height, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def results_plots(rows: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = [accuracy_vs_retention(rows, out / "accuracy_vs_retention.png"),
            cost_vs_accuracy(rows, out / "cost_vs_accuracy.png")]
    return [p for p in made if p is not None]


def sink_heatmap(frame, sink, grid: tuple[int, int], path: Path, title: str = "") -> Path:
    """A video frame beside its per-position sink score (and the two overlaid).

    frame: (H, W, 3) uint8; sink: (n,) scores in [0, 1] on an h x w grid.
    """
    import numpy as np

    h, w = grid
    scores = np.asarray(sink, dtype=float).reshape(h, w)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    axes[0].imshow(frame)
    axes[0].set_title("middle frame")
    image = axes[1].imshow(scores, cmap="magma", vmin=0, vmax=1)
    axes[1].set_title(f"sink score s ({h}x{w} LLM token grid)")
    fig.colorbar(image, ax=axes[1], fraction=0.046)
    axes[2].imshow(frame)
    axes[2].imshow(scores, cmap="magma", vmin=0, vmax=1, alpha=0.55, extent=(0, frame.shape[1], frame.shape[0], 0),
                   interpolation="nearest")
    axes[2].set_title("overlay")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
