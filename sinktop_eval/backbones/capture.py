"""Capturing one vision-encoder layer's attention without asking the model for attention weights.

Why not ``output_attentions``: it needs eager attention and returns every layer's full maps (SigLIP at
32 frames: ~1.1 GB per layer), and Qwen2.5-VL's vision attention returns none at all. Instead, forward
hooks on the ONE attention module keep its queries and keys; ``attention_received`` then recomputes
softmax(q·kᵀ·scale) in bounded chunks and reduces it straight to what the pruners need: the attention
each token receives (mean over heads and queries = column mean).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

# Upper bound on the float32 logits materialised at once (elements): 2**26 = 256 MB.
CHUNK_ELEMENTS = 1 << 26


@contextmanager
def hooks(*registrations: tuple[nn.Module, str, Callable[..., Any]]) -> Iterator[None]:
    """Register (module, kind, fn) hooks for the duration of the block; kind is "forward" or "pre".

    Hooks are called with kwargs (``with_kwargs=True``) and always removed, even when the forward fails.
    """
    handles = []
    try:
        for module, kind, fn in registrations:
            if kind == "forward":
                handles.append(module.register_forward_hook(fn, with_kwargs=True))
            elif kind == "pre":
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            else:  # pragma: no cover - programming error
                raise ValueError(f"hook kind {kind!r}; allowed: forward, pre")
        yield
    finally:
        for handle in handles:
            handle.remove()


def attention_received(query: Tensor, key: Tensor, scale: float, chunk_elements: int = CHUNK_ELEMENTS) -> Tensor:
    """Column mean of softmax(q·kᵀ·scale) over heads and queries, in float32.

    query, key: (B, H, S, d) for B independent sequences (frames / temporal slices).
    Returns (B, S): entry [b, j] is the attention key j receives, averaged over all heads and queries of
    sequence b (each row of the map sums to 1, so a row of the result sums to 1 too). Work is chunked
    over sequences and queries so at most ``chunk_elements`` logits exist at a time.
    """
    B, H, S, _ = query.shape
    received = torch.zeros(B, S, dtype=torch.float32, device=query.device)
    per_sequence = H * S * S
    seq_step = max(1, chunk_elements // max(per_sequence, 1))
    query_step = max(1, chunk_elements // max(H * S, 1)) if seq_step == 1 else S
    for b0 in range(0, B, seq_step):
        k = key[b0:b0 + seq_step].float()  # (b, H, S, d)
        for q0 in range(0, S, query_step):
            q = query[b0:b0 + seq_step, :, q0:q0 + query_step].float()  # (b, H, c, d)
            probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1)  # (b, H, c, S)
            received[b0:b0 + seq_step] += probs.sum(dim=(1, 2))
    return received / (H * S)
