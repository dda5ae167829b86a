"""SToP: the sink score and its two uses (STSP, STTP).

A *sink* is a spatial position that draws vision-encoder attention in every frame (typically a flat
background patch). Base pruners rank tokens by attention, so sinks survive pruning and crowd out the
fine-grained evidence; SToP measures "sinkness" once per position and corrects both tests with it.
"""
from __future__ import annotations

import math

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


# The one definition of a video's "sink positions", shared by the sink statistics and by attention
# redistribution, so that every number that says "sink" means the same set.
SINK_SET_TOP = 0.1


def sink_set(sink: Tensor, top: float = SINK_SET_TOP) -> Tensor:
    """Sink positions: the ceil(top * n) positions with the largest sink score s, positive s only.

    Why this definition: s (Eq. 4) is a property of the video alone, not of any pruner, so the same
    positions are counted for HoliTom with and without temporal merging (the paper's 384 -> 66) and
    for every stop mode; 10 % (20 of 196) is the paper's own size for its sink set (Fig. 4, Fig. 7's
    redistribution baseline). Positions with s = 0 carry no sink evidence and never count, so a video
    whose attention has no structure has an empty sink set. Ties go to the lower position.

    sink: (n,). Returns (n,) bool.
    """
    if sink.dim() != 1:
        raise ValueError(f"sink must have shape (n,); got {tuple(sink.shape)}")
    if not 0 < top <= 1:
        raise ValueError(f"top={top!r} is invalid; allowed: a fraction in (0, 1], e.g. 0.1")
    n = sink.shape[0]
    count = min(n, int(math.ceil(top * n - 1e-9)))
    values = sink.float()  # (n,)
    order = torch.sort(values, descending=True, stable=True).indices[:count]  # (count,)
    chosen = torch.zeros(n, dtype=torch.bool, device=sink.device)
    chosen[order] = True
    return chosen & (values > 0)
