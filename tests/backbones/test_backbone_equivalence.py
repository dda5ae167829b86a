"""Splicing is exact: dense splice == the unpatched HF model; pruned splice == an independent masked reference.

The reference never goes through ``splice``: it is the plain HF forward on the UNPRUNED sequence (the
model runs its own vision tower), with the dropped visual tokens masked out as keys and every kept
token at the position the pruned sequence gives it — for Qwen2.5-VL the original M-RoPE ids by the
released rule, built from the grid by ``references.released_mrope``; for LLaVA-OV the contiguous
renumbering (cumsum of the mask). LLaVA-Video has its own file (its layout is not HF's).
"""
from __future__ import annotations

import pathlib
import sys

import pytest
import torch

from sinktop_eval.pruning import build_pruner

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from references import masked_reference  # noqa: E402

TWINS = ("tiny_qwen25vl", "tiny_llava_ov")


def _logits(model, **inputs):
    with torch.no_grad():
        return model(**inputs).logits[0]  # (L, V)


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("video", ["clip", "wide_clip"])
def test_dense_splice_reproduces_unpatched_logits_exactly(name, video, twins, request):
    backbone = twins[name]
    prepared = backbone.prepare(request.getfixturevalue(video), "Is there a red square?", frames=16)
    vision = backbone.encode(prepared)
    dense = build_pruner("dense", 1.0)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
    spliced = backbone.splice(prepared, vision, dense)
    assert spliced["input_ids"].shape == prepared.inputs["input_ids"].shape
    reference = _logits(backbone.model, **prepared.inputs)  # plain HF forward, its own vision pass
    assert torch.equal(_logits(backbone.model, **spliced), reference)


@pytest.mark.parametrize("name", TWINS)
def test_dense_generation_matches_unpatched_generate(name, twins, clip):
    """On this clip Qwen's two text-after-video rules agree (8 slices 1 id apart, 8x8 tokens), so the
    unpatched generate is the reference; test_qwen_rope.py covers a clip where they differ."""
    backbone = twins[name]
    out = backbone.generate(clip, "Is there a red square?", pruner=None, frames=16, max_new_tokens=6)
    prepared = backbone.prepare(clip, "Is there a red square?", frames=16)
    with torch.no_grad():
        plain = backbone.model.generate(**prepared.inputs, generation_config=backbone._greedy(6))
    assert out.token_ids == plain[0, prepared.inputs["input_ids"].shape[1]:].tolist()
    assert out.stats["kept_visual_tokens"] == out.stats["dense_visual_tokens"]


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("pruner", ["random", "uniform", "fastvid"])
def test_pruned_logits_equal_masked_reference(name, pruner, twins, encoded):
    """r = 0.25: random / uniform keep original features; FastVID merges (and keeps index order)."""
    backbone = twins[name]
    prepared, vision = encoded[name]
    _check_pruned(backbone, prepared, vision, pruner)


@pytest.mark.parametrize("pruner", ["uniform", "fastvid"])
def test_qwen_pruned_logits_equal_masked_reference_on_a_long_clip(pruner, twins, long_clip):
    """Where the video's time ids outrun its spatial extent, so the text-after-video rule matters."""
    backbone = twins["tiny_qwen25vl"]
    prepared = backbone.prepare(long_clip, "What moves?", frames=16)
    _check_pruned(backbone, prepared, backbone.encode(prepared), pruner)


def _check_pruned(backbone, prepared, vision, pruner):
    pruned = build_pruner(pruner, 0.25, seed=1)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
    assert torch.all(pruned.index[1:] > pruned.index[:-1]), "the reference needs tokens in index order"
    assert len(pruned) < vision.num_tokens // 2
    spliced = backbone.splice(prepared, vision, pruned)
    got = _logits(backbone.model, **spliced)
    want = masked_reference(backbone, prepared, vision, pruned)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TWINS)
def test_generation_is_plain_greedy_over_the_spliced_sequence(name, twins, encoded, clip, monkeypatch):
    """Checkpoint sampling / penalty settings are ignored, and decoding continues every position row by +1:
    generate() equals a hand-written argmax loop with a KV cache over the pruned sequence."""
    backbone = twins[name]
    config = backbone.model.generation_config
    for field, value in {"do_sample": True, "temperature": 0.1, "top_k": 1, "top_p": 0.001,
                         "repetition_penalty": 1.5, "no_repeat_ngram_size": 2}.items():
        monkeypatch.setattr(config, field, value)  # like Qwen2.5-VL-7B-Instruct's generation_config
    prepared, vision = encoded[name]
    pruner = build_pruner("random", 0.25, seed=2)
    out = backbone.generate(clip, prepared.prompt, pruner=pruner, frames=16, max_new_tokens=8)
    spliced = backbone.splice(prepared, vision, pruner(vision.features, vision.attn, keys=vision.keys, grid=vision.grid))
    positions, tokens = spliced["position_ids"], []
    with torch.no_grad():
        step = backbone.model(**spliced, use_cache=True)
        while len(tokens) < 8:
            tokens.append(int(step.logits[0, -1].argmax()))
            if tokens[-1] in config.eos_token_id:
                break
            positions = positions[..., -1:] + 1
            step = backbone.model(input_ids=torch.tensor([[tokens[-1]]]), position_ids=positions,
                                  past_key_values=step.past_key_values, use_cache=True)
    assert out.token_ids == tokens
