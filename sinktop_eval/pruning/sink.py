"""SToP: the sink score and its two uses (STSP, STTP).

A *sink* is a spatial position that draws vision-encoder attention in every frame (typically a flat
background patch). Base pruners rank tokens by attention, so sinks survive pruning and crowd out the
fine-grained evidence; SToP measures "sinkness" once per position and corrects both tests with it.
"""
from __future__ import annotations

import torch
from torch import Tensor


def sink_score(attn: Tensor, gamma: float = 1.1) -> Tensor:
    """Per-position sink score s in [0, 1], shared by all frames.

    s_i = min-max normalisation over i of (mean_t A[t, i]) ** gamma; s = 0 when all positions are equal
    (no sink evidence). Computed in float32 and returned in ``attn``'s dtype and device.

    attn: (T, n) attention each token receives (non-negative). Returns (n,).
    """
    if attn.dim() != 2:
        raise ValueError(f"attn must have shape (T, n); got {tuple(attn.shape)}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0; got {gamma}")
    powered = attn.float().mean(dim=0).clamp_min(0.0).pow(gamma)  # (n,)
    low, high = powered.min(), powered.max()
    span = high - low
    if not span > 0:  # constant attention (or a single position): nothing stands out
        return torch.zeros_like(powered).to(attn.dtype)
    return ((powered - low) / span).to(attn.dtype)


def sink_aware_importance(attn: Tensor, sink: Tensor | None, mu_s: float) -> Tensor:
    """STSP: the ranking signal A - mu_s * s, or A itself (bit-identical) when SToP is off.

    attn: (T, n); sink: (n,). Returns (T, n) float32.
    """
    importance = attn.float()
    if mu_s == 0 or sink is None:
        return importance
    return importance - mu_s * sink.float().unsqueeze(0)


def sink_aware_similarity(similarity: Tensor, sink: Tensor | None, mu_t: float) -> Tensor:
    """STTP: the temporal-redundancy signal sim + mu_t * s, or sim itself when SToP is off.

    similarity: (..., n) same-position similarities between consecutive frames; sink: (n,).
    """
    if mu_t == 0 or sink is None:
        return similarity
    return similarity + mu_t * sink.float()
