"""ARGUS (Rawal et al., 2025, arXiv 2506.07371): hallucination and omission in free-form video captions.

    <dir>/data/*.parquet             the release's table (HF tomg-group-umd/argus, split "train", 500 clips):
                                     ``clip_name``, ``human_caption``
    <dir>/videos/<clip_name>.mp4     the release's videos (``clips/`` is looked in too: the official download
                                     script renames ``videos/`` to it)

<dir> is $SINKTOP_ARGUS_DIR, else $SINKTOP_DATA_ROOT/Argus (under SINKTOP_DATA_ROOT=builtin:smoke: the
synthetic copy). One doc per clip; the model is asked "Describe the video in great detail." (the official
caption prompt). Each caption is then judged twice by the LLM judge (`sinktop_eval.benchmarks.judge`), with
judge instructions written for this project (judge_prompt.md: same protocol and labels as the official
prompt, whose text is not reused) and 3 of the worked examples in examples/, chosen per clip by a seeded
draw (the official code draws them unseeded):

* hallucination: source = the human caption, target = the model's caption;
* omission: source = the model's caption, target = the human caption.

Each judgement is scored by `scoring.argus_cost` (the official DP cost with order penalty 0.1) and reported
x100: hallucination_rate and omission_rate are the means over the clips scored (lower is better, as
ArgusCost-H / -O). A clip that cannot be scored in a mode (the judge call failed after its retries, the
reply does not parse, 40 % or more boilerplate lines, a zero normaliser, an empty caption) is left out of
that mode's mean, as the official evaluation leaves it out, and counted: skipped_clips = clips missing from
at least one of the two rates, judge_failures = judge calls that failed. Each sample's output keeps the raw
judge replies, the cost, the normaliser and the reason for a skip. Without a judge every metric is NaN (one
warning per run).
"""
from __future__ import annotations

import logging
import math
import random
from functools import lru_cache
from pathlib import Path

from sinktop_eval.benchmarks import common, judge
from sinktop_eval.tasks.argus import scoring

log = logging.getLogger("sinktop_eval.tasks.argus")

BENCHMARK = "Argus"
ENV_VAR = "SINKTOP_ARGUS_DIR"
CAPTION_PROMPT = "Describe the video in great detail."
VIDEO_FOLDERS = ("videos", "clips")
COLUMNS = ("clip_name", "human_caption")
HERE = Path(__file__).resolve().parent
PROMPT_FILE = HERE / "judge_prompt.md"
EXAMPLES_DIR = HERE / "examples"
EXAMPLES_PER_PROMPT = 3  # as the official judge prompt
EXAMPLES_SEED = 0  # fixed: the same clip always gets the same examples, so replies cache and runs compare
JUDGE_MAX_TOKENS = 4096  # one block per target sentence; a 477-word human caption has ~20-30 of them
MODES = (("hallucination", "hallucination_rate"), ("omission", "omission_rate"))
NAN = common.NAN


# --------------------------------------------------------------------------- loading


def _video_path(base: Path, clip_name: str) -> Path:
    names = [clip_name] if Path(clip_name).suffix in common.VIDEO_EXTENSIONS else \
        [f"{clip_name}{ext}" for ext in common.VIDEO_EXTENSIONS]
    candidates = [base / folder / name for folder in VIDEO_FOLDERS for name in names]
    return common.first_existing(candidates) or candidates[0]


def load_docs(base: Path, how: str) -> list[dict]:
    import pandas as pd

    files = sorted((base / "data").glob("*.parquet"))
    if not files:
        raise common.data_error(BENCHMARK, base / "data", ENV_VAR, how)
    docs = []
    for path in files:
        try:
            table = pd.read_parquet(path, columns=list(COLUMNS))
        except (OSError, ValueError, KeyError) as err:
            raise common.DataRootError(f"{BENCHMARK} table {path} is unreadable or lacks {'/'.join(COLUMNS)} "
                                       f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                                       f"is this the tomg-group-umd/argus release?") \
                from None
        for index, (name, caption) in enumerate(zip(table["clip_name"], table["human_caption"])):
            if not isinstance(name, str) or not name.strip() or not isinstance(caption, str) or not caption.strip():
                raise common.malformed(path, index, ValueError("empty clip_name or human_caption"))
            docs.append({"clip_name": name, "human_caption": caption, "video": str(_video_path(base, name))})
    return common.check_videos(docs, BENCHMARK, base / VIDEO_FOLDERS[0], ENV_VAR)


argus_docs = common.docs_of(load_docs, BENCHMARK, ENV_VAR, on_build=judge.new_run)


# --------------------------------------------------------------------------- prompting


def doc_to_visual(doc):
    return [common.checked_video(doc["video"], f"{BENCHMARK} {doc['clip_name']}")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{CAPTION_PROMPT}{kwargs.get('post_prompt', '')}"


def doc_to_target(doc):
    return doc["human_caption"]


# --------------------------------------------------------------------------- the judge's prompt


@lru_cache(maxsize=1)
def _examples() -> tuple[tuple[str, str], ...]:
    return tuple((p.stem, p.read_text(encoding="utf-8").strip()) for p in sorted(EXAMPLES_DIR.glob("*.md")))


def examples_for(clip_name: str, seed: int = EXAMPLES_SEED) -> list[str]:
    """The names of the worked examples shown for one clip: a draw seeded by (seed, clip name)."""
    names = [name for name, _ in _examples()]
    return random.Random(f"{seed}:{clip_name}").sample(names, min(EXAMPLES_PER_PROMPT, len(names)))


@lru_cache(maxsize=1)
def _template() -> str:
    return PROMPT_FILE.read_text(encoding="utf-8").strip()


def judge_prompt(source: str, target: str, example_names: list[str]) -> str:
    texts = dict(_examples())
    examples = "\n\n".join(f"EXAMPLE {k}\n{texts[name]}" for k, name in enumerate(example_names, 1))
    # replace() and not format(): captions may hold braces
    return (_template().replace("{{EXAMPLES}}", examples).replace("{{SOURCE}}", source.strip())
            .replace("{{TARGET}}", target.strip()))


# --------------------------------------------------------------------------- scoring


def _readable(text: str) -> str | None:
    """The judge client's reply check: a reply without valid ``Line N:`` blocks is a failed call (not cached,
    asked again on rescore), not a scored clip."""
    try:
        scoring.parse_judgement(text)
    except scoring.JudgementError:
        return None
    return text


def _judged(client, mode: str, source: str, target: str, example_names: list[str]) -> tuple[dict, bool]:
    """(per-sample record of one judgement, whether the judge call failed or its reply was unreadable)."""
    reply = client.ask(judge_prompt(source, target, example_names), max_tokens=JUDGE_MAX_TOKENS, parse=_readable)
    record = {"mode": mode, "judge_reply": reply.text, "cached": reply.cached, "examples": example_names}
    if not reply.ok:
        return {**record, "score": NAN, "error": reply.error or "judge call failed"}, True
    try:
        cost = scoring.argus_cost(reply.text, source)
    except scoring.JudgementError as err:
        return {**record, "score": NAN, "error": str(err)}, False
    return {**record, "score": 100.0 * cost.normalized, "error": None, **cost.as_dict()}, False


def process_results(doc, results):
    """Two judgements of one caption -> hallucination_rate / omission_rate (x100, NaN when not scored),
    skipped_clips (0/1) and judge_failures (0-2), all NaN without a judge; and skipped (clips left out for a
    bad video, the count every local task reports)."""
    return {**_judgements(doc, results), "skipped": doc.get(common.SKIPPED_FIELD, 0)}


def _judgements(doc, results) -> dict:
    caption = results[0] if results else ""
    caption = caption if isinstance(caption, str) else str(caption)
    config = judge.active_config()
    if not config.configured:
        judge.warn_no_judge()
        return {**{metric: {"mode": mode, "score": NAN, "error": "no judge"} for mode, metric in MODES},
                "skipped_clips": NAN, "judge_failures": NAN}
    if not caption.strip():  # nothing to judge; the official pipeline cannot score it either
        log.warning("%s clip %s: empty caption, left out of both rates", BENCHMARK, doc["clip_name"])
        return {**{metric: {"mode": mode, "score": NAN, "error": "empty caption"} for mode, metric in MODES},
                "skipped_clips": 1.0, "judge_failures": 0.0}
    client = judge.get_client(config)
    names = examples_for(doc["clip_name"])
    out, failures = {}, 0
    for mode, metric in MODES:
        source, target = (doc["human_caption"], caption) if mode == "hallucination" else (caption, doc["human_caption"])
        record, failed = _judged(client, mode, source, target, names)
        failures += failed
        if record["error"]:
            log.warning("%s clip %s: %s left out (%s)", BENCHMARK, doc["clip_name"], metric, record["error"])
        elif record["normalized"] > 1:
            log.warning("%s clip %s: %s cost %.3f exceeds its normaliser %.3f (entailed actions without evidence)",
                        BENCHMARK, doc["clip_name"], metric, record["cost"], record["max_cost"])
        out[metric] = {"clip_name": doc["clip_name"], **record}
    skipped = any(math.isnan(out[metric]["score"]) for _, metric in MODES)
    return {**out, "skipped_clips": 1.0 if skipped else 0.0, "judge_failures": float(failures)}


mean_scored = common.mean_scored
total = common.total
skipped = common.skipped
