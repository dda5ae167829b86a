"""Sink statistics of one prune: how many kept tokens sit at the video's sink positions, and how often each
position is kept (paper Fig. 2b's per-position histogram, Fig. 4's "sink tokens selected": HoliTom
384 -> 66 with temporal pruning). Pure functions; every value is JSON-friendly (ints, floats, lists).

The sink set is defined once, in ``sink.sink_set``: the ceil(10 % * n) positions with the largest SToP
sink score s (Eq. 4, gamma = 1.1), ties to the lower position, positions with s = 0 excluded. It depends
on the video's attention only, so every pruner and stop mode is counted against the same positions.

A kept token "sits" at the position its ``PruneOutput.index`` names (t * n + i): a merged token counts
once, at its anchor / centre / target, whatever it absorbed; a HoliTom or PruneVid static token counts
once, in the first frame of its window (the paper's point: temporal merging keeps far fewer sink tokens).
Duplicate picks (FlashVID) count as often as they are kept.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from .sink import SINK_SET_TOP, sink_score, sink_set


def sink_statistics(attn_or_sink: Tensor, index: Tensor, T: int, n: int, *, top: float = SINK_SET_TOP,
                    gamma: float = 1.1) -> dict[str, Any]:
    """Sink statistics of one video's prune output.

    attn_or_sink: the (T, n) attention the pruner saw (the sink score is computed from it) or a
    precomputed (n,) sink score; index: (k,) ``PruneOutput.index``. Returns
      sink_set: how the set was chosen (one line), sink_positions: sorted positions, frames: T,
      tokens_per_frame: n, kept_tokens: k, kept_at_sink: kept tokens at sink positions, dense_at_sink:
      T * |sink set| (the unpruned count), selection_frequency: (n,) list, the fraction of the T frames in
      which a kept token stands at each position.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1 or isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"T={T!r}, n={n!r} are invalid; allowed: integers >= 1")
    if attn_or_sink.dim() == 2:
        if tuple(attn_or_sink.shape) != (T, n):
            raise ValueError(f"attention must have shape (T, n) = ({T}, {n}); got {tuple(attn_or_sink.shape)}")
        sink = sink_score(attn_or_sink.float(), gamma)  # (n,)
    elif attn_or_sink.dim() == 1 and attn_or_sink.shape[0] == n:
        sink = attn_or_sink.float()  # (n,)
    else:
        raise ValueError(f"attn_or_sink must be the (T, n) = ({T}, {n}) attention or an (n,) sink score; "
                         f"got {tuple(attn_or_sink.shape)}")
    flat = index.reshape(-1).long().cpu()  # (k,)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= T * n):
        raise ValueError(f"index values must lie in [0, T*n) = [0, {T * n}); got {int(flat.min())}..{int(flat.max())}")
    zone = sink_set(sink.cpu(), top)  # (n,) bool
    positions, frames = flat % n, flat // n  # (k,), (k,)
    seen = torch.zeros(T, n, dtype=torch.bool)
    seen[frames, positions] = True  # (T, n): a kept token stands at (t, i)
    frequency = seen.float().mean(dim=0)  # (n,)
    return {
        "sink_set": f"top {top:g} of positions by sink score s (gamma={gamma:g}), s > 0",
        "sink_positions": torch.nonzero(zone).flatten().tolist(),
        "frames": T,
        "tokens_per_frame": n,
        "kept_tokens": int(flat.numel()),
        "kept_at_sink": int(zone[positions].sum()),
        "dense_at_sink": T * int(zone.sum()),
        "selection_frequency": frequency.tolist(),
    }


def summarise_sink_statistics(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One run's summary of per-video ``sink_statistics`` records.

    Totals and per-video means of kept_at_sink / dense_at_sink / kept_tokens, the share of kept tokens
    that sit at sink positions, and the frame-weighted mean selection frequency per position (None when
    the videos have different numbers of tokens per frame, e.g. Qwen2.5-VL grids, where positions differ).
    """
    records = list(records)
    if not records:
        return {"videos": 0}
    kept = sum(r["kept_tokens"] for r in records)
    at_sink = sum(r["kept_at_sink"] for r in records)
    dense = sum(r["dense_at_sink"] for r in records)
    grids = {r["tokens_per_frame"] for r in records}
    frequency = None
    if len(grids) == 1:
        frames = sum(r["frames"] for r in records)
        n = grids.pop()
        frequency = [sum(r["selection_frequency"][i] * r["frames"] for r in records) / frames for i in range(n)]
    return {
        "videos": len(records),
        "kept_tokens": kept,
        "kept_at_sink": at_sink,
        "dense_at_sink": dense,
        "kept_at_sink_per_video": at_sink / len(records),
        "dense_at_sink_per_video": dense / len(records),
        "sink_share_of_kept": at_sink / kept if kept else 0.0,
        "selection_frequency": frequency,
    }
