"""LLaVA-OneVision adapter (``LlavaOnevisionForConditionalGeneration``, e.g. llava-hf/llava-onevision-qwen2-7b-ov-hf).

Video layout: every frame goes through SigLIP on its own (27x27 patches at 384 px, no CLS), the
features of layer ``vision_feature_layer`` go through the projector, are pooled bilinearly to 14x14
(``apply_pooling``), and ONE ``image_newline`` follows the whole video: F*196+1 ``<video>``
placeholders, plain 1-D RoPE.

Importance A and keys K come from the encoder layer whose output the projector reads, i.e. the layer
producing ``hidden_states[vision_feature_layer]`` (the HF 7B checkpoint keeps 26 of SigLIP-so400m's 27
layers and reads the last one, -1: the penultimate layer of the full tower). Hooks keep that layer's
q/k projections; A is the column mean of softmax(q·kᵀ/√d) over heads and queries, per frame; A and
the head-averaged K are pooled with the model's own ``apply_pooling`` (the same bilinear 2x2 as the
features).

Splicing keeps the image_newline after the kept tokens and numbers the pruned sequence 0..L'-1, as
VisionZip / FastVID / HoliTom do on LLaVA-OV (1-D RoPE over the shorter sequence). Keeping the
unpruned positions instead is not an option with HF ``generate``: it drops an all-ones attention mask
and then reads gaps in 1-D position ids as packed-sequence boundaries (a block-diagonal mask).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ..pruning import PruneOutput
from .base import Backbone, Prepared, VisionTokens
from .capture import attention_received, hooks

log = logging.getLogger(__name__)


def feature_layer_index(vision_feature_layer: Any, num_layers: int) -> int:
    """Index into ``encoder.layers`` of the layer whose output is ``hidden_states[vision_feature_layer]``.

    hidden_states[0] is the embedding output and hidden_states[i] the output of layer i-1, so -1 is the
    last layer, -2 the one before it, and a positive i is layer i-1.
    """
    if isinstance(vision_feature_layer, (list, tuple)):
        raise NotImplementedError(f"vision_feature_layer={vision_feature_layer} (several layers concatenated) "
                                  "has no single attention map; supported: one layer index")
    index = int(vision_feature_layer)
    layer = num_layers + index if index < 0 else index - 1
    if not 0 <= layer < num_layers:
        raise ValueError(f"vision_feature_layer={index} selects no encoder layer of a {num_layers}-layer tower")
    return layer


class LlavaOVBackbone(Backbone):
    family = "llava_ov"
    model_type = "llava_onevision"
    hf_class = "LlavaOnevisionForConditionalGeneration"
    generation_cap = 4096  # the SToP release's LLaVA generator (LLaVA-Video inherits it)

    def __init__(self, model, processor, name=None, checkpoint=None, **settings) -> None:
        super().__init__(model, processor, name=name, checkpoint=checkpoint, **settings)
        self._align_video_normalisation()

    def _align_video_normalisation(self) -> None:
        """Normalise video frames like images, as the checkpoint was trained.

        The video processor class defaults to CLIP mean/std while LLaVA-OV's SigLIP expects 0.5/0.5 (its
        image processor's values); a checkpoint without its own video processor config would silently
        feed mis-normalised frames.
        """
        image, video = self.processor.image_processor, self.processor.video_processor
        if list(video.image_mean) != list(image.image_mean) or list(video.image_std) != list(image.image_std):
            log.warning("LLaVA-OV video processor normalises with mean=%s std=%s but the image processor with "
                        "mean=%s std=%s; using the image processor's values for video frames",
                        video.image_mean, video.image_std, image.image_mean, image.image_std)
            video.image_mean, video.image_std = list(image.image_mean), list(image.image_std)

    @property
    def attention_layer(self):
        """The SigLIP attention module whose layer feeds the projector."""
        tower = self.model.model.vision_tower
        layers = tower.encoder.layers
        return layers[feature_layer_index(self.model.config.vision_feature_layer, len(layers))].self_attn

    @torch.no_grad()
    def encode(self, prepared: Prepared) -> VisionTokens:
        pixels = prepared.inputs["pixel_values_videos"]  # (1, F, 3, H, W)
        frames = int(pixels.shape[1])
        out, captured = self._run_tower(pixels)
        pooled = out.pooler_output[0]  # (F*n + 1, D): frames' tokens then the one image_newline
        features = pooled[:-1].view(frames, -1, pooled.shape[-1])  # (F, n, D)
        attn, keys = self._importance(captured, frames)  # (F, P), (F, P, d) on the patch grid
        attn = self.pool(attn.unsqueeze(-1)).squeeze(-1)  # (F, n)
        keys = self.pool(keys)  # (F, n, d)
        n = features.shape[1]
        side = round(n ** 0.5)
        return VisionTokens(features, attn, keys, (side, n // side), None, {"newline": pooled[-1]})

    def pool(self, x: Tensor) -> Tensor:
        """(F, P, C) on the square patch grid -> (F, n, C) on the LLM grid: HF's own ``apply_pooling``
        (bilinear to ceil(side / 2) per side)."""
        return self.model.model.apply_pooling(x)

    def _run_tower(self, pixels: Tensor) -> tuple[Any, dict[str, Tensor]]:
        """HF's ``get_video_features`` with hooks keeping the feature layer's q / k projections and the
        projector's output (F, P, D) (the features before pooling)."""
        attn_module = self.attention_layer
        captured: dict[str, Tensor] = {}

        def keep(name):
            def hook(module, args, kwargs, output):
                captured[name] = output
            return hook

        with hooks((attn_module.q_proj, "forward", keep("q")), (attn_module.k_proj, "forward", keep("k")),
                   (self.model.model.multi_modal_projector, "forward", keep("projected"))):
            out = self.model.model.get_video_features(pixel_values_videos=pixels, return_dict=True)
        return out, captured

    def _importance(self, captured: dict[str, Tensor], frames: int) -> tuple[Tensor, Tensor]:
        """Attention received (F, P) and head-averaged keys (F, P, d) of the feature layer, per frame,
        restricted to the patches the projector reads (no CLS under the "default" strategy)."""
        attn_module = self.attention_layer
        heads, head_dim = attn_module.num_heads, attn_module.head_dim
        q = captured["q"].view(frames, -1, heads, head_dim).transpose(1, 2)  # (F, H, P, d)
        k = captured["k"].view(frames, -1, heads, head_dim).transpose(1, 2)
        attn = attention_received(q, k, attn_module.scale)  # (F, P)
        keys = k.float().mean(dim=1)  # (F, P, d)
        if self.model.config.vision_feature_select_strategy == "default":  # features drop the first (CLS) token
            attn, keys = attn[:, 1:], keys[:, 1:]
        return attn, keys

    def kept_positions(self, prepared: Prepared, pruned: PruneOutput) -> Tensor:
        """(L',) positions in the unpruned sequence of every token of the pruned one, in LLM order."""
        input_ids = prepared.inputs["input_ids"]
        start, end = self.video_span(input_ids)
        device = input_ids.device
        return torch.cat([torch.arange(start, device=device), start + pruned.index.to(device),
                          torch.tensor([end - 1], device=device),  # the image_newline
                          torch.arange(end, input_ids.shape[1], device=device)])

    def splice(self, prepared: Prepared, vision: VisionTokens, pruned: PruneOutput) -> dict[str, Any]:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        inputs = prepared.inputs
        start, end = self.video_span(inputs["input_ids"])
        if end - start != vision.num_tokens + 1:
            raise ValueError(f"{end - start} video placeholders but {vision.num_tokens} visual tokens + 1 newline")
        keep = self.kept_positions(prepared, pruned)  # (L',)
        video = torch.cat([pruned.tokens.to(self.device, self.dtype), vision.extra["newline"][None]])  # (k+1, D)
        return {
            "input_ids": inputs["input_ids"][:, keep],
            "attention_mask": torch.ones(1, keep.numel(), dtype=inputs["attention_mask"].dtype, device=keep.device),
            "position_ids": torch.arange(keep.numel(), device=keep.device).view(1, -1),  # (1, L') contiguous
            "mm_encoder_outputs": {"video": BaseModelOutputWithPooling(pooler_output=video[None])},
        }
