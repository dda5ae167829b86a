"""Qwen2.5-VL adapter (``Qwen2_5_VLForConditionalGeneration``, e.g. Qwen/Qwen2.5-VL-7B-Instruct).

Token grid: the processor packs 2 frames into one temporal patch and the merger turns every 2x2 patch
block into one LLM token, so a "frame" for pruning is one temporal slice with an (H/28)x(W/28) grid.

Importance A and keys K come from the LAST ViT block (a full-attention block in the 7B: 7/15/23/31),
whose attention runs within each temporal slice (one ``cu_seqlens`` segment each) with the 2-D vision
rotary embedding. Hooks keep that block's fused q/k/v projection and the rotary cos/sin it receives;
A is recomputed per segment and reduced to the LLM grid by averaging the 4 patches of each 2x2 merge
unit, after undoing the window permutation (inside the ViT, rows are in window order; the merger's
output is put back in raster order, and so are A and K here). K is the pre-rotary key, averaged over
heads: VisionZip compares keys by content, and the rotary would mix position into that similarity.

Splicing: placeholders of dropped tokens are removed; position_ids are explicit 4-row ids: row 0
contiguous 1-D positions (transformers builds the causal mask from it), rows 1-3 the ORIGINAL M-RoPE
(t, h, w) ids of the kept tokens from ``get_rope_index`` on the unpruned sequence, so text after the
video keeps its original positions too. Generation extends every row by +1 per new token, as for the
unpruned model (``generate`` appends ``position_ids[..., -1:] + 1``; it never recomputes them).

Text after a video (setting ``rope_text_after_video``). In transformers 5.23 ``get_rope_index`` moves
the running position after a vision run by ``max(h, w) / merge`` only, ignoring how far the run's
temporal ids reach; the released model (and transformers' own 4.x code) starts the next run at the
vision run's largest id + 1. With 32 frames at 448x448 (grid 16x32x32, ~2 s per temporal slice) the
question starts at 31 instead of 128, dense and pruned alike. ``official`` (default) post-processes the
ids to the released rule: every run that follows a vision run continues from that run's max + 1, and
everything after it moves by the same amount. ``hf`` keeps transformers' ids unchanged.

``rope_deltas``: transformers caches (max id + 1 - length) on the model and uses it to place tokens when
a forward with a KV cache gets no position_ids. ``splice`` sets it from the spliced ids, so such a
decode step lands at max + 1 of the spliced prompt, exactly where ``generate``'s +1 extension puts it.
"""
from __future__ import annotations

from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..pruning import PruneOutput
from .base import Backbone, Prepared, VisionTokens
from .capture import attention_received, hooks

ROPE_RULES = ("official", "hf")


def continue_after_vision(position_ids: Tensor, mm_token_type_ids: Tensor,
                          attention_mask: Tensor | None = None) -> Tensor:
    """M-RoPE ids with every run that follows a vision run starting at that run's max id + 1.

    position_ids: (3, B, L) from ``get_rope_index``; mm_token_type_ids: (B, L), 0 text, 1 image, 2 video.
    Runs are maximal stretches of one token type among the attended (mask 1) tokens. A run after a
    vision run, and everything after it, is shifted so its first id is the vision run's max (over t, h,
    w) + 1; vision runs keep their internal layout (they are relative to their own start).
    Returns a new (3, B, L) tensor; padded positions are left as they were.
    """
    out = position_ids.clone()
    for b in range(out.shape[1]):
        valid = (torch.ones_like(mm_token_type_ids[b], dtype=torch.bool) if attention_mask is None
                 else attention_mask[b].bool())
        where = torch.nonzero(valid).flatten()  # (S,)
        types = mm_token_type_ids[b, where]  # (S,)
        ids = out[:, b, where]  # (3, S)
        cuts = (torch.nonzero(types[1:] != types[:-1]).flatten() + 1).tolist()
        shift = 0
        previous_vision_max = None
        for start, end in zip([0, *cuts], [*cuts, int(types.numel())], strict=True):
            ids[:, start:end] += shift
            if previous_vision_max is not None:
                step = int(previous_vision_max) + 1 - int(ids[0, start])
                ids[:, start:end] += step
                shift += step
            previous_vision_max = ids[:, start:end].max() if int(types[start]) != 0 else None
        out[:, b, where] = ids
    return out


class Qwen25VLBackbone(Backbone):
    family = "qwen25vl"
    model_type = "qwen2_5_vl"
    hf_class = "Qwen2_5_VLForConditionalGeneration"
    generation_cap = 1024  # the SToP release's Qwen2.5-VL generator
    SETTINGS: ClassVar[dict[str, Any]] = {"rope_text_after_video": "official"}  # official | hf, see module doc

    def __init__(self, model, processor, name=None, checkpoint=None, **settings) -> None:
        super().__init__(model, processor, name=name, checkpoint=checkpoint, **settings)
        if self.settings["rope_text_after_video"] not in ROPE_RULES:
            raise ValueError(f"rope_text_after_video={self.settings['rope_text_after_video']!r} is invalid; "
                             f"allowed: {', '.join(ROPE_RULES)}")
        video_processor = processor.video_processor
        if getattr(video_processor, "cap_pixels_per_frame", None) is None:
            # qwen-vl-utils' total-pixel budget per video (transformers' default is about to become this)
            video_processor.cap_pixels_per_frame = True

    @property
    def visual(self):
        return self.model.model.visual

    @torch.no_grad()
    def encode(self, prepared: Prepared) -> VisionTokens:
        inputs = prepared.inputs
        grid_thw = inputs["video_grid_thw"]  # (1, 3): temporal slices, patch rows, patch cols
        visual = self.visual
        block = visual.blocks[-1]
        last = len(visual.blocks) - 1
        if last not in visual.fullatt_block_indexes:  # a windowed block's map covers one window, not the slice
            raise ValueError(f"the last ViT block ({last}) is a window-attention block "
                             f"(fullatt_block_indexes={list(visual.fullatt_block_indexes)}); importance needs a "
                             "full-attention block")
        captured: dict[str, Any] = {}

        def keep_call(module, args, kwargs):
            captured["cu_seqlens"] = kwargs["cu_seqlens"]
            captured["rotary"] = kwargs["position_embeddings"]

        def keep_qkv(module, args, kwargs, output):
            captured["qkv"] = output

        with hooks((block.attn, "pre", keep_call), (block.attn.qkv, "forward", keep_qkv)):
            out = self.model.model.get_video_features(inputs["pixel_values_videos"], grid_thw, return_dict=True)
        features = out.pooler_output[0]  # (T*n, D) merged tokens, raster order

        t, gh, gw = (int(x) for x in grid_thw[0].tolist())
        merge = visual.spatial_merge_size
        grid = (gh // merge, gw // merge)
        n = grid[0] * grid[1]
        attn, keys = self._importance(captured, block.attn)  # (S,), (S, d) in window order, per patch
        order = self.window_to_raster(grid_thw)  # (S / merge^2,)
        unit = merge * merge
        attn = attn.view(-1, unit).mean(dim=1)[order].view(t, n)  # (T, n)
        keys = keys.view(-1, unit, keys.shape[-1]).mean(dim=1)[order].view(t, n, -1)  # (T, n, d)
        return VisionTokens(features.view(t, n, -1), attn, keys, grid, None, {"grid_thw": grid_thw})

    def _importance(self, captured: dict[str, Any], attn_module) -> tuple[Tensor, Tensor]:
        """Attention received (S,) and head-averaged pre-rotary keys (S, d), rows in window order."""
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

        qkv = captured["qkv"]  # (S, 3 * C)
        S = qkv.shape[0]
        heads = attn_module.num_heads
        q, k, _ = qkv.reshape(S, 3, heads, -1).unbind(1)  # (S, H, d) each
        cos, sin = captured["rotary"]  # (S, d), already permuted to window order
        q_rot, k_rot = apply_rotary_pos_emb_vision(q, k, cos, sin)  # the vision attention's own rotary (float32)
        bounds = captured["cu_seqlens"].tolist()
        lengths = [b - a for a, b in pairwise(bounds)]
        received = torch.empty(S, dtype=torch.float32, device=qkv.device)
        if len(set(lengths)) == 1:  # one video: every temporal slice is a segment of the same length
            segs, length = len(lengths), lengths[0]
            qs = q_rot.reshape(segs, length, heads, -1).transpose(1, 2)  # (segs, H, s, d)
            ks = k_rot.reshape(segs, length, heads, -1).transpose(1, 2)
            received.copy_(attention_received(qs, ks, attn_module.scaling).reshape(-1))
        else:  # pragma: no cover - unequal segments (not produced for a single video)
            for a, b in pairwise(bounds):
                qs = q_rot[a:b].transpose(0, 1).unsqueeze(0)
                ks = k_rot[a:b].transpose(0, 1).unsqueeze(0)
                received[a:b] = attention_received(qs, ks, attn_module.scaling)[0]
        return received, k.float().mean(dim=1)

    def window_to_raster(self, grid_thw: Tensor) -> Tensor:
        """(units,) index that puts merge units from the ViT's window order back in raster order."""
        from transformers.vision_utils import get_vision_window_index

        visual = self.visual
        window_index, _ = get_vision_window_index(grid_thw, spatial_merge_size=visual.spatial_merge_size,
                                                  window_size=visual.window_size, patch_size=visual.patch_size)
        return torch.argsort(window_index.to(grid_thw.device))

    def rope_index(self, prepared: Prepared) -> Tensor:
        """(3, 1, L) M-RoPE (t, h, w) ids of the unpruned sequence: transformers' ``get_rope_index``, then
        the ``rope_text_after_video`` rule (``official``: text after the video continues from its max + 1)."""
        inputs = prepared.inputs
        position_ids, _ = self.model.model.get_rope_index(
            inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
            video_grid_thw=inputs["video_grid_thw"], second_per_grid_ts=inputs.get("second_per_grid_ts"),
            attention_mask=inputs["attention_mask"])
        if self.settings["rope_text_after_video"] == "official":
            position_ids = continue_after_vision(position_ids, inputs["mm_token_type_ids"], inputs["attention_mask"])
        return position_ids

    def kept_positions(self, prepared: Prepared, pruned: PruneOutput) -> Tensor:
        """(L',) positions in the unpruned sequence of every token of the pruned one, in LLM order."""
        input_ids = prepared.inputs["input_ids"]
        start, end = self.video_span(input_ids)
        device = input_ids.device
        return torch.cat([torch.arange(start, device=device), start + pruned.index.to(device),
                          torch.arange(end, input_ids.shape[1], device=device)])

    def splice(self, prepared: Prepared, vision: VisionTokens, pruned: PruneOutput) -> dict[str, Any]:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        inputs = prepared.inputs
        start, end = self.video_span(inputs["input_ids"])
        if end - start != vision.num_tokens:
            raise ValueError(f"{end - start} video placeholders but {vision.num_tokens} visual tokens")
        keep = self.kept_positions(prepared, pruned)  # (L',)
        mrope = self.rope_index(prepared)[:, :, keep]  # (3, 1, L')
        text_positions = torch.arange(keep.numel(), device=keep.device).view(1, 1, -1)  # (1, 1, L')
        tokens = pruned.tokens.to(self.device, self.dtype)  # (k, D)
        # what a cached forward without position_ids adds to its 0-based index: next id = max + 1
        self.model.model.rope_deltas = (mrope.max() + 1 - keep.numel()).view(1, 1)
        return {
            "input_ids": inputs["input_ids"][:, keep],
            "attention_mask": torch.ones(1, keep.numel(), dtype=inputs["attention_mask"].dtype, device=keep.device),
            "mm_token_type_ids": inputs["mm_token_type_ids"][:, keep],
            "position_ids": torch.cat([text_positions, mrope], dim=0),  # (4, 1, L')
            "mm_encoder_outputs": {"video": BaseModelOutputWithPooling(pooler_output=(tokens,))},
        }
