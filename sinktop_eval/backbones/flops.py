"""Analytic LLM prefill FLOPs: the cost a visual-token pruner actually reduces.

For a decoder with L layers, width d, h query heads and g key/value heads of size d_h, MLP width f
(gated: gate, up, down) and vocabulary V, prefilling S tokens costs

    FLOPs(S) = L * [ S * 2 * (d*h*d_h + 2*d*g*d_h + h*d_h*d + 3*d*f)     # q, k, v, o and MLP matmuls
                     + 2 * h * d_h * S * (S + 1) ]                        # q·kᵀ and attn·v, causal half
               + 2 * d * V                                               # LM head, last position only

(a multiply-add counts 2 FLOPs; q·kᵀ and attn·v each cost 2*h*d_h per (query, key) pair and a causal
prefill has S(S+1)/2 pairs). Norms, rotary, softmax, biases and activations are left out (<0.1%).
Qwen2-7B (LLaVA-OV-7B's LLM): 13.05 GFLOPs per token + attention; 6,300 tokens ≈ 90 TFLOPs.
The vision encoder is not counted: post-encoder pruning does not reduce it.
"""
from __future__ import annotations

from typing import Any

FORMULA = "L*(S*2*(d*h*dh + 2*d*g*dh + h*dh*d + 3*d*f) + 2*h*dh*S*(S+1)) + 2*d*V"


def _text_dims(text_config: Any) -> dict[str, int]:
    d = int(text_config.hidden_size)
    h = int(text_config.num_attention_heads)
    g = int(getattr(text_config, "num_key_value_heads", None) or h)
    dh = int(getattr(text_config, "head_dim", None) or d // h)
    return {"L": int(text_config.num_hidden_layers), "d": d, "h": h, "g": g, "dh": dh,
            "f": int(text_config.intermediate_size), "V": int(text_config.vocab_size)}


def flops_per_token(text_config: Any) -> float:
    """Matmul FLOPs of one token through all decoder layers (no attention-score term)."""
    k = _text_dims(text_config)
    per_layer = 2 * (k["d"] * k["h"] * k["dh"] + 2 * k["d"] * k["g"] * k["dh"] + k["h"] * k["dh"] * k["d"]
                     + 3 * k["d"] * k["f"])
    return float(k["L"] * per_layer)


def prefill_flops(text_config: Any, seq_len: int) -> float:
    """FLOPs to prefill ``seq_len`` tokens (see the module docstring for the formula)."""
    k = _text_dims(text_config)
    S = int(seq_len)
    attention = 2 * k["h"] * k["dh"] * S * (S + 1)
    return float(flops_per_token(text_config) * S + k["L"] * attention + 2 * k["d"] * k["V"])
