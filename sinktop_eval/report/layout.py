"""What the paper's tables are: their columns, their methods, and the paper's names for our rows.

Results rows carry ``family`` (the backbone's architecture) and ``benchmark`` (the task set's id for what
a task measures); a table selects by those, never by task names.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    benchmark: str
    metric: str  # the paper's metric name within the benchmark (see canonical_metric)
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
    family: str  # which backbones it is about
    columns: tuple[Column, ...]
    methods: tuple[Method, ...]


DENSE = Method("dense", "off", "Dense")  # the reference row: every table's PDR is relative to it
GRID = (DENSE, Method("visionzip", "off", "VisionZip"), Method("visionzip", "on", "+ SToP"),
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
                 (DENSE, Method("holitom", "off", "HoliTom"), Method("holitom", "stsp", "+ STSP only"),
                  Method("holitom", "sttp", "+ STTP only"), Method("holitom", "on", "+ STSP + STTP"))),
    8: TableSpec(8, "Qwen2.5-VL", "qwen25vl",
                 (Column("eventhallusion", "overall_acc", "EH overall"), Column("eventhallusion", "binary_acc", "EH bin"),
                  Column("videocomp", "activitynet_acc", "VC ANet"), Column("mvbench", "acc", "MVBench"),
                  Column("videomme", "acc", "VideoMME")), GRID),
}

# our family -> the paper's backbone name in paper_reference.csv
PAPER_BACKBONE = {"llava_ov": "llava_ov_7b", "qwen25vl": "qwen25vl_7b"}
# our (pruner, stop) -> the paper's method name where they differ
PAPER_METHOD = {("holitom", "stsp"): "holitom_stsp_only", ("holitom", "sttp"): "holitom_sttp_only"}
# lmms-eval's built-in metric names -> the paper's (our own tasks already use the paper's names)
METRIC_ALIASES = {
    "gpt_eval_score_correctness": "ci", "gpt_eval_score_detailed_orientation": "do", "gpt_eval_score_context": "cu",
    "gpt_eval_score_temporal": "tu", "gpt_eval_score_consistency": "co",
    "mvbench_accuracy": "acc", "videomme_perception_score": "acc", "mlvu_percetion_score": "acc",
}


def canonical_metric(split: str | float | None, metric: str) -> str:
    """Our (split, metric) -> the paper's metric name: aliases applied, a split prepended (acc + short -> short_acc)."""
    metric = METRIC_ALIASES.get(metric, metric)
    return f"{split}_{metric}" if isinstance(split, str) and split else metric


def accuracy_columns() -> set[tuple[str, str]]:
    """(benchmark, metric) of every accuracy column of the paper's tables (the plots' panels)."""
    return {(c.benchmark, c.metric) for spec in TABLES.values() for c in spec.columns if c.metric.endswith("acc")}
