"""The analytic prefill FLOPs formula against hand-computed values."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from sinktop_eval.backbones.flops import flops_per_token, prefill_flops

# Qwen2-7B, the LLM of LLaVA-OV-7B (and, with the same dims, of Qwen2.5-VL-7B)
QWEN2_7B = SimpleNamespace(hidden_size=3584, num_attention_heads=28, num_key_value_heads=4, head_dim=128,
                           intermediate_size=18944, num_hidden_layers=28, vocab_size=152064)


def test_per_token_flops_of_qwen2_7b():
    # per layer: q 3584*3584 + k,v 2*3584*512 + o 3584*3584 + mlp 3*3584*18944 = 233,046,016 MACs
    assert flops_per_token(QWEN2_7B) == 2 * 28 * 233_046_016
    assert flops_per_token(QWEN2_7B) / 1e9 == pytest.approx(13.05, abs=0.01)


def test_prefill_flops_tiny_by_hand():
    cfg = SimpleNamespace(hidden_size=8, num_attention_heads=2, num_key_value_heads=1, intermediate_size=16,
                          num_hidden_layers=3, vocab_size=10)  # head_dim = 4
    linear = 2 * (8 * 8 + 2 * 8 * 4 + 8 * 8 + 3 * 8 * 16)  # per token per layer
    S = 5
    attention = 2 * 2 * 4 * S * (S + 1)  # per layer, causal
    assert prefill_flops(cfg, S) == 3 * (S * linear + attention) + 2 * 8 * 10


def test_llava_ov_7b_dense_vs_pruned_scale():
    dense = prefill_flops(QWEN2_7B, 32 * 196 + 1 + 30)  # 32 frames + newline + ~30 text tokens
    pruned = prefill_flops(QWEN2_7B, 32 * 20 + 1 + 30)  # VisionZip r=0.1: 20 tokens per frame
    assert 85e12 < dense < 95e12 and 8e12 < pruned < 10e12
