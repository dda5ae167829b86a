"""Independent references for the backbone tests: written from the published rules, never via the adapters.

- ``released_mrope``: Qwen2.5-VL M-RoPE ids of one video by the released rule, from the grid by loops.
- ``masked_reference``: Qwen2.5-VL / LLaVA-OV pruned logits predicted by the unpruned sequence with the
  dropped tokens masked as keys (the model runs its own vision tower where it can).
- ``llava_video_dense``: LLaVA-Video's dense video sequence from the vision tower's hidden states, pooled
  by reshaping (not by torch's pooling ops) and laid out by explicit loops over frames and rows.
- ``llava_video_masked_logits``: the pruned model's logits predicted by the UNPRUNED sequence with the
  dropped tokens (and the newlines of rows / frames left empty) masked out as keys, every kept token at
  its pruned-sequence position (cumsum of the mask).
"""
from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling


def released_mrope(backbone, prepared) -> torch.Tensor:
    """(3, 1, L) ids: text counts up by 1; the video's (t, h, w) from its grid and time step; the text after
    the video starts at the video's max id + 1."""
    inputs = prepared.inputs
    input_ids = inputs["input_ids"][0]
    video = torch.nonzero(input_ids == backbone.video_token_id).flatten()
    start, end = int(video[0]), int(video[-1]) + 1
    t, gh, gw = inputs["video_grid_thw"][0].tolist()
    merge = backbone.model.config.vision_config.spatial_merge_size
    h, w = gh // merge, gw // merge
    step = backbone.model.config.vision_config.tokens_per_second * float(inputs["second_per_grid_ts"][0])
    ids = torch.zeros(3, input_ids.numel(), dtype=torch.long)
    ids[:, :start] = torch.arange(start)
    for slice_ in range(t):
        for row in range(h):
            for col in range(w):
                k = start + (slice_ * h + row) * w + col
                ids[:, k] = torch.tensor([start + int(slice_ * step), start + row, start + col])
    after = int(ids[:, start:end].max()) + 1
    ids[:, end:] = torch.arange(after, after + input_ids.numel() - end)
    return ids[:, None]


def masked_reference(backbone, prepared, vision, pruned, head: bool = True) -> torch.Tensor:
    """Qwen2.5-VL / LLaVA-OV: the unpruned sequence (the model runs its own vision tower unless a pruner
    merged tokens), dropped visual tokens masked as keys, kept ones at their pruned-sequence positions.
    Returns logits (or, ``head=False``, last hidden states) at the kept positions."""
    inputs = prepared.inputs
    input_ids = inputs["input_ids"]
    L = input_ids.shape[1]
    video = torch.nonzero(input_ids[0] == backbone.model.config.video_token_id).flatten()
    start = int(video[0])
    visual = vision.num_tokens
    kept_visual = torch.zeros(visual, dtype=torch.bool)
    kept_visual[pruned.index] = True
    mask = torch.ones(1, L, dtype=inputs["attention_mask"].dtype)
    mask[0, start:start + visual] = kept_visual.to(mask.dtype)

    kwargs = {"input_ids": input_ids, "attention_mask": mask}
    merged = not torch.equal(pruned.tokens, vision.features.reshape(visual, -1)[pruned.index])
    if merged:  # substitute the pruner's merged features at the positions they stand for
        features = vision.features.reshape(visual, -1).clone()
        features[pruned.index] = pruned.tokens
    if backbone.family == "qwen25vl":
        mrope = released_mrope(backbone, prepared)  # (3, 1, L), original positions
        kwargs["position_ids"] = torch.cat([torch.arange(L).view(1, 1, L), mrope])
        kwargs["mm_token_type_ids"] = inputs["mm_token_type_ids"]
        if merged:
            kwargs["mm_encoder_outputs"] = {"video": BaseModelOutputWithPooling(pooler_output=(features,))}
        else:
            kwargs.update(pixel_values_videos=inputs["pixel_values_videos"], video_grid_thw=inputs["video_grid_thw"])
    else:
        kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)  # contiguous over kept tokens
        if merged:
            video_tokens = torch.cat([features, vision.extra["newline"][None]])[None]
            kwargs["mm_encoder_outputs"] = {"video": BaseModelOutputWithPooling(pooler_output=video_tokens)}
        else:
            kwargs["pixel_values_videos"] = inputs["pixel_values_videos"]
    return _forward(backbone, head, **kwargs)[mask[0].bool()]


def _forward(backbone, head: bool, **kwargs) -> torch.Tensor:
    """(L, V) logits or (L, D) last hidden states of one sequence."""
    with torch.no_grad():
        if head:
            return backbone.model(**kwargs).logits[0]
        return backbone.model.model(**kwargs).last_hidden_state[0]


def _pool_by_reshape(x: torch.Tensor, side: int, mode: str, stride: int) -> torch.Tensor:
    """(F, side*side, C) -> (F, n, C): average / max over stride x stride blocks (floor), by reshaping."""
    frames, _, channels = x.shape
    out = side // stride
    grid = x.reshape(frames, side, side, channels)[:, :out * stride, :out * stride]
    blocks = grid.reshape(frames, out, stride, out, stride, channels)
    pooled = blocks.mean(dim=(2, 4)) if mode == "average" else blocks.amax(dim=(2, 4))
    return pooled.reshape(frames, out * out, channels)


def llava_video_dense(backbone, prepared) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
    """(sequence (S, D), kind (S,) long: 0 token / 1 newline, group (S,) long: the row or frame of each
    element, grid). The tower's hidden state at vision_feature_layer -> projector -> pooled -> laid out."""
    model = backbone.model.model
    config = backbone.model.config
    mode = config.mm_spatial_pool_mode if backbone.settings["mm_spatial_pool_mode"] is None \
        else backbone.settings["mm_spatial_pool_mode"]
    stride = config.mm_spatial_pool_stride if backbone.settings["mm_spatial_pool_stride"] is None \
        else backbone.settings["mm_spatial_pool_stride"]
    newline_position = config.mm_newline_position if backbone.settings["mm_newline_position"] is None \
        else backbone.settings["mm_newline_position"]
    assert mode in ("average", "max"), "this reference covers the floor-pooling modes"
    pixels = prepared.inputs["pixel_values_videos"][0]  # (F, 3, H, W)
    side = config.vision_config.image_size // config.vision_config.patch_size
    with torch.no_grad():
        hidden = model.vision_tower(pixels, output_hidden_states=True).hidden_states[config.vision_feature_layer]
        projected = model.multi_modal_projector(hidden)  # (F, side*side, D)
    pooled = _pool_by_reshape(projected, side, mode, stride)  # (F, n, D)
    frames = pooled.shape[0]
    h = w = side // stride
    newline = model.image_newline.detach()
    rows, kinds, groups = [], [], []
    for t in range(frames):
        for r in range(h):
            for c in range(w):
                rows.append(pooled[t, r * w + c])
                kinds.append(0)
                groups.append(t * h + r if newline_position == "grid" else t)
            if newline_position == "grid":
                rows.append(newline)
                kinds.append(1)
                groups.append(t * h + r)
        if newline_position == "frame":
            rows.append(newline)
            kinds.append(1)
            groups.append(t)
    if newline_position == "one_token":
        rows.append(newline)
        kinds.append(1)
        groups.append(-1)
    return torch.stack(rows), torch.tensor(kinds), torch.tensor(groups), (h, w)


def llava_video_masked_logits(backbone, prepared, pruned, head: bool = True) -> torch.Tensor:
    """Logits (or last hidden states) at the kept positions of the unpruned sequence, dropped tokens and the
    newlines of rows / frames with no kept token masked."""
    sequence, kinds, groups, _ = llava_video_dense(backbone, prepared)
    newline_position = backbone.layout.newline
    visual = int((kinds == 0).sum())
    kept = torch.zeros(visual, dtype=torch.bool)
    kept[pruned.index] = True
    features = sequence[kinds == 0].clone()  # (T*n, D) in flat order
    features[pruned.index] = pruned.tokens.to(features.dtype)  # merged tokens stand at their index
    sequence = sequence.clone()
    sequence[kinds == 0] = features
    keep = torch.ones(sequence.shape[0], dtype=torch.bool)
    keep[kinds == 0] = kept
    if newline_position in ("grid", "frame"):
        group_of_token = groups[kinds == 0]
        alive = set(group_of_token[kept].tolist())
        for i in torch.nonzero(kinds == 1).flatten().tolist():
            keep[i] = int(groups[i]) in alive
    input_ids = prepared.inputs["input_ids"]
    L = input_ids.shape[1]
    video = torch.nonzero(input_ids[0] == backbone.video_token_id).flatten()
    start = int(video[0])
    assert video.numel() == sequence.shape[0], "placeholders must match the layout"
    mask = torch.ones(1, L, dtype=torch.long)
    mask[0, start:start + sequence.shape[0]] = keep.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = _forward(backbone, head, input_ids=input_ids, attention_mask=mask, position_ids=positions,
                   mm_encoder_outputs={"video": BaseModelOutputWithPooling(pooler_output=sequence[None].to(backbone.dtype))})
    return out[mask[0].bool()]
