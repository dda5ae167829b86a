"""PruneVid's pre-LLM stage, as ported into the SToP release (the paper's PruneVid row).

Specification: shared/docs/specs/prunevid.md (PruneVid, ACL 2025, arXiv 2412.16117). Feature-only: no
attention, so no SToP term applies. Per video:
1. Temporal segmentation: DPC-kNN on the T frame-mean tokens into floor(T * 0.25) clusters (k = 7),
   refined into contiguous runs (``refine_labels``); windows are the runs.
2. Per window of w >= 2 frames, a position is static when the mean cosine over all pairs of distinct
   frames exceeds tau = 0.8; static positions become one token each (their mean over the window).
   A one-frame window has no static positions.
3. Budget-matched cluster ratio rho_w = min(r*n*w / (|S| + (n - |S|)*w) + 0.005, 1): the static set and
   each frame's dynamic set are clustered by DPC-kNN into floor(size * rho_w) clusters (at least one)
   when they hold more than 14 tokens, else kept as they are; a cluster is the plain mean of its members.
Output per window: static tokens, then each frame's dynamic tokens. Clustered sets are listed by
centre score rank (the order the release hands them to the LLM), unclustered ones in raster order. A
token stands at its centre's position (static tokens: the window's first frame), which the official
code does not track.

Differences from the port, on purpose: any grid (the port hard-codes 14x14 and crashes on 169 tokens);
the temporal cluster count uses the video's own T (the port uses its configured frame count); DPC ties
are deterministic (no random noise); rho_w and the counts use exact decimal arithmetic; a set to
cluster never gets 0 clusters (the port would crash there). The official in-LLM stage 2 (attention-
based pruning at an LLM layer with KV-cache rewriting) is not part of the port and is not here.
"""
from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor

from .base import PruneOutput, Pruner, VideoTokens, cluster_sums, density_peak_clusters


def refine_labels(labels: list[int]) -> list[int]:
    """Make cluster labels along time contiguous (PruneVid's refinement).

    For each label, its longest run(s) of consecutive frames are kept (every run of that longest length)
    and its other runs are released; a label whose longest run is a single frame is released entirely.
    Each maximal run of released frames then takes the label of the longer neighbouring run (left or
    right, ties to the left), or 0 when it has no neighbour. Scanning left to right, a run is relabelled
    before the next one is looked at.
    """
    N = len(labels)
    runs: dict[int, list[tuple[int, int]]] = {}
    start = 0
    for i in range(1, N + 1):
        if i == N or labels[i] != labels[start]:
            runs.setdefault(labels[start], []).append((start, i - 1))
            start = i
    refined: list[int | None] = list(labels)
    for spans in runs.values():
        longest = max(b - a + 1 for a, b in spans)
        for a, b in spans:
            if longest == 1 or b - a + 1 != longest:
                refined[a:b + 1] = [None] * (b - a + 1)
    i = 0
    while i < N:
        if refined[i] is not None:
            i += 1
            continue
        start = i
        while i < N and refined[i] is None:
            i += 1
        end = i - 1
        left = right = None
        left_len = right_len = 0
        if start > 0:
            left, j = refined[start - 1], start - 1
            while j >= 0 and refined[j] == left:
                j -= 1
            left_len = start - j - 1
        if end < N - 1:
            right, j = refined[end + 1], end + 1
            while j < N and refined[j] == right:
                j += 1
            right_len = j - end - 1
        if left_len > right_len:
            label = left
        elif right_len > left_len:
            label = right
        else:
            label = left if left is not None else right
        refined[start:end + 1] = [0 if label is None else label] * (end - start + 1)
    return refined  # type: ignore[return-value]


def label_windows(labels: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of equal labels as inclusive (first, last) frame windows."""
    windows, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            windows.append((start, i - 1))
            start = i
    return windows


def static_positions(window: Tensor, tau: float) -> Tensor:
    """(w, n, D) -> (n,) bool: mean cosine over all ordered pairs of distinct frames > tau.

    sum_{a != b} cos(x_a, x_b) = |sum_a u_a|^2 - sum_a |u_a|^2 with u the unit vectors (|u|^2 = 1, as the
    release subtracts), accumulated frame by frame, so only (n, D) is held. One frame: no pairs, nothing
    is static.
    """
    w, n, _ = window.shape
    if w < 2:
        return torch.zeros(n, dtype=torch.bool, device=window.device)  # (n,)
    total = torch.zeros(window.shape[1:], dtype=torch.float32, device=window.device)  # (n, D) sum of unit vectors
    self_sim = torch.zeros(n, dtype=torch.float32, device=window.device)  # (n,) sum of |u_a|^2: 1 per nonzero token
    for t in range(w):
        frame = window[t].float()  # (n, D)
        norm = torch.linalg.vector_norm(frame, dim=-1)  # (n,)
        total.addcmul_(frame, (1.0 / norm.clamp_min(1e-12)).unsqueeze(-1))  # (n, D) += unit vectors, no copy
        self_sim += (norm > 0).float()
    pairs = ((total * total).sum(dim=-1) - self_sim) / (w * (w - 1))  # (n,)
    return pairs > tau


def cluster_ratio(ratio: float, n: int, w: int, n_static: int, slack: float = 0.005) -> Fraction:
    """rho_w = min(r*n*w / (|S| + (n - |S|)*w) + slack, 1), exact: each window keeps about r*n*w tokens."""
    return min(Fraction(str(ratio)) * n * w / (n_static + (n - n_static) * w) + Fraction(str(slack)), Fraction(1))


class PruneVidPruner(Pruner):
    """PruneVid stage 1 (SToP's port): see the module docstring and prunevid.md. Feature-only, no SToP.

    ``info``: windows (first, last), static positions and rho_w per window, kept count.
    """

    name = "prunevid"

    def __init__(self, ratio, mu_s=0.0, mu_t=0.0, gamma=1.1, seed=0, *, temporal_ratio: float = 0.25,
                 temporal_k: int = 7, tau: float = 0.8, spatial_k: int = 7, min_size: int = 14, slack: float = 0.005,
                 **common):
        super().__init__(ratio, mu_s, mu_t, gamma, seed, **common)
        if not 0 < temporal_ratio <= 1:
            raise ValueError(f"temporal_ratio={temporal_ratio!r} is invalid; allowed: a fraction in (0, 1] (PruneVid: 0.25)")
        if not -1 <= tau <= 1:
            raise ValueError(f"tau={tau!r} is invalid; allowed: a cosine threshold in [-1, 1] (PruneVid: 0.8)")
        for key, value in (("temporal_k", temporal_k), ("spatial_k", spatial_k)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{key}={value!r} is invalid; allowed: an integer >= 1 (PruneVid: 7)")
        if not (isinstance(min_size, int) and min_size >= 0):
            raise ValueError(f"min_size={min_size!r} is invalid; allowed: an integer >= 0 (PruneVid: 14)")
        if not 0 <= slack < 1:
            raise ValueError(f"slack={slack!r} is invalid; allowed: a number in [0, 1) (SToP port: 0.005)")
        self.temporal_ratio, self.temporal_k, self.tau = float(temporal_ratio), temporal_k, float(tau)
        self.spatial_k, self.min_size, self.slack = spatial_k, min_size, float(slack)

    def describe(self):
        return {**super().describe(), "temporal_ratio": self.temporal_ratio, "tau": self.tau,
                "min_size": self.min_size, "slack": self.slack}

    def _prune(self, video: VideoTokens) -> PruneOutput:
        X = video.features  # (T, n, D)
        T, n, D = X.shape
        device = X.device
        clusters = max(1, min(T, math.floor(Fraction(str(self.temporal_ratio)) * T)))
        _, labels = density_peak_clusters(X.float().mean(dim=1).unsqueeze(0), clusters, self.temporal_k)  # (1, T)
        windows = label_windows(refine_labels(labels[0].tolist()))

        tokens, index, statics, ratios = [], [], [], []
        for a, b in windows:
            w = b - a + 1
            static = static_positions(X[a:b + 1], self.tau)  # (n,)
            n_static = int(static.sum())
            rho = cluster_ratio(self.ratio, n, w, n_static, self.slack)
            statics.append(n_static)
            ratios.append(float(rho))
            if n_static:
                rows = torch.nonzero(static).squeeze(1)  # (n_static,)
                merged = torch.zeros(n_static, D, dtype=torch.float32, device=device)  # (n_static, D)
                for t in range(a, b + 1):  # mean over the window, one frame at a time
                    merged += X[t, rows].float()  # (n_static, D)
                merged /= w
                out, at = self._cluster(merged.unsqueeze(0), rows.unsqueeze(0), rho)
                tokens.append(out[0])
                index.append(a * n + at[0])
            if n_static < n:
                rows = torch.nonzero(~static).squeeze(1)  # (n_dynamic,)
                for first in range(a, b + 1, 8):  # at most 8 frames at a time bounds the extra memory
                    last = min(b, first + 7)
                    dynamic = X[first:last + 1][:, rows]  # (f, n_dynamic, D)
                    out, at = self._cluster(dynamic, rows.expand(last - first + 1, -1), rho)
                    frames = torch.arange(first, last + 1, device=device).view(-1, 1) * n  # (f, 1)
                    tokens.extend(out)
                    index.extend(at + frames)
        info = {"windows": windows, "static_positions": statics, "cluster_ratios": ratios}
        flat_tokens = torch.cat([t.reshape(-1, D) for t in tokens]).to(X.dtype)  # (k, D)
        flat_index = torch.cat([i.reshape(-1) for i in index])  # (k,)
        info["kept"] = int(flat_index.numel())
        return PruneOutput(flat_tokens, flat_index, info)

    def _cluster(self, x: Tensor, positions: Tensor, rho: Fraction) -> tuple[Tensor, Tensor]:
        """Each of B sets (B, m, D) with m > min_size -> floor(m * rho) (>= 1) plain-mean clusters listed by
        centre rank, standing at the centres' positions; smaller sets are returned as they are.
        positions: (B, m). Returns ((B, C, D) float32, (B, C))."""
        B, m, _ = x.shape
        if m <= self.min_size:
            return x.float(), positions
        count = max(1, math.floor(m * rho))
        centres, assignment = density_peak_clusters(x, count, self.spatial_k)  # (B, C), (B, m)
        sums, members = cluster_sums(x, assignment, count)  # (B, C, D), (B, C, 1)
        means = sums / members.clamp_min(1.0)  # (B, C, D); no empty cluster: a centre joins itself
        return means, torch.gather(positions, 1, centres)  # (B, C, D), (B, C)
