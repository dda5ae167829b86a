"""The 7B shapes: real-shape twins (published configs and processor settings, random weights, 2 + 2 layers).

Kept to seconds on CPU: the run-through loads the twin in bfloat16 and uses a few frames at the real
resolution; token counts at the paper's 32 frames come from the processor (no forward). The fp32
exactness checks at real shape (masked reference, dense == HF) are marked slow (a 6 GB fp32 model
each). Twins are built once per machine (~25 s, ~3 GB each) into the real-shape cache.
"""
from __future__ import annotations

import gc
import importlib.util
import json
import pathlib
import sys

import pytest
import torch

from sinktop_eval.backbones import load_backbone
from sinktop_eval.backbones.real_shape import (
    LLAVA_OV_7B,
    QWEN25VL_7B_TEXT,
    QWEN25VL_7B_VISION,
    SIGLIP_SO400M_26,
)
from sinktop_eval.pruning import build_pruner

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from references import llava_video_dense, llava_video_masked_logits, masked_reference, released_mrope  # noqa: E402

REAL = ("real_shape_qwen25vl", "real_shape_llava_ov", "real_shape_llava_video")
PROMPT = "Is there a red square?"
GB = 1e9


@pytest.fixture(autouse=True)
def _collect():
    """Each test loads a multi-GB model; make sure it is gone before the next one loads."""
    yield
    gc.collect()


def _bench_tokens():
    """The pruning bench's synthetic video at the LLaVA-OV-7B grid (T=32, 14x14, D=3584)."""
    path = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bench_pruners.py"
    spec = importlib.util.spec_from_file_location("bench_pruners", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_video_tokens(32, 14, 14, D=3584)


def test_pruner_counts_on_the_llava_ov_7b_grid():
    """32 frames x 196 = 6,272 dense; r = 0.1: VisionZip 640 (20 per frame) as the paper, uniform 640; the
    content-adaptive pruners within their budget (the bench reports FastVID 605, HoliTom 646 here)."""
    X, A, K = _bench_tokens()
    counts = {}
    settings = {"dense": [(1.0, 0.0, 0.0)], "uniform": [(0.1, 0.0, 0.0)],
                "visionzip": [(0.1, 0.0, 0.0), (0.1, 0.03, 0.0)], "fastvid": [(0.1, 0.0, 0.0), (0.1, 0.02, 0.0)],
                "holitom": [(0.1, 0.0, 0.0), (0.1, 0.04, 0.07)]}  # SToP off / on (the paper's mu)
    for name, runs in settings.items():
        for ratio, mu_s, mu_t in runs:
            out = build_pruner(name, ratio, mu_s=mu_s, mu_t=mu_t)(X, A, keys=K, grid=(14, 14))
            counts.setdefault(name, set()).add(len(out))
    assert counts["dense"] == {6272}
    assert counts["visionzip"] == {640} and counts["uniform"] == {640}
    for name in ("fastvid", "holitom"):
        assert all(0.9 * 627 <= c <= 1.05 * 627 for c in counts[name]), (name, counts[name])


def _check_facts(backbone, name):
    config = json.loads((pathlib.Path(backbone.checkpoint) / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    assert text["num_hidden_layers"] == 2 and text["num_key_value_heads"] == 4
    if name == "real_shape_qwen25vl":
        for key in ("hidden_size", "intermediate_size", "num_attention_heads", "vocab_size"):
            assert text[key] == QWEN25VL_7B_TEXT[key]
        assert text["rope_parameters"]["mrope_section"] == [16, 24, 24]
        for key in ("hidden_size", "intermediate_size", "num_heads", "out_hidden_size", "patch_size",
                    "spatial_merge_size", "temporal_patch_size", "window_size", "tokens_per_second"):
            assert vision[key] == QWEN25VL_7B_VISION[key]
        # the last 2 of the 7B's 32 blocks: 30 (window) and 31 (full)
        assert vision["depth"] == 2 and vision["fullatt_block_indexes"] == [1]
        size = backbone.processor.video_processor.size
        assert (size["shortest_edge"], size["longest_edge"]) == (3136, 12845056)
    else:
        assert (text["hidden_size"], text["intermediate_size"], text["num_attention_heads"], text["vocab_size"]) == \
            (3584, 18944, 28, 152128)
        for key in ("hidden_size", "intermediate_size", "num_attention_heads", "image_size", "patch_size"):
            assert vision[key] == SIGLIP_SO400M_26[key]
        assert vision["num_hidden_layers"] == 2 and config["vision_feature_layer"] == -1
        assert config["image_grid_pinpoints"] == LLAVA_OV_7B["image_grid_pinpoints"]
        assert list(backbone.processor.video_processor.image_mean) == [0.5, 0.5, 0.5]
        layout = (config.get("mm_spatial_pool_mode"), config.get("mm_newline_position"))
        assert layout == (("average", "grid") if name == "real_shape_llava_video" else (None, None))


@pytest.mark.parametrize("name", REAL)
def test_real_resolution_video_through_the_twin(name, real_clip, minute_clip):
    """bf16 on CPU: the published shapes, a 448x448 video dense and pruned, exact counts, peak memory."""
    backbone = load_backbone(name, device="cpu", dtype="bfloat16")
    _check_facts(backbone, name)
    frames = 4
    dense = backbone.generate(real_clip, PROMPT, pruner=None, frames=frames, max_new_tokens=2)
    stop = build_pruner("visionzip", 0.1, mu_s=0.03)
    pruned = backbone.generate(real_clip, PROMPT, pruner=stop, frames=frames, max_new_tokens=2)
    prepared = backbone.prepare(real_clip, PROMPT, frames=frames)
    vision = backbone.encode(prepared)
    expected = stop(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
    per_frame = {"real_shape_qwen25vl": 16 * 16, "real_shape_llava_ov": 14 * 14, "real_shape_llava_video": 13 * 13}
    slices = frames // 2 if name == "real_shape_qwen25vl" else frames
    assert dense.stats["dense_visual_tokens"] == slices * per_frame[name] == vision.num_tokens
    assert dense.stats["kept_visual_tokens"] == vision.num_tokens
    assert pruned.stats["kept_visual_tokens"] == len(expected) < vision.num_tokens // 5
    assert pruned.stats["prefill_flops"] < dense.stats["prefill_flops"] / 3
    # peak memory is recorded and covers at least the bf16 weights it ran with
    weights_gb = sum(p.numel() * p.element_size() for p in backbone.model.parameters()) / GB
    for out in (dense, pruned):
        assert out.stats["peak_mem_gb"] >= weights_gb > 2.5
    # the paper's 32 frames, from the processor: visual placeholders before any pruning
    at32 = backbone.prepare(minute_clip, PROMPT, frames=32)
    start, end = backbone.video_span(at32.inputs["input_ids"])
    if name == "real_shape_qwen25vl":
        assert at32.inputs["video_grid_thw"][0].tolist() == [16, 32, 32]
        assert end - start == 16 * 256 == 4096
        _check_qwen_positions_at_32_frames(backbone, at32, start, end)
    elif name == "real_shape_llava_ov":
        assert end - start == 32 * 196 + 1 == 6273  # 6,272 visual tokens and the one newline
    else:
        assert end - start == 32 * (169 + 13) == 5824  # 5,408 visual tokens and 416 grid newlines


def _check_qwen_positions_at_32_frames(backbone, prepared, start, end):
    """16 slices 3.75 s apart: time ids step 7.5 -> 0 .. 112; the question starts at 113 after the video
    start by the released rule, at 16 by transformers 5.23's (with the real tokenizer's 15 tokens before the
    video: 128 vs 31)."""
    ids = backbone.rope_index(prepared)[:, 0]  # (3, L)
    video = ids[:, start:end].view(3, 16, 16, 16)  # (3, t, h, w)
    assert video[0, :, 0, 0].tolist() == [start + int(i * 7.5) for i in range(16)]
    assert video[1, 0, :, 0].tolist() == list(range(start, start + 16))
    assert video[2, 0, 0, :].tolist() == list(range(start, start + 16))
    assert torch.equal(ids, released_mrope(backbone, prepared)[:, 0])
    assert int(ids[0, end]) - start == 113
    backbone.settings["rope_text_after_video"] = "hf"
    try:
        assert int(backbone.rope_index(prepared)[0, 0, end]) - start == 16
    finally:
        backbone.settings["rope_text_after_video"] = "official"


def _hidden(backbone, **inputs):
    with torch.no_grad():
        return backbone.model.model(**inputs).last_hidden_state[0]  # (L, 3584)


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_exactness_at_real_shape(name, real_clip):
    """fp32 at real width: dense splice == HF's own forward (LLaVA-Video: == the loop-built layout), and the
    pruned model == the masked reference, on the LLM's last hidden states (the LM head is per position)."""
    backbone = load_backbone(name, device="cpu", dtype="float32")
    frames = 4 if name == "real_shape_qwen25vl" else 2
    prepared = backbone.prepare(real_clip, PROMPT, frames=frames)
    vision = backbone.encode(prepared)
    dense = build_pruner("dense", 1.0)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
    got = _hidden(backbone, **backbone.splice(prepared, vision, dense))
    if name == "real_shape_llava_video":
        sequence, _, _, _ = llava_video_dense(backbone, prepared)
        torch.testing.assert_close(backbone.splice(prepared, vision, dense)["mm_encoder_outputs"]["video"]
                                   .pooler_output[0], sequence, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got, llava_video_masked_logits(backbone, prepared, dense, head=False),
                                   atol=1e-5, rtol=1e-5)
    elif name == "real_shape_qwen25vl":
        L = prepared.inputs["input_ids"].shape[1]
        positions = torch.cat([torch.arange(L).view(1, 1, L), released_mrope(backbone, prepared)])
        assert torch.equal(got, _hidden(backbone, **prepared.inputs, position_ids=positions))
    else:
        assert torch.equal(got, _hidden(backbone, **prepared.inputs))
    for pruner in ("uniform", "fastvid"):
        pruned = build_pruner(pruner, 0.25)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
        got = _hidden(backbone, **backbone.splice(prepared, vision, pruned))
        if name == "real_shape_llava_video":
            want = llava_video_masked_logits(backbone, prepared, pruned, head=False)
        else:
            want = masked_reference(backbone, prepared, vision, pruned, head=False)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_depth_settings():
    from sinktop_eval.backbones.real_shape import kept_full_attention, resolve_depths

    # the last k of the 7B's 32 blocks, full attention at 7 / 15 / 23 / 31
    assert kept_full_attention(2) == [1] and kept_full_attention(9) == [0, 8]
    assert kept_full_attention(32) == [7, 15, 23, 31]

    assert resolve_depths("real_shape_qwen25vl") == {"layers": 2, "vision_layers": 2}
    assert resolve_depths("real_shape_qwen25vl", layers=None, vision_layers="full") == {"layers": 28, "vision_layers": 32}
    assert resolve_depths("real_shape_llava_ov", layers=None, vision_layers=None) == {"layers": 28, "vision_layers": 26}
    with pytest.raises(ValueError, match=r"layers=0 is invalid for real_shape_llava_ov; allowed: 1..28 or null"):
        resolve_depths("real_shape_llava_ov", layers=0)
    with pytest.raises(ValueError, match=r"layers only apply to the real_shape_\* twins, not backbone='tiny_llava_ov'"):
        load_backbone("tiny_llava_ov", layers=2)
