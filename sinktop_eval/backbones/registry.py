"""Backbones by name: the one place that maps a config string (or a checkpoint directory) to an adapter.

    load_backbone("qwen25vl")                          # Qwen/Qwen2.5-VL-7B-Instruct (HF cache or hub)
    load_backbone("qwen25vl", path="/ckpt/qwen")       # the same adapter on a local checkpoint
    load_backbone("/ckpt/some-llava-ov")               # architecture read from its config.json
    load_backbone("tiny_llava_ov")                     # random-weight twin, built offline on first use
    load_backbone("real_shape_llava_ov", layers=2)     # the 7B's shapes, random weights, 2 decoder layers
    load_backbone("qwen25vl", rope_text_after_video="hf")   # an adapter setting (see each adapter's SETTINGS)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Backbone
from .errors import UnknownBackboneError, UnsupportedCheckpointError
from .llava_ov import LlavaOVBackbone
from .llava_video import LAYOUT_KEYS, LlavaVideoBackbone
from .qwen25vl import Qwen25VLBackbone
from .tiny import tiny_checkpoint

# config.json model_type -> the adapter for a bare checkpoint directory (LLaVA-Video checkpoints are
# llava_onevision ones; a directory whose config carries LLaVA-NeXT's video layout keys gets that adapter)
ADAPTERS: dict[str, type[Backbone]] = {cls.model_type: cls for cls in (Qwen25VLBackbone, LlavaOVBackbone)}


@dataclass(frozen=True)
class BackboneSpec:
    adapter: type[Backbone]
    checkpoint: str | None  # hub id of the real model; None for a tiny twin (built locally)


BACKBONES: dict[str, BackboneSpec] = {
    "qwen25vl": BackboneSpec(Qwen25VLBackbone, "Qwen/Qwen2.5-VL-7B-Instruct"),
    "llava_ov": BackboneSpec(LlavaOVBackbone, "llava-hf/llava-onevision-qwen2-7b-ov-hf"),
    # LLaVA-Video-7B-Qwen2 converted to HF (LLaVA-OneVision) format; its config lacks the video layout
    # keys, which the adapter then asks for (see llava_video.py)
    "llava_video": BackboneSpec(LlavaVideoBackbone, "Isotr0py/LLaVA-Video-7B-Qwen2-hf"),
    "tiny_qwen25vl": BackboneSpec(Qwen25VLBackbone, None),
    "tiny_llava_ov": BackboneSpec(LlavaOVBackbone, None),
    "tiny_llava_video": BackboneSpec(LlavaVideoBackbone, None),
    "real_shape_qwen25vl": BackboneSpec(Qwen25VLBackbone, None),
    "real_shape_llava_ov": BackboneSpec(LlavaOVBackbone, None),
    "real_shape_llava_video": BackboneSpec(LlavaVideoBackbone, None),
}
TWIN_DEPTH_OPTIONS = ("layers", "vision_layers")


def load_backbone(name: str, dtype: Any = None, device: Any = None, attn_implementation: str | None = None,
                  path: str | Path | None = None, seed: int = 0, **settings: Any) -> Backbone:
    """Load a backbone adapter: a registered name, a hub id of a registered model, or a checkpoint dir.

    ``path`` overrides where a registered name loads from (e.g. a local copy of the 7B checkpoint).
    ``dtype`` / ``device`` default to bfloat16 on cuda, float32 on cpu; ``attn_implementation`` to sdpa.
    ``seed`` only matters for the twins (their random weights). ``settings``: ``layers`` /
    ``vision_layers`` for the real_shape_* twins (default 2 / 2; None = full depth), and the adapter's
    own ``SETTINGS`` (Qwen2.5-VL: ``rope_text_after_video``; LLaVA-Video: the three video layout keys).
    """
    name = str(name)
    depths = {k: settings.pop(k) for k in TWIN_DEPTH_OPTIONS if k in settings}
    if depths and not name.startswith("real_shape_"):
        raise ValueError(f"{', '.join(depths)} only apply to the real_shape_* twins, not backbone={name!r}")
    kwargs = {"dtype": dtype, "device": device, "attn_implementation": attn_implementation or "sdpa", **settings}
    by_hub_id = {spec.checkpoint: key for key, spec in BACKBONES.items() if spec.checkpoint}
    if name in BACKBONES or name in by_hub_id:
        key = by_hub_id.get(name, name)
        spec = BACKBONES[key]
        if path is not None:
            adapter = adapter_for(path)
            if adapter.model_type != spec.adapter.model_type:
                raise UnsupportedCheckpointError(
                    f"path={path} holds a {adapter.model_type} checkpoint but backbone={key} needs "
                    f"{spec.adapter.model_type}; pick the matching backbone ({adapter.family}) or path")
            source = str(path)
        else:
            source = spec.checkpoint or str(tiny_checkpoint(key, seed, **depths))
        return spec.adapter.from_pretrained(source, name=key, **kwargs)
    if path is not None:
        raise UnknownBackboneError(f"backbone={name!r} is unknown; allowed with path=: {', '.join(BACKBONES)}")
    if Path(name).is_dir():
        adapter = adapter_for(name)
        return adapter.from_pretrained(name, name=adapter.family, **kwargs)
    raise UnknownBackboneError(f"backbone={name!r} is unknown; allowed: {', '.join(BACKBONES)}, "
                               "or a local checkpoint directory with a config.json")


def adapter_for(path: str | Path) -> type[Backbone]:
    """The adapter class for a checkpoint directory, from the ``model_type`` in its config.json."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise UnsupportedCheckpointError(f"checkpoint directory {path} has no config.json; point path= at a "
                                         "Hugging Face checkpoint directory")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UnsupportedCheckpointError(f"cannot read {config_file}: {err}") from None
    model_type = config.get("model_type")
    if model_type not in ADAPTERS:
        raise UnsupportedCheckpointError(f"checkpoint {path} has model_type={model_type!r}; supported: "
                                         f"{', '.join(ADAPTERS)} (Qwen2.5-VL, LLaVA-OneVision / LLaVA-Video)")
    if model_type == LlavaVideoBackbone.model_type and any(key in config for key in LAYOUT_KEYS):
        return LlavaVideoBackbone
    return ADAPTERS[model_type]


@dataclass(frozen=True)
class BackboneInfo:
    """What results and tables need to know about a backbone, without loading it."""

    family: str  # the adapter's family (qwen25vl, llava_ov, llava_video): paper tables are keyed by it
    weights: str  # "pretrained", or "random" for an offline twin (a pipeline check, not a measurement)
    checkpoint: str  # what the weights are: the hub id, the local directory, or the twin's name
    mu_family: str = ""  # whose published SToP values apply ("" = its own family); mu_note says why
    mu_note: str = ""


def backbone_info(name: str, path: str | Path | None = None) -> BackboneInfo:
    """Family and kind of weights of a registered name or a checkpoint directory (reads config.json only)."""
    by_hub_id = {spec.checkpoint: key for key, spec in BACKBONES.items() if spec.checkpoint}
    spec = BACKBONES.get(by_hub_id.get(name, name))
    if spec is None and path is None and Path(name).is_dir():
        return _info(adapter_for(name), "pretrained", str(name))
    if spec is None:
        raise UnknownBackboneError(f"backbone={name!r} is unknown; allowed: {', '.join(BACKBONES)}, "
                                   "or a local checkpoint directory with a config.json")
    if path is not None:
        return _info(spec.adapter, "pretrained", str(path))
    if spec.checkpoint is None:
        return _info(spec.adapter, "random", f"{by_hub_id.get(name, name)} (offline twin, random weights)")
    return _info(spec.adapter, "pretrained", spec.checkpoint)


def _info(adapter: type[Backbone], weights: str, checkpoint: str) -> BackboneInfo:
    return BackboneInfo(adapter.family, weights, checkpoint, adapter.mu_family or adapter.family, adapter.mu_note)


def backbone_settings(name: str) -> dict[str, Any]:
    """The keyword settings ``load_backbone(name, ...)`` takes beyond dtype/device/path, with their defaults:
    the adapter's ``SETTINGS`` and, for the real_shape_* twins, their depth (``layers``, ``vision_layers``)."""
    from .real_shape import DEFAULT_LAYERS, DEFAULT_VISION_LAYERS

    spec = BACKBONES[name]
    depth = {"layers": DEFAULT_LAYERS, "vision_layers": DEFAULT_VISION_LAYERS} if name.startswith("real_shape_") else {}
    return {**spec.adapter.SETTINGS, **depth}
