"""LLaVA-Video adapter: LLaVA-Video-7B-Qwen2 in HF format, loaded by ``LlavaOnevisionForConditionalGeneration``.

What transformers has. LLaVA-Video-7B-Qwen2 has LLaVA-OneVision's architecture (SigLIP-so400m at 384 px,
27x27 patches, 2-layer GELU projector, Qwen2-7B), so the HF-format conversion
(``Isotr0py/LLaVA-Video-7B-Qwen2-hf``, made with transformers' LLaVA-OneVision converter) is a
``model_type: llava_onevision`` checkpoint, and transformers has no LLaVA-Video class. The converter
builds the config from the text and vision configs only: the original LLaVA-NeXT config's video keys
(``mm_spatial_pool_mode``, ``mm_spatial_pool_stride``, ``mm_newline_position``) are not carried over.
``LlavaOnevisionForConditionalGeneration`` itself always pools video frames bilinearly to
ceil(27/2) = 14 per side (``apply_pooling``) and appends ONE ``image_newline`` after the whole video,
and its processor expands ``<video>`` to frames*196 + 1 placeholders.

What the original code does (LLaVA-NeXT ``get_2dPool`` and the video branch of
``prepare_inputs_labels_for_multimodal``), per the checkpoint's config:
- pooling after the projector, per frame on the 27x27 grid, with ``mm_spatial_pool_stride`` s:
  ``average`` / ``max`` -> floor(27/s) per side (13x13 = 169 at s = 2); ``bilinear`` -> ceil(27/s)
  (14x14 = 196);
- newlines (``image_newline``) by ``mm_newline_position``: ``grid`` one after every row of every frame
  (13 or 14 per frame), ``frame`` one after every frame, ``one_token`` one after the whole video (the
  HF layout), ``no_token`` none.
Tokens per frame therefore differ between loaders (169 vs 196, with or without 13-14 newlines), and
every budget depends on it. This adapter never assumes them: it reads the three keys from the
checkpoint's config.json (transformers keeps unknown config keys as attributes) or from explicit
settings of the same names, and refuses to run with neither (one line naming the fix).

How the layout is produced with the HF class. ``encode`` runs HF's ``get_video_features`` with a hook
on the projector, pools the projector's output (F, 729, D) with the configured operator (HF's own
``apply_pooling`` when that is bilinear with stride 2) and pools the importance A and keys K with the
same operator. ``prepare`` re-expands the processor's ``<video>`` run to the layout's length;
``splice`` lays the kept tokens out with the configured newlines and hands the sequence to the HF
forward through ``mm_encoder_outputs`` (which it scatters into the placeholders), with 1-D positions
0..L'-1 as for LLaVA-OV.

Newlines after pruning: kept tokens stay in the pruner's (LLM) order; each frame row (``grid``) or
frame (``frame``) that keeps at least one token keeps one newline, placed right after its last kept
token, and a row (frame) with none loses its newline (as HoliTom's LLaVA-Video path does). With every
token kept, or any pruner that keeps index order, this is exactly the dense layout. ``one_token``
keeps its one newline. Results count visual and newline tokens separately (``kept_visual_tokens``,
``newline_tokens``).

SToP mu values: the SToP release keys its defaults by pruner only (with a Qwen override), so
LLaVA-Video runs with LLaVA-OV's values; ``mu_family = "llava_ov"`` says so. Frames: the caller's
(the runner's default is the paper's 32 for every backbone; LLaVA-Video's own card uses 64).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.nn import functional

from ..pruning import PruneOutput
from .base import Prepared, VisionTokens
from .errors import UnsupportedCheckpointError
from .llava_ov import LlavaOVBackbone

POOL_MODES = ("average", "max", "bilinear")
NEWLINE_POSITIONS = ("grid", "frame", "one_token", "no_token")
LAYOUT_KEYS = ("mm_spatial_pool_mode", "mm_spatial_pool_stride", "mm_newline_position")


@dataclass(frozen=True)
class VideoLayout:
    """How LLaVA-Video turns a frame's patch grid into LLM tokens, and where its newlines go."""

    pool_mode: str  # average | max | bilinear
    stride: int
    newline: str  # grid | frame | one_token | no_token
    source: str  # where the three values came from, e.g. "config.json" or "setting"

    def pooled_side(self, side: int) -> int:
        """Tokens per side after pooling a side x side patch grid."""
        return math.ceil(side / self.stride) if self.pool_mode == "bilinear" else side // self.stride

    def sequence_length(self, frames: int, h: int, w: int) -> int:
        """Placeholders of a dense video: tokens plus newlines."""
        newlines = {"grid": frames * h, "frame": frames, "one_token": 1, "no_token": 0}[self.newline]
        return frames * h * w + newlines

    def arrange(self, tokens: Tensor, index: Tensor, grid: tuple[int, int], newline: Tensor) -> tuple[Tensor, Tensor]:
        """The LLM's video sequence for kept ``tokens`` (k, D) standing at flat positions ``index`` (k,).

        Returns (sequence (k + m, D), is_newline (k + m,) bool). Tokens keep the given (LLM) order.
        ``grid`` / ``frame``: one newline per frame row / frame that keeps a token, right after its last
        kept token in that order (in index order: after every row / frame, as the dense layout).
        """
        k = int(index.numel())
        device = tokens.device
        newline = newline.to(device, tokens.dtype)
        if self.newline in ("no_token", "one_token") or k == 0:
            sequence = torch.cat([tokens, newline[None]]) if self.newline == "one_token" else tokens
            flags = torch.zeros(sequence.shape[0], dtype=torch.bool, device=device)
            flags[k:] = True
            return sequence, flags
        h, w = grid
        group = index.to(device) // (w if self.newline == "grid" else h * w)  # (k,) row or frame of each token
        order = torch.arange(k, device=device)
        last = torch.full((int(group.max()) + 1,), -1, dtype=torch.long, device=device)
        last = last.scatter_reduce(0, group, order, reduce="amax")  # last position of each group in the order
        closes = last[group] == order  # (k,) token i is its group's last one: a newline follows it
        before = torch.cumsum(closes.long(), 0) - closes.long()  # newlines placed before token i
        token_at = order + before  # (k,)
        sequence = tokens.new_empty(k + int(closes.sum()), tokens.shape[-1])
        flags = torch.zeros(sequence.shape[0], dtype=torch.bool, device=device)
        sequence[token_at] = tokens
        newline_at = token_at[closes] + 1  # (m,)
        sequence[newline_at] = newline
        flags[newline_at] = True
        return sequence, flags


class LlavaVideoBackbone(LlavaOVBackbone):
    family = "llava_video"
    model_type = "llava_onevision"  # the HF conversion is a LLaVA-OneVision checkpoint
    hf_class = "LlavaOnevisionForConditionalGeneration"
    mu_family = "llava_ov"
    mu_note = "LLaVA-OV values: the SToP release has no LLaVA-Video-specific mu (defaults keyed by pruner only)"
    # None = read from the checkpoint's config.json (the LLaVA-NeXT key of the same name)
    SETTINGS: ClassVar[dict[str, Any]] = dict.fromkeys(LAYOUT_KEYS)

    def __init__(self, model, processor, name=None, checkpoint=None, **settings) -> None:
        super().__init__(model, processor, name=name, checkpoint=checkpoint, **settings)
        self.layout = self._read_layout()

    def _read_layout(self) -> VideoLayout:
        config = self.model.config
        values, sources = {}, set()
        for key in LAYOUT_KEYS:
            if self.settings[key] is not None:
                values[key], source = self.settings[key], "setting"
            else:
                values[key], source = getattr(config, key, None), "config.json"
            if values[key] is None:
                raise UnsupportedCheckpointError(
                    f"checkpoint {self.checkpoint or '?'} has no {key} in its config.json (the HF conversion drops "
                    "LLaVA-NeXT's video layout keys); copy mm_spatial_pool_mode, mm_spatial_pool_stride and "
                    "mm_newline_position from the original lmms-lab/LLaVA-Video-7B-Qwen2 config.json into it, "
                    "or pass them as backbone settings (e.g. mm_spatial_pool_mode=average)")
            sources.add(source)
        mode, newline = str(values["mm_spatial_pool_mode"]), str(values["mm_newline_position"])
        stride = values["mm_spatial_pool_stride"]
        if mode not in POOL_MODES:
            raise ValueError(f"mm_spatial_pool_mode={mode!r} is unsupported; allowed: {', '.join(POOL_MODES)}")
        if newline not in NEWLINE_POSITIONS:
            raise ValueError(f"mm_newline_position={newline!r} is unsupported; allowed: {', '.join(NEWLINE_POSITIONS)}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"mm_spatial_pool_stride={stride!r} is invalid; allowed: an integer >= 1")
        return VideoLayout(mode, stride, newline, "+".join(sorted(sources)))

    def resolved_settings(self) -> dict[str, Any]:
        layout = self.layout
        return {"mm_spatial_pool_mode": layout.pool_mode, "mm_spatial_pool_stride": layout.stride,
                "mm_newline_position": layout.newline, "layout_source": layout.source}

    @property
    def patch_side(self) -> int:
        vision = self.model.config.vision_config
        return int(vision.image_size // vision.patch_size)

    @property
    def token_grid(self) -> tuple[int, int]:
        """(h, w) tokens per frame after pooling."""
        side = self.layout.pooled_side(self.patch_side)
        return side, side

    # -- pipeline ----------------------------------------------------------------------------------------
    def prepare(self, video, prompt, frames: int = 32, start=None, end=None) -> Prepared:
        """As LLaVA-OV, then the ``<video>`` run re-expanded to this layout's length (the HF processor
        always writes frames*196 + 1 placeholders)."""
        prepared = super().prepare(video, prompt, frames, start, end)
        inputs = prepared.inputs
        input_ids = inputs["input_ids"]  # (1, L)
        begin, finish = self.video_span(input_ids)
        count = self.layout.sequence_length(int(inputs["pixel_values_videos"].shape[1]), *self.token_grid)
        placeholders = torch.full((1, count), self.video_token_id, dtype=input_ids.dtype, device=input_ids.device)
        inputs["input_ids"] = torch.cat([input_ids[:, :begin], placeholders, input_ids[:, finish:]], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"], dtype=inputs["attention_mask"].dtype)
        return prepared

    @torch.no_grad()
    def encode(self, prepared: Prepared) -> VisionTokens:
        pixels = prepared.inputs["pixel_values_videos"]  # (1, F, 3, H, W)
        frames = int(pixels.shape[1])
        _, captured = self._run_tower(pixels)
        features = self.pool(captured["projected"])  # (F, P, D) -> (F, n, D)
        attn, keys = self._importance(captured, frames)  # (F, P), (F, P, d)
        attn = self.pool(attn.unsqueeze(-1)).squeeze(-1)  # (F, n)
        keys = self.pool(keys)  # (F, n, d)
        # extra holds tensors only (the feature cache stores it); the layout is this adapter's own attribute
        return VisionTokens(features, attn, keys, self.token_grid, None, {"newline": self.model.model.image_newline.detach()})

    def pool(self, x: Tensor) -> Tensor:
        """(F, P, C) on the side x side patch grid -> (F, n, C) with the configured operator and stride."""
        layout, side = self.layout, self.patch_side
        if layout.pool_mode == "bilinear" and layout.stride == 2:
            return self.model.model.apply_pooling(x)  # transformers' own operator for this case
        frames, _, channels = x.shape
        grid = x.view(frames, side, side, channels).permute(0, 3, 1, 2)  # (F, C, side, side)
        if layout.pool_mode == "bilinear":
            out_side = layout.pooled_side(side)
            pooled = functional.interpolate(grid, size=[out_side, out_side], mode="bilinear")
        elif layout.pool_mode == "average":
            pooled = functional.avg_pool2d(grid, layout.stride)
        else:
            pooled = functional.max_pool2d(grid, layout.stride)
        return pooled.permute(0, 2, 3, 1).reshape(frames, -1, channels)  # (F, n, C)

    def kept_positions(self, prepared: Prepared, pruned: PruneOutput) -> Tensor:  # pragma: no cover - guard
        raise NotImplementedError("LLaVA-Video's pruned newlines have no single dense position; see splice")

    def splice(self, prepared: Prepared, vision: VisionTokens, pruned: PruneOutput) -> dict[str, Any]:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        inputs = prepared.inputs
        input_ids = inputs["input_ids"]
        begin, finish = self.video_span(input_ids)
        frames = int(vision.features.shape[0])
        expected = self.layout.sequence_length(frames, *vision.grid)
        if finish - begin != expected:
            raise ValueError(f"{finish - begin} video placeholders but the {self.layout.newline} layout of "
                             f"{vision.num_tokens} visual tokens needs {expected}")
        tokens = pruned.tokens.to(self.device, self.dtype)  # (k, D)
        video, _ = self.layout.arrange(tokens, pruned.index, vision.grid, vision.extra["newline"])  # (k + m, D)
        placeholders = torch.full((1, video.shape[0]), self.video_token_id, dtype=input_ids.dtype,
                                  device=input_ids.device)
        ids = torch.cat([input_ids[:, :begin], placeholders, input_ids[:, finish:]], dim=1)  # (1, L')
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids, dtype=inputs["attention_mask"].dtype),
            "position_ids": torch.arange(ids.shape[1], device=ids.device).view(1, -1),  # (1, L') contiguous
            "mm_encoder_outputs": {"video": BaseModelOutputWithPooling(pooler_output=video[None])},
        }
