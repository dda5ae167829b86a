"""Backbone adapters: real HF video LLMs whose visual tokens any `sinktop_eval.pruning` pruner can prune.

    from sinktop_eval.backbones import load_backbone
    from sinktop_eval.pruning import build_pruner
    bb = load_backbone("tiny_qwen25vl")            # or qwen25vl, llava_ov, llava_video, tiny_*, real_shape_*, a dir
    out = bb.generate(video="clip.mp4", prompt="Is there a dog?",
                      pruner=build_pruner("holitom", ratio=0.1, mu_s=0.04, mu_t=0.07), frames=32, max_new_tokens=16)
    out.text; out.stats["dense_visual_tokens"]; out.stats["kept_visual_tokens"]

This layer knows transformers internals and nothing about lmms-eval.
"""
from .base import Backbone, Generation, Prepared, Sampling, VisionTokens
from .errors import (
    BackboneError,
    CheckpointUnavailableError,
    UnknownBackboneError,
    UnsupportedCheckpointError,
    VideoDecodeError,
    VideoNotFoundError,
)
from .flops import prefill_flops
from .llava_ov import LlavaOVBackbone
from .llava_video import LlavaVideoBackbone
from .qwen25vl import Qwen25VLBackbone
from .registry import BACKBONES, load_backbone
from .tiny import tiny_checkpoint

__all__ = ["BACKBONES", "Backbone", "BackboneError", "CheckpointUnavailableError", "Generation", "LlavaOVBackbone",
           "LlavaVideoBackbone", "Prepared", "Qwen25VLBackbone", "Sampling", "UnknownBackboneError",
           "UnsupportedCheckpointError", "VideoDecodeError", "VideoNotFoundError", "VisionTokens", "load_backbone",
           "prefill_flops", "tiny_checkpoint"]
