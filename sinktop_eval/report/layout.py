"""What the paper's tables are: their columns, their methods, their PDR, and the paper's names for our rows.

Results rows carry ``family`` (the backbone's architecture) and ``benchmark`` (the task set's id for what
a task measures); a table selects by those, never by task names. Each column names the metric it shows,
so a table can say which number it compares with the paper's.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Column:
    benchmark: str
    metric: str  # the paper's metric name within the benchmark (see canonical_metric)
    label: str
    higher_is_better: bool = True
    in_pdr: bool = True  # part of the table's PDR (Table 2 shows Video-MME overall but averages "short")
    release_metric: str | None = None  # the same number computed the SToP release's way (tables --protocol release)


@dataclass(frozen=True)
class Method:
    pruner: str
    stop: str
    label: str
    paper_method: str | None = None  # the paper's name when it differs (ablation rows)


@dataclass(frozen=True)
class TableSpec:
    number: int
    title: str
    family: str  # which backbones it is about
    columns: tuple[Column, ...]
    methods: tuple[Method, ...]
    pdr_metric: str = "pdr"  # the paper's name for its drop column (benchmark "all" unless pdr_benchmark)
    pdr_benchmark: str = "all"
    pdr_note: str = "mean relative drop vs dense over the columns marked for PDR"
    note: str = ""


DENSE = Method("dense", "off", "Dense")  # the reference row: every table's PDR is relative to it


def grid(pruners: tuple[tuple[str, str], ...]) -> tuple[Method, ...]:
    """Dense, then each pruner without and with SToP."""
    rows = [DENSE]
    for pruner, label in pruners:
        rows += [Method(pruner, "off", label), Method(pruner, "on", f"{label} + SToP")]
    return tuple(rows)


GRID = grid((("visionzip", "VisionZip"), ("fastvid", "FastVID"), ("holitom", "HoliTom")))
VCG = tuple(Column("vcgbench", m, f"VCG {m.upper()}", release_metric=f"{m}_release") for m in ("ci", "do", "cu", "tu", "co"))
FINE_GRAINED = (Column("eventhallusion", "binary_acc", "EH bin"),
                Column("eventhallusion", "desc_acc", "EH desc", release_metric="desc_acc_release"), *VCG,
                Column("videocomp", "activitynet_acc", "VC ANet"), Column("videocomp", "youcook2_acc", "VC YC2"))
TABLES = {
    1: TableSpec(1, "Fine-grained video understanding (LLaVA-OV)", "llava_ov", FINE_GRAINED, GRID),
    2: TableSpec(2, "Multiple-choice QA (LLaVA-OV)", "llava_ov",
                 (Column("mvbench", "acc", "MVBench"), Column("videomme", "short_acc", "VideoMME short"),
                  Column("nextqa", "acc", "NExT-QA"), Column("longvideobench", "acc", "LongVideoBench"),
                  Column("mlvu", "acc", "MLVU dev", release_metric="pooled_acc"),
                  Column("videomme", "acc", "VideoMME", in_pdr=False)), GRID,
                 pdr_note="mean relative drop vs dense over MVBench, VideoMME short, NExT-QA, LongVideoBench and "
                          "MLVU (VideoMME overall is shown but not averaged, as in the paper)"),
    3: TableSpec(3, "Fine-grained video understanding (LLaVA-Video)", "llava_video", FINE_GRAINED, GRID),
    4: TableSpec(4, "SToP ablation: STSP and STTP (LLaVA-OV)", "llava_ov",
                 tuple(replace(c, in_pdr=c.metric == "binary_acc") for c in FINE_GRAINED),
                 (DENSE, Method("visionzip", "off", "VisionZip"), Method("visionzip", "on", "VisionZip + STSP"),
                  Method("holitom", "off", "HoliTom"),
                  Method("holitom", "stsp", "HoliTom + STSP only", paper_method="holitom_stsp_only"),
                  Method("holitom", "sttp", "HoliTom + STTP only", paper_method="holitom_sttp_only"),
                  Method("holitom", "on", "HoliTom + STSP + STTP")),
                 pdr_metric="pdr_binary", pdr_benchmark="eventhallusion",
                 pdr_note="the relative drop of EH binary alone (the paper's drop column)"),
    6: TableSpec(6, "FlashVID with and without SToP (LLaVA-OV)", "llava_ov", FINE_GRAINED,
                 grid((("flashvid", "FlashVID"),)),
                 note="FlashVID (SToP's port) keeps ~1.25 r n tokens (its expansion, no inner-LLM stage): see Kept"),
    7: TableSpec(7, "Argus hallucination and omission cost (LLaVA-OV; lower is better)", "llava_ov",
                 (Column("argus", "hallucination_rate", "Argus H", higher_is_better=False),
                  Column("argus", "omission_rate", "Argus O", higher_is_better=False)),
                 grid((("visionzip", "VisionZip"),)),
                 pdr_note="mean relative increase of the costs vs dense (lower is better, so a drop in quality is positive)"),
    8: TableSpec(8, "Qwen2.5-VL", "qwen25vl",
                 (Column("eventhallusion", "overall_acc", "EH overall", release_metric="overall_acc_release"),
                  Column("eventhallusion", "binary_acc", "EH bin"),
                  Column("videocomp", "activitynet_acc", "VC ANet"), Column("mvbench", "acc", "MVBench"),
                  Column("videomme", "acc", "VideoMME")), GRID),
}

# our family -> the paper's backbone name in paper_reference.csv
PAPER_BACKBONE = {"llava_ov": "llava_ov_7b", "qwen25vl": "qwen25vl_7b", "llava_video": "llava_video_7b"}
# lmms-eval's built-in metric names -> the paper's (our own tasks already use the paper's names)
METRIC_ALIASES = {"mvbench_accuracy": "acc", "videomme_perception_score": "acc", "mlvu_percetion_score": "acc"}
PROTOCOLS = ("official", "release")  # which metric a column shows: the benchmark's own protocol or the release's


def with_protocol(spec: TableSpec, protocol: str) -> TableSpec:
    """The table with each column's release metric in place of the official one (protocol="release")."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is unknown; allowed: {', '.join(PROTOCOLS)}")
    if protocol == "official":
        return spec
    return replace(spec, columns=tuple(replace(c, metric=c.release_metric) if c.release_metric else c
                                       for c in spec.columns))


def canonical_metric(split: str | float | None, metric: str) -> str:
    """Our (split, metric) -> the paper's metric name: aliases applied, a split prepended (acc + short -> short_acc)."""
    metric = METRIC_ALIASES.get(metric, metric)
    return f"{split}_{metric}" if isinstance(split, str) and split else metric


def paper_columns() -> dict[tuple[str, str], Column]:
    """(benchmark, metric) -> its column, for every column of every table (the plots' panels)."""
    return {(c.benchmark, c.metric): c for spec in TABLES.values() for c in spec.columns}
