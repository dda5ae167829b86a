"""The captured importance A / keys K are the eager attention of the right layer, reduced like the features."""
from __future__ import annotations

import pytest
import torch

from sinktop_eval.backbones import load_backbone
from sinktop_eval.backbones.capture import attention_received
from sinktop_eval.backbones.llava_ov import feature_layer_index


@pytest.fixture(scope="module")
def eager_twins(tiny_cache):
    return {name: load_backbone(name, device="cpu", attn_implementation="eager")
            for name in ("tiny_qwen25vl", "tiny_llava_ov")}


@pytest.mark.parametrize("video", ["clip", "wide_clip"])
def test_qwen_attention_equals_eager_last_block(eager_twins, video, request, monkeypatch):
    """Compare with the weights the eager kernel itself computes inside the last ViT block."""
    clip = request.getfixturevalue(video)
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    backbone = eager_twins["tiny_qwen25vl"]
    visual = backbone.model.model.visual
    assert len(visual.blocks) - 1 in visual.fullatt_block_indexes  # the last block is a full-attention one
    target = visual.blocks[-1].attn
    recorded = []
    original = qwen.eager_attention_forward

    def recording(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        out, weights = original(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
        if module is target:
            recorded.append(weights.detach())  # (1, H, s, s): one temporal slice, window order
        return out, weights

    monkeypatch.setattr(qwen, "eager_attention_forward", recording)
    prepared = backbone.prepare(clip, "Is there a red square?", frames=16)
    vision = backbone.encode(prepared)
    t, n = vision.attn.shape
    assert len(recorded) == t  # one segment per temporal slice (2 frames each)
    eager = torch.cat([w[0].mean(dim=(0, 1)) for w in recorded])  # (S,) column mean, window order
    order = backbone.window_to_raster(prepared.inputs["video_grid_thw"])
    reduced = eager.view(-1, 4).mean(dim=1)[order].view(t, n)  # mean over each 2x2 merge unit, raster order
    torch.testing.assert_close(vision.attn, reduced, atol=1e-7, rtol=1e-5)
    # rows of the raw map sum to 1 -> each slice's patch-level A sums to 1, the unit means to 1/4
    torch.testing.assert_close(vision.attn.sum(dim=1), torch.full((t,), 0.25), atol=1e-5, rtol=0)


@pytest.mark.parametrize("video", ["clip", "wide_clip"])
def test_qwen_keys_and_window_order(twins, video, request):
    """K is the last block's pre-rotary key; the window->raster index is the permutation the merger undoes."""
    backbone = twins["tiny_qwen25vl"]
    prepared = backbone.prepare(request.getfixturevalue(video), "Is there a red square?", frames=16)
    vision = backbone.encode(prepared)
    visual = backbone.model.model.visual
    seen = {}
    handle = visual.blocks[-1].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    try:
        with torch.no_grad():
            out = visual(prepared.inputs["pixel_values_videos"], grid_thw=prepared.inputs["video_grid_thw"])
    finally:
        handle.remove()
    block = visual.blocks[-1]
    with torch.no_grad():
        qkv = block.attn.qkv(block.norm1(seen["x"]))  # (S, 3C), window order
        keys = qkv.view(qkv.shape[0], 3, block.attn.num_heads, -1)[:, 1].mean(dim=1)  # (S, d)
        order = backbone.window_to_raster(prepared.inputs["video_grid_thw"])
        t, n, d = vision.keys.shape
        torch.testing.assert_close(vision.keys, keys.view(-1, 4, d).mean(dim=1)[order].view(t, n, d))
        # the merger output of the window-ordered hidden states, put in raster order, is pooler_output
        torch.testing.assert_close(visual.merger(out.last_hidden_state)[order], out.pooler_output)
        torch.testing.assert_close(vision.features.reshape(t * n, -1), out.pooler_output)
    gh, gw = prepared.inputs["video_grid_thw"][0, 1:].tolist()
    assert vision.grid == (gh // 2, gw // 2)


def test_llava_attention_equals_eager_output_attentions(eager_twins, clip):
    backbone = eager_twins["tiny_llava_ov"]
    config = backbone.model.config
    tower = backbone.model.model.vision_tower
    assert config.vision_feature_layer == -2  # like the original LLaVA-OV recipe: not the last layer
    layer = feature_layer_index(config.vision_feature_layer, len(tower.encoder.layers))
    prepared = backbone.prepare(clip, "Is there a red square?", frames=16)
    vision = backbone.encode(prepared)
    pixels = prepared.inputs["pixel_values_videos"][0]  # (F, 3, H, W)
    with torch.no_grad():
        out = tower(pixels, output_attentions=True, output_hidden_states=True)
        eager = out.attentions[layer]  # (F, H, P, P) from the eager kernel
        pool = backbone.model.model.apply_pooling
        torch.testing.assert_close(vision.attn, pool(eager.mean(dim=(1, 2)).unsqueeze(-1)).squeeze(-1),
                                   atol=1e-7, rtol=1e-5)
        # keys: k_proj of that layer's (normed) input, head-averaged, pooled like the features
        attn = tower.encoder.layers[layer]
        k = attn.self_attn.k_proj(attn.layer_norm1(out.hidden_states[layer]))  # (F, P, C)
        k = k.view(k.shape[0], k.shape[1], attn.self_attn.num_heads, -1).mean(dim=2)
        torch.testing.assert_close(vision.keys, pool(k))
        # the hooked layer is the one whose output the projector reads
        features = backbone.model.model.multi_modal_projector(out.hidden_states[config.vision_feature_layer])
        torch.testing.assert_close(vision.features, pool(features))
    assert vision.grid == (7, 7) and vision.features.shape[:2] == (16, 49)


def test_feature_layer_index():
    assert feature_layer_index(-1, 26) == 25  # the HF 7B checkpoint: last of 26 kept layers
    assert feature_layer_index(-2, 4) == 2
    assert feature_layer_index(3, 4) == 2  # hidden_states[3] is the output of layer 2
    with pytest.raises(ValueError, match="selects no encoder layer"):
        feature_layer_index(0, 4)
    with pytest.raises(NotImplementedError):
        feature_layer_index([-2, -1], 4)


def test_attention_received_chunking_is_exact():
    torch.manual_seed(0)
    q, k = torch.randn(3, 2, 50, 8), torch.randn(3, 2, 50, 8)
    full = torch.softmax(q @ k.transpose(-1, -2) * 0.3, dim=-1).mean(dim=(1, 2))
    for budget in (1, 100, 2 * 50 * 50, 10**9):  # per query, per sequence, whole batch
        torch.testing.assert_close(attention_received(q, k, 0.3, chunk_elements=budget), full)
