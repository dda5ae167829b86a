"""HoliTom: merge temporally static positions over optimal windows, then prune spatially."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import (
    CHUNK_ELEMENTS,
    PruneOutput,
    Pruner,
    VideoTokens,
    ceil_count,
    density_peak_scores,
    pairwise_distance,
    top_k_mask,
)


def static_run_lengths(static_step: Tensor) -> Tensor:
    """run[t, i] = how many consecutive steps t, t+1, ... position i stays static.

    static_step: (T-1, n) bool, step t compares frames t and t+1. Returns (T-1, n) long.
    """
    run = torch.zeros(static_step.shape, dtype=torch.long, device=static_step.device)
    following = torch.zeros(static_step.shape[1:], dtype=torch.long, device=static_step.device)
    for t in range(static_step.shape[0] - 1, -1, -1):
        following = (following + 1) * static_step[t]
        run[t] = following
    return run


def window_savings(static_step: Tensor) -> list[list[int]]:
    """P[a][b] = |S(a, b)| * (b - a): tokens saved by merging the static positions of window [a, b].

    A position is static over [a, b] when it is static at every step a..b-1. Returns a T x T table
    (zero where b <= a).
    """
    T = static_step.shape[0] + 1
    run = static_run_lengths(static_step)  # (T-1, n)
    savings = [[0] * T for _ in range(T)]
    for a in range(T - 1):
        lengths = torch.arange(1, T - a, device=run.device).view(-1, 1)  # (T-1-a, 1) steps b - a
        counts = (run[a].view(1, -1) >= lengths).sum(dim=1).tolist()  # |S(a, a + steps)|
        for steps, count in enumerate(counts, start=1):
            savings[a][a + steps] = count * steps
    return savings


def optimal_windows(savings: list[list[int]], max_window: int = 1024) -> tuple[list[tuple[int, int]], int]:
    """Partition frames 0..T-1 into contiguous windows maximising total saving (dynamic programming).

    dp[i] = max(dp[i-1], max_{w=2..min(i+1, W)} dp[i-w] + P(i-w+1, i)). Ties keep the earlier option
    (a single frame before longer windows, shorter before longer). Returns ([(a, b), ...], R_tot).
    """
    T = len(savings)
    best = [0] * (T + 1)  # best[i + 1] = dp[i]; best[0] = dp[-1] = 0
    choice = [1] * (T + 1)
    for i in range(T):
        best[i + 1], choice[i + 1] = best[i], 1
        for w in range(2, min(i + 1, max_window) + 1):
            value = best[i + 1 - w] + savings[i - w + 1][i]
            if value > best[i + 1]:
                best[i + 1], choice[i + 1] = value, w
    windows, end = [], T
    while end > 0:
        w = choice[end]
        windows.append((end - w, end - 1))
        end -= w
    return windows[::-1], best[T]


# variant="release": the SToP release chooses static cluster centres by rho*delta - 0.3 * s, always.
RELEASE_CENTRE_PENALTY = 0.3


class HoliTomPruner(Pruner):
    """Temporal merging over DP-optimal windows, then attention pruning of dynamic tokens and
    density-peak merging of static ones at the rescaled ratio r' = min(r*N / (N - R_tot), 1).

    STTP: a position is static in a window when sim + mu_t*s > tau at every step (after r' is fixed,
    so HoliTom+SToP may keep fewer tokens). STSP: dynamic tokens are ranked by A - mu_s*s.
    Static centres: C = round(n_static * r') with Python's round (half to even), as the release does;
    a window that would otherwise keep nothing (every position static, C = 0 at a tiny ratio) keeps one
    centre, so no frame is left without a token.
    variant="release": centres chosen by rho*delta - 0.3 * s (the release's code-only term, always on).
    sink_handling="hard": a dropped token is never kept, and a position dropped in any frame of a window
    is not static there (it is missing from that frame); windows and r' still come from plain similarity.
    Output per window: static tokens (by position), then dynamic tokens frame by frame.
    """

    name = "holitom"
    uses_attention = True
    uses_temporal_test = True
    variants = ("paper", "release")

    def __init__(self, ratio, mu_s=0.0, mu_t=0.0, gamma=1.1, seed=0, *, tau: float = 0.8, beta: float = 0.6,
                 k: int = 7, max_window: int = 1024, **common):
        super().__init__(ratio, mu_s, mu_t, gamma, seed, **common)
        if not -1 <= tau <= 1:
            raise ValueError(f"tau={tau!r} is invalid; allowed: a cosine threshold in [-1, 1] (paper: 0.8)")
        if not 0 <= beta <= 1:
            raise ValueError(f"beta={beta!r} is invalid; allowed: a number in [0, 1] (paper: 0.6)")
        if not (isinstance(max_window, int) and max_window >= 1):
            raise ValueError(f"max_window={max_window!r} is invalid; allowed: an integer >= 1 (paper: 1024)")
        self.tau, self.beta, self.k, self.max_window = float(tau), float(beta), int(k), max_window

    def describe(self):
        return {**super().describe(), "tau": self.tau, "beta": self.beta}

    def _prune(self, video: VideoTokens) -> PruneOutput:
        X = video.features  # (T, n, D)
        T, n, D = X.shape
        N = T * n
        similarity = same_position_similarity(X)  # (T-1, n) same position, consecutive frames
        windows, saved = optimal_windows(window_savings(similarity > self.tau), self.max_window)
        r_prime = min(self.ratio * N / (N - saved), 1.0)
        static_step = self.redundancy(similarity, video) > self.tau  # (T-1, n), STTP-corrected
        importance = self.importance(video)  # (T, n), -inf at hard-dropped tokens
        dropped = video.dropped  # (T, n) or None

        tokens, index = [], []
        static_total = 0
        for a, b in windows:
            static = static_step[a:b].all(dim=0) if b > a else torch.zeros(n, dtype=torch.bool, device=X.device)  # (n,)
            if dropped is not None:
                static = static & ~dropped[a:b + 1].any(dim=0)  # (n,)
            n_static = int(static.sum())
            static_total += n_static
            n_dynamic = n - n_static
            if n_static:
                positions = torch.nonzero(static).squeeze(1)  # (n_static,)
                merged = X[a:b + 1, positions].float().mean(dim=0)  # (n_static, D)
                centres = round(n_static * r_prime)  # half to even, like the release's round()
                if centres == 0 and n_dynamic == 0:
                    centres = 1  # the window's only tokens: keep one rather than none
                sink = video.sink.float()[positions] if self.variant == "release" else None  # (n_static,)
                merged, centre_pos = self._cluster_static(merged, positions, centres, sink)
                tokens.append(merged.to(X.dtype))
                index.append(a * n + centre_pos)
            if n_dynamic:
                keep_count = ceil_count(n_dynamic * r_prime)
                scores = importance[a:b + 1].masked_fill(static, float("-inf"))  # (L, n)
                keep = top_k_mask(scores, keep_count)  # (L, n)
                if dropped is not None:
                    keep &= ~dropped[a:b + 1]  # (L, n)
                flat = torch.nonzero(keep.reshape(-1)).squeeze(1) + a * n  # frame by frame, raster
                tokens.append(X.reshape(N, D).index_select(0, flat))
                index.append(flat)

        info = {"windows": windows, "saved": saved, "r_prime": r_prime, "static_positions": static_total}
        return PruneOutput(torch.cat(tokens), torch.cat(index), info)

    def _cluster_static(self, merged: Tensor, positions: Tensor, centres: int,
                        sink: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Density-peak centres among the window's static tokens; members join the nearest centre.

        centre' = beta*centre + (1-beta)*mean(members). merged: (m, D) float32; sink: (m,) for the release
        variant's centre penalty. Returns ((C, D), (C,)).
        """
        m = merged.shape[0]
        if centres <= 0:
            return merged[:0], positions[:0]
        if centres >= m:
            return merged, positions
        dist = pairwise_distance(merged.unsqueeze(0))  # (1, m, m)
        score = density_peak_scores(dist, min(self.k, centres))[0]  # (m,)
        if sink is not None:
            score = score - RELEASE_CENTRE_PENALTY * sink  # (m,)
        is_centre = top_k_mask(score, centres)  # (m,)
        centre_rows = torch.nonzero(is_centre).squeeze(1)  # ascending = by position
        member_rows = torch.nonzero(~is_centre).squeeze(1)
        nearest = dist[0][member_rows][:, centre_rows].argmin(dim=-1)  # (m - C,)
        sums = torch.zeros(centres, merged.shape[1], dtype=merged.dtype, device=merged.device)
        sums.index_add_(0, nearest, merged.index_select(0, member_rows))
        counts = torch.bincount(nearest, minlength=centres).to(merged.dtype).unsqueeze(1)
        centre_X = merged.index_select(0, centre_rows)
        updated = self.beta * centre_X + (1 - self.beta) * sums / counts.clamp_min(1.0)
        return torch.where(counts > 0, updated, centre_X), positions[centre_rows]


def same_position_similarity(X: Tensor) -> Tensor:
    """(T-1, n) cos(X[t, i], X[t+1, i]) in float32, without a normalised copy of the video.

    Norms once per token and one fused dot product per pair of consecutive frames (chunks of frames),
    so the features are read about three times and never copied; zero vectors have similarity 0.
    """
    T, n, D = X.shape
    out = torch.empty(max(T - 1, 0), n, dtype=torch.float32, device=X.device)  # (T-1, n)
    if T < 2:
        return out
    norms = torch.linalg.vector_norm(X.float(), dim=-1).clamp_min_(1e-12)  # (T, n)
    step = max(1, CHUNK_ELEMENTS // max(1, n * D))
    for first in range(0, T - 1, step):
        last = min(T - 1, first + step)
        a, b = X[first:last].float(), X[first + 1:last + 1].float()  # (c, n, D) views for float32 input
        out[first:last] = torch.linalg.vecdot(a, b, dim=-1)  # (c, n)
    return out.div_(norms[:-1] * norms[1:])  # (T-1, n)
