"""`SinktopModel`: a backbone adapter plus a pruner, speaking lmms-eval's simple-model protocol.

    lmms-eval eval --model sinktop \
        --model_args backbone=tiny_qwen25vl,pruner=holitom,stop=on,ratio=0.1 --tasks ... --include_path tasks
    accelerate launch --num_processes 8 -m lmms_eval --model sinktop --model_args pretrained=Qwen/Qwen2.5-VL-7B-Instruct,...
    simple_evaluate(model=SinktopModel(backbone="tiny_qwen25vl", pruner="holitom"), tasks=[...], ...)

What lmms-eval gets from it, as from its own HF models: ``device``, ``rank``, ``world_size`` and an
``accelerator`` under a multi-process launch (each rank answers its shard; lmms-eval gathers the scored
samples); generation honours the task's ``until`` (a stopping criterion), ``max_new_tokens``, ``do_sample``,
``temperature`` and ``top_p`` (greedy unless the task samples, as the paper ran); every answer carries its
token counts and cost stats (lmms-eval's usage summary and ``--log_samples`` output); the results JSON
records the resolved combination (``config.model``). Every model_arg is checked before any weights load.

Every generation's cost accounting (visual tokens dense/kept, prefill FLOPs, timings, memory, whether the
vision features came from the feature cache) is kept in ``records`` (per rank; ``all_records()`` gathers
them) and appended to ``records_path`` (``<stem>.rank<r>.jsonl`` per rank under a multi-process launch),
which is also the resume point: any rank's finished generations are reused.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms
from tqdm import tqdm

from ..backbones import Sampling, load_backbone
from ..backbones.feature_cache import FeatureCache
from ..combination import Combination, resolve_combination
from ..files import atomic_write_text
from . import parallel

log = logging.getLogger(__name__)

BACKBONE_KWARGS = ("dtype", "device", "attn_implementation")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
DEFAULT_MAX_NEW_TOKENS = 128  # when a task sets none
# per-answer record fields that go to lmms-eval's --log_samples output next to the token counts
SAMPLE_COST_FIELDS = ("kept_visual_tokens", "dense_visual_tokens", "prompt_tokens_dense", "prefill_flops",
                      "prefill_flops_dense", "video_io_s", "vision_s", "pruning_s", "prefill_s", "decode_s",
                      "peak_mem_gb", "peak_mem_kind", "vision_cache", "decoding", "resumed")


class SinktopModelError(SystemExit):
    """A failure inside the model.

    A ``SystemExit`` on purpose: the lmms-eval CLI catches every ``Exception`` and still exits 0, which
    would let a broken sweep look finished. This one passes through it and exits 1 with its message (and
    under a multi-process launch, one rank exiting non-zero makes the launcher stop the job non-zero).
    """


@dataclass
class SampleUsage(TokenCounts):
    """lmms-eval's per-answer token counts plus our cost stats: what ``--log_samples`` writes per sample."""

    cost: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), **self.cost}


def parse_visual(visuals: Any) -> tuple[str, float | None, float | None]:
    """(video path, start s, end s) from a task's ``doc_to_visual`` output.

    Tasks return ``[path]`` or, for a time window, ``[{"path": ..., "start": s, "end": s}]``.
    """
    item = visuals[0] if isinstance(visuals, (list, tuple)) and visuals else visuals
    if isinstance(item, str):
        return item, None, None
    if isinstance(item, dict) and isinstance(item.get("path"), str):
        return item["path"], item.get("start"), item.get("end")
    raise ValueError(f"doc_to_visual must return [video_path] or [{{'path', 'start', 'end'}}]; got {visuals!r}")


def stop_strings(until: Any) -> list[str]:
    """A task's ``until`` (a string, a list of strings, or nothing) as a list of non-empty stop strings."""
    return [s for s in ([until] if isinstance(until, str) else list(until or [])) if s]


def truncate_at_stop(text: str, until: Any) -> str:
    """Cut generated text at the first stop string the task asked for."""
    cut = min((text.find(s) for s in stop_strings(until) if s in text), default=-1)
    return text[:cut] if cut >= 0 else text


def _integer(name: str, value: Any, minimum: int) -> int:
    """An integer model_arg (lmms-eval parses "4" to 4 but "-1" to -1.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        ok = False
    else:
        try:
            number = float(value)
            ok = number.is_integer() and number >= minimum
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; allowed: an integer >= {minimum}")
    return int(float(value))


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def decoding_of(gen_kwargs: dict, cap: int | None, seed: int) -> tuple[int, list[str], Sampling | None]:
    """(max new tokens, stop strings, sampling or None for greedy) from a task's generation_kwargs.

    ``do_sample`` switches sampling on (as in transformers); ``temperature`` (default 1) and ``top_p``
    (default 1) shape it; temperature 0 is greedy. Beam search is not supported.
    """
    limit = _integer("max_new_tokens", gen_kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS, 1)
    if cap:
        limit = min(limit, cap)
    beams = gen_kwargs.get("num_beams")
    if beams not in (None, 1, "1"):
        raise ValueError(f"num_beams={beams!r} is unsupported; allowed: 1 (greedy or sampling)")
    sampling = None
    if _truthy(gen_kwargs.get("do_sample", False)):
        temperature, top_p = (gen_kwargs.get(k) for k in ("temperature", "top_p"))
        temperature = 1.0 if temperature is None else float(temperature)
        top_p = 1.0 if top_p is None else float(top_p)
        if temperature > 0:
            sampling = Sampling(temperature=temperature, top_p=top_p, seed=seed)
    return limit, stop_strings(gen_kwargs.get("until")), sampling


def _check_settings(pruner: Any, settings: dict[str, Any]) -> None:
    """``pruner_<setting>`` values against the pruner's own defaults' types (model_args arrive as text or
    numbers; the pruner itself checks ranges and names)."""
    import inspect

    from ..combination import PRUNER_ALIASES
    from ..pruning import PRUNERS

    cls = PRUNERS.get(PRUNER_ALIASES.get(str(pruner), str(pruner)))
    if cls is None:
        return  # resolve_combination names the unknown pruner
    defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
                if p.kind is p.KEYWORD_ONLY}
    for name, value in settings.items():
        default = defaults.get(name)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"pruner_{name}={value!r} is invalid; allowed: a number (default {default})")


def _validate_backbone_kwargs(backbone_kwargs: dict[str, Any]) -> None:
    """dtype / device / attn_implementation, checked without loading anything."""
    import torch

    from ..backbones.base import resolve_device, resolve_dtype

    device = resolve_device(backbone_kwargs.get("device"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={backbone_kwargs.get('device')!r} but no CUDA device is available; allowed here: "
                         "cpu, auto")
    resolve_dtype(backbone_kwargs.get("dtype"), device)
    attn = backbone_kwargs.get("attn_implementation")
    if attn is not None and attn not in ATTN_IMPLEMENTATIONS and "/" not in str(attn):
        raise ValueError(f"attn_implementation={attn!r} is unknown; allowed: {', '.join(ATTN_IMPLEMENTATIONS)} "
                         "(or a hub kernel repo id)")


class SinktopModel(lmms):
    """One (backbone, pruner, SToP, ratio) combination as an lmms-eval simple model (batch size 1)."""

    is_simple = True

    def __init__(self, backbone: Any = None, pruner: str = "holitom", stop: Any = "on",
                 ratio: float = 0.1, mu_s: float | None = None, mu_t: float | None = None, gamma: float | None = None,
                 frames: int = 32, max_new_tokens: int | None = None, seed: int = 0, batch_size: Any = 1,
                 records_path: str | None = None, path: str | None = None, pretrained: str | None = None,
                 feature_cache: str | FeatureCache | None = None, feature_cache_gb: float = 50.0,
                 combination: Combination | None = None, **kwargs: Any) -> None:
        """Either the combination's parts (as lmms-eval's ``--model_args`` give them: ``backbone`` is a name,
        ``pretrained`` / ``path`` a checkpoint) or a ``combination`` already resolved by the runner with a
        loaded ``backbone`` adapter. ``feature_cache`` is a folder (or a `FeatureCache`) for encoder outputs."""
        super().__init__()
        try:
            self._setup(backbone, combination, pruner, stop, ratio, mu_s, mu_t, gamma, seed, path, pretrained, frames,
                        max_new_tokens, batch_size, feature_cache, feature_cache_gb, kwargs)
            self._open_records(records_path)
        except SinktopModelError:
            raise
        except Exception as err:  # noqa: BLE001 - re-raised so the CLI cannot exit 0
            raise SinktopModelError(f"sinktop model setup failed: {err}") from err

    def _setup(self, backbone, combination, pruner, stop, ratio, mu_s, mu_t, gamma, seed, path, pretrained, frames,
               max_new_tokens, batch_size, feature_cache, feature_cache_gb, kwargs) -> None:
        # -- every argument is checked here, before any weights load ------------------------------------------
        if batch_size not in (None, 1, "1", "auto"):
            raise ValueError(f"batch_size={batch_size!r} is unsupported; allowed: 1 (one video per forward, as the paper)")
        kwargs.pop("max_batch_size", None)
        backbone_kwargs = {k: kwargs.pop(k) for k in BACKBONE_KWARGS if kwargs.get(k) is not None}
        kwargs.pop("device", None)
        settings = {k[len("pruner_"):]: kwargs.pop(k) for k in list(kwargs) if k.startswith("pruner_")}
        if kwargs:
            raise ValueError(f"unknown model_args {sorted(kwargs)}; allowed: backbone, pretrained (or path), pruner, "
                             f"stop, ratio, mu_s, mu_t, gamma, frames, max_new_tokens, seed, feature_cache, "
                             f"feature_cache_gb, records_path, {', '.join(BACKBONE_KWARGS)}, pruner_<setting>")
        if pretrained is not None and path is not None and str(pretrained) != str(path):
            raise ValueError(f"pretrained={pretrained!r} and path={path!r} disagree; pretrained is an alias of path: "
                             "give one")
        backbone, path = _backbone_and_path(backbone, path if path is not None else pretrained)
        self.frames = _integer("frames", frames, 1)
        self.max_new_tokens = _integer("max_new_tokens", max_new_tokens, 1) if max_new_tokens is not None else None
        self.seed = _integer("seed", seed, 0)
        _validate_backbone_kwargs(backbone_kwargs)
        _check_settings(pruner, settings)
        if feature_cache is not None and not isinstance(feature_cache, FeatureCache):
            feature_cache = FeatureCache(str(feature_cache), max_gb=float(feature_cache_gb))
        if combination is None:  # resolved (and so validated) before any weights load
            name = backbone if isinstance(backbone, str) else backbone.name
            combination = resolve_combination(name, pruner, stop, ratio, mu_s=mu_s, mu_t=mu_t, gamma=gamma,
                                              seed=self.seed, settings=settings, path=path)
        self.combination = combination
        self.pruner = combination.pruner
        self.feature_cache = feature_cache
        # -- the launch: one process per device (torchrun / accelerate launch) --------------------------------
        here = parallel.world()
        self._rank, self._world_size = here.rank, here.size
        if here.distributed:
            self.accelerator = parallel.accelerator()
            backbone_kwargs["device"] = parallel.rank_device(backbone_kwargs.get("device"))
        self.backbone = (load_backbone(backbone, path=path, **backbone_kwargs) if isinstance(backbone, str)
                         else backbone)
        self._device = self.backbone.device
        self.records: list[dict[str, Any]] = []
        self._requests: Counter = Counter()
        # lmms-eval names a model instance by ``model.config._name_or_path`` in its results JSON
        self.config = SimpleNamespace(_name_or_path=f"sinktop({self.model_args})")

    @property
    def device(self):
        return self._device

    @property
    def model_args(self) -> str:
        """The resolved combination as ``--model_args`` would spell it (recorded in results JSON)."""
        combo = self.combination.describe()
        parts = {"backbone": combo["backbone"], "pruner": combo["pruner"], "stop": combo["stop"],
                 "ratio": combo["ratio"], "mu_s": combo["mu_s"], "mu_t": combo["mu_t"], "gamma": combo["gamma"],
                 **{f"pruner_{k}": v for k, v in sorted(combo["pruner_settings"].items())},
                 "frames": self.frames, "max_new_tokens": self.max_new_tokens, "seed": self.seed,
                 "checkpoint": combo["checkpoint"], "dtype": str(self.backbone.dtype).removeprefix("torch.")}
        return ",".join(f"{k}={v}" for k, v in parts.items() if v is not None)

    def _open_records(self, records_path: str | None) -> None:
        """Resume support: generations already in any rank's records file are reused; new ones are appended
        to this rank's file.

        The files belong to one combination (the runner keys run directories by it), so a request with the
        same task, doc, prompt, video window and decoding settings has the same answer, whichever rank (and
        however many ranks) produced it.
        """
        base = Path(records_path) if records_path else None
        self.records_path = None
        self._finished: dict[str, dict[str, Any]] = {}
        if base is None:
            return
        self.records_path = (base if self._world_size == 1
                             else base.with_name(f"{base.stem}.rank{self._rank}{base.suffix}"))
        others = sorted(base.parent.glob(f"{base.stem}.rank*{base.suffix}")) if base.parent.exists() else []
        for source in dict.fromkeys([base, *others, self.records_path]):
            if source.exists():
                self._read_records(source, repair=source == self.records_path)

    def _read_records(self, source: Path, repair: bool) -> None:
        text = source.read_text(encoding="utf-8")
        kept = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash (or being written by another rank)
                continue
            if "key" in record:
                self._finished[record["key"]] = record
                kept.append(line)
        if repair and (len(kept) != len(text.splitlines()) or (text and not text.endswith("\n"))):
            # drop this rank's broken tail so new records start on a line of their own
            atomic_write_text(source, "".join(line + "\n" for line in kept))

    def describe(self) -> dict[str, Any]:
        """The settings that identify this combination in results files."""
        return {**self.combination.describe(), "frames": self.frames}

    def all_records(self) -> list[dict[str, Any]]:
        """Every rank's records (a collective under a multi-process launch: every rank must call it)."""
        return [record for rank_records in parallel.all_gather(self.records) for record in rank_records]

    # -- lmms-eval protocol -----------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        answers = []
        usage = []
        label = self.combination.label
        for request in tqdm(requests, desc=f"Generating ({label})", unit="req", disable=self.rank != 0):
            if (request.metadata or {}).get("__padding_only__"):
                answers.append(GenerationResult(text=""))  # lmms-eval evens out shards; the answer is discarded
                continue
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            try:
                record = self._answer(context, dict(gen_kwargs or {}), doc_to_visual, doc_id, task, split)
            except Exception as err:  # noqa: BLE001 - see SinktopModelError
                raise SinktopModelError(f"sinktop model failed on task {task!r} doc {doc_id}"
                                        f"{f' (rank {self.rank})' if self.world_size > 1 else ''}: {err}") from err
            counts = dict(input_tokens=record.get("prompt_tokens"), output_tokens=record.get("new_tokens"))
            answers.append(GenerationResult(text=record["prediction"], token_counts=SampleUsage(
                **counts, cost={k: record.get(k, False if k == "resumed" else None) for k in SAMPLE_COST_FIELDS})))
            if not record.get("resumed"):
                usage.append({"task_name": task, **counts})
        self._report_usage(usage)
        return answers

    def _report_usage(self, usage: list[dict[str, Any]]) -> None:
        """Tokens this run processed, into lmms-eval's usage summary (kept by rank 0's process, so every rank's
        share is gathered there). Resumed answers were paid for by an earlier run and are not counted."""
        from lmms_eval.models.model_utils.usage_metrics import log_usage

        shares = parallel.all_gather(usage) if self.world_size > 1 else [usage]
        if self.rank != 0:
            return
        for share in shares:
            for entry in share:
                log_usage(model_name=f"sinktop:{self.combination.backbone}", task_name=entry["task_name"],
                          input_tokens=entry["input_tokens"] or 0, output_tokens=entry["output_tokens"] or 0)

    def _answer(self, context: str, gen_kwargs: dict, doc_to_visual, doc_id: int, task: str, split: str) -> dict:
        doc = self.task_dict[task][split][doc_id]
        video, start, end = parse_visual(doc_to_visual(doc))
        prompt = context.replace("<image>", "").strip()
        caps = [c for c in (self.max_new_tokens, self.backbone.generation_cap) if c]
        limit, until, sampling = decoding_of(gen_kwargs, min(caps) if caps else None, self.seed)
        identity = [task, split, doc_id, prompt, video, start, end, limit, gen_kwargs.get("until")]
        if sampling is not None:
            identity.append([sampling.temperature, sampling.top_p])
        repeat = self._requests[json.dumps(identity, default=str)]  # lmms-eval's `repeats` ask the same again
        self._requests[json.dumps(identity, default=str)] += 1
        if repeat:
            identity.append(repeat)
        key = hashlib.sha1(json.dumps(identity, default=str).encode()).hexdigest()
        if key in self._finished:
            record = {**self._finished[key], "resumed": True}
        else:
            if sampling is not None:  # reproducible per request, whichever rank or order it runs in
                sampling = Sampling(sampling.temperature, sampling.top_p, seed=int(key[:8], 16) ^ self.seed)
            out = self.backbone.generate(video=video, prompt=prompt, pruner=self.pruner, frames=self.frames,
                                         max_new_tokens=limit, start=start, end=end, stop_strings=until,
                                         sampling=sampling, feature_cache=self.feature_cache)
            record = {"key": key, "task": task, "split": split, "doc_id": doc_id, "video": video, "start": start,
                      "end": end, "prediction": truncate_at_stop(out.text, until), **out.stats}
            self._append(record)
            self._finished[key] = record
        self.records.append(record)
        return record

    def _append(self, record: dict[str, Any]) -> None:
        if self.records_path is None:
            return
        self.records_path.parent.mkdir(parents=True, exist_ok=True)
        with self.records_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()

    def loglikelihood(self, requests: list[Instance]):
        raise SinktopModelError("sinktop generates answers; loglikelihood tasks are not supported (use generate_until tasks)")

    def generate_until_multi_round(self, requests: list[Instance]):
        raise SinktopModelError("sinktop does not support multi-round generation tasks")


def _backbone_and_path(backbone: Any, checkpoint: Any) -> tuple[Any, str | None]:
    """``pretrained=`` / ``path=`` as lmms-eval users write them: a hub id or registered name picks the backbone,
    a directory is the checkpoint of ``backbone`` (or, with no backbone given, a backbone of its own)."""
    from ..backbones import BACKBONES

    if checkpoint is None:
        return (backbone if backbone is not None else "tiny_qwen25vl"), None
    checkpoint = str(checkpoint)
    hub_ids = {spec.checkpoint: name for name, spec in BACKBONES.items() if spec.checkpoint}
    if checkpoint in BACKBONES or checkpoint in hub_ids:  # a name, not a directory
        named = hub_ids.get(checkpoint, checkpoint)
        if backbone is not None and (backbone if isinstance(backbone, str) else backbone.name) != named:
            raise ValueError(f"pretrained={checkpoint!r} is backbone {named} but backbone={backbone!r}; give one")
        return (backbone if backbone is not None else named), None
    if backbone is None:
        return checkpoint, None  # a checkpoint directory: its config.json picks the adapter
    return backbone, checkpoint
