"""`SinktopModel`: a backbone adapter plus a pruner, speaking lmms-eval's simple-model protocol.

    lmms-eval eval --model sinktop \
        --model_args backbone=tiny_qwen25vl,pruner=holitom,stop=on,ratio=0.1 --tasks ... --include_path tasks
    simple_evaluate(model=SinktopModel(backbone="tiny_qwen25vl", pruner="holitom"), tasks=[...], ...)

Every generation's cost accounting (visual tokens dense/kept, prefill FLOPs, timings, memory) is kept in
``records`` so the runner can write it next to each prediction.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from ..backbones import load_backbone
from ..combination import Combination, resolve_combination
from ..files import atomic_write_text

log = logging.getLogger(__name__)

BACKBONE_KWARGS = ("dtype", "device", "attn_implementation")


class SinktopModelError(SystemExit):
    """A failure inside the model.

    A ``SystemExit`` on purpose: the lmms-eval CLI catches every ``Exception`` and still exits 0, which
    would let a broken sweep look finished. This one passes through it and exits 1 with its message.
    """


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


def truncate_at_stop(text: str, until: Any) -> str:
    """Cut generated text at the first stop string the task asked for."""
    stops = [until] if isinstance(until, str) else list(until or [])
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text


class SinktopModel(lmms):
    """One (backbone, pruner, SToP, ratio) combination as an lmms-eval simple model (batch size 1)."""

    is_simple = True

    def __init__(self, backbone: Any = "tiny_qwen25vl", pruner: str = "holitom", stop: Any = "on",
                 ratio: float = 0.1, mu_s: float | None = None, mu_t: float | None = None, gamma: float | None = None,
                 frames: int = 32, max_new_tokens: int | None = None, seed: int = 0, batch_size: Any = 1,
                 records_path: str | None = None, path: str | None = None, combination: Combination | None = None,
                 **kwargs: Any) -> None:
        """Either the combination's parts (as lmms-eval's ``--model_args`` give them: ``backbone`` is a name)
        or a ``combination`` already resolved by the runner with a loaded ``backbone`` adapter."""
        super().__init__()
        try:
            self._setup(backbone, combination, pruner, stop, ratio, mu_s, mu_t, gamma, seed, path, frames,
                        max_new_tokens, batch_size, kwargs)
            self._open_records(records_path)
        except SinktopModelError:
            raise
        except Exception as err:  # noqa: BLE001 - re-raised so the CLI cannot exit 0
            raise SinktopModelError(f"sinktop model setup failed: {err}") from err

    def _setup(self, backbone, combination, pruner, stop, ratio, mu_s, mu_t, gamma, seed, path, frames,
               max_new_tokens, batch_size, kwargs) -> None:
        if batch_size not in (None, 1, "1", "auto"):
            raise ValueError(f"batch_size={batch_size!r} is unsupported; allowed: 1 (one video per forward, as the paper)")
        kwargs.pop("max_batch_size", None)
        backbone_kwargs = {k: kwargs.pop(k) for k in BACKBONE_KWARGS if kwargs.get(k) is not None}
        kwargs.pop("device", None)
        settings = {k[len("pruner_"):]: kwargs.pop(k) for k in list(kwargs) if k.startswith("pruner_")}
        if kwargs:
            raise ValueError(f"unknown model_args {sorted(kwargs)}; allowed: backbone, pruner, stop, ratio, mu_s, mu_t, "
                             f"gamma, frames, max_new_tokens, seed, path, {', '.join(BACKBONE_KWARGS)}, pruner_<setting>")
        if combination is None:  # resolved (and so validated) before any weights load
            name = backbone if isinstance(backbone, str) else backbone.name
            combination = resolve_combination(name, pruner, stop, ratio, mu_s=mu_s, mu_t=mu_t, gamma=gamma,
                                              seed=int(seed), settings=settings, path=path)
        self.combination = combination
        self.pruner = combination.pruner
        self.backbone = (load_backbone(backbone, path=path, **backbone_kwargs) if isinstance(backbone, str)
                         else backbone)
        self.frames = int(frames)
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        self.records: list[dict[str, Any]] = []

    def _open_records(self, records_path: str | None) -> None:
        """Resume support: generations already in ``records_path`` are reused, new ones appended.

        The file belongs to one combination (the runner keys run directories by it), so a request with
        the same task, doc, prompt, video window and generation limits has the same answer.
        """
        self.records_path = Path(records_path) if records_path else None
        self._finished: dict[str, dict[str, Any]] = {}
        if self.records_path and self.records_path.exists():
            text = self.records_path.read_text(encoding="utf-8")
            kept = []
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash: that one is simply redone
                    continue
                if "key" in record:
                    self._finished[record["key"]] = record
                    kept.append(line)
            if len(kept) != len(text.splitlines()) or (text and not text.endswith("\n")):
                # drop the broken tail so new records start on a line of their own
                atomic_write_text(self.records_path, "".join(line + "\n" for line in kept))

    def describe(self) -> dict[str, Any]:
        """The settings that identify this combination in results files."""
        return {**self.combination.describe(), "frames": self.frames}

    # -- lmms-eval protocol -----------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers = []
        label = self.combination.label
        for request in tqdm(requests, desc=f"Generating ({label})", unit="req"):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            try:
                answers.append(self._answer(context, dict(gen_kwargs or {}), doc_to_visual, doc_id, task, split))
            except Exception as err:  # noqa: BLE001 - see SinktopModelError
                raise SinktopModelError(f"sinktop model failed on task {task!r} doc {doc_id}: {err}") from err
        return answers

    def _answer(self, context: str, gen_kwargs: dict, doc_to_visual, doc_id: int, task: str, split: str) -> str:
        doc = self.task_dict[task][split][doc_id]
        video, start, end = parse_visual(doc_to_visual(doc))
        limit = int(gen_kwargs.get("max_new_tokens") or 128)
        if self.max_new_tokens:
            limit = min(limit, self.max_new_tokens)
        prompt = context.replace("<image>", "").strip()
        key = hashlib.sha1(json.dumps([task, split, doc_id, prompt, video, start, end, limit,
                                       gen_kwargs.get("until")], default=str).encode()).hexdigest()
        if key in self._finished:
            record = {**self._finished[key], "resumed": True}
        else:
            out = self.backbone.generate(video=video, prompt=prompt, pruner=self.pruner, frames=self.frames,
                                         max_new_tokens=limit, start=start, end=end)
            record = {"key": key, "task": task, "split": split, "doc_id": doc_id, "video": video, "start": start,
                      "end": end, "prediction": truncate_at_stop(out.text, gen_kwargs.get("until")), **out.stats}
            self._append(record)
        self.records.append(record)
        return record["prediction"]

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
