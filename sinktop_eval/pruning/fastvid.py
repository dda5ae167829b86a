"""FastVID: dynamic temporal segmentation, salient tokens by attention, density-peak context anchors."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import (
    PruneOutput,
    Pruner,
    VideoTokens,
    cosine_normalise,
    density_peak_scores,
    floor_count,
    pairwise_distance,
    top_k_mask,
)


def dyseg_segments(frame_similarity: Tensor, c: int, tau: float) -> list[int]:
    """DySeg: segment lengths for T frames from the T-1 consecutive-frame similarities.

    Cut after the c-1 least similar transitions (ties: the earlier transition) and after every
    transition with similarity < tau. With T-1 <= c-1 every transition is a cut.
    """
    transitions = frame_similarity.shape[0]
    lowest = torch.sort(frame_similarity.float().cpu(), stable=True).indices[: max(0, c - 1)].tolist()
    below = torch.nonzero(frame_similarity.float().cpu() < tau).flatten().tolist()
    cuts = sorted(set(lowest) | set(below))
    bounds = [-1] + cuts + [transitions]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:])]


def fastvid_budget(ratio: float, n: int, d: float) -> tuple[int, int]:
    """(salient R_s, context R_c) tokens per frame: R = floor(n*r) (at least 1), R_c = floor(R*d)."""
    per_frame = max(1, floor_count(n * ratio))
    context = floor_count(per_frame * d)
    return per_frame - context, context


def anchor_frames(length: int, p: int) -> list[int]:
    """Anchor frames of a segment, counted back from its last frame: (L-1-j) mod p == 0."""
    return [j for j in range(length) if (length - 1 - j) % p == 0]


# The SToP release's code-only anchor penalty (variant="release", only when mu_s != 0): anchors are
# chosen by rho*delta - RELEASE_ANCHOR_PENALTY * s. The release subtracts it once for every frame's
# scores and then *again* inside its multi-frame branch, so anchors of segments of two or more frames
# are chosen by rho*delta - 2 * 0.3 * s (checked by running the release's block on identical tensors).
RELEASE_ANCHOR_PENALTY = 0.3


class FastVIDPruner(Pruner):
    """Per frame R_s salient tokens by A (STSP: A - mu_s*s); per segment, anchor frames spend the
    segment's context budget on density-peak anchors among their non-salient tokens, and every
    non-salient token of the segment joins, in EACH anchor frame, that frame's most cosine-similar anchor
    (so a token contributes to one anchor per anchor frame, as the release and algorithms.md do).
    Output: salient tokens and anchors, ordered by original position.

    DySeg uses ``frame_features`` (e.g. a pooled vision output) when given, else each frame's mean token;
    ``info["global_feature"]`` records which.

    Known difference from the release, left as the spec says: for p <= 2 the release treats an anchor
    frame whose anchor count equals R_c (e.g. p = 1, or p = 2 with L = 3 and R_c = 1) as a one-frame
    segment that merges only its own tokens; with the paper's p = 4 this never happens.
    """

    name = "fastvid"
    uses_attention = True
    variants = ("paper", "release")

    def __init__(self, ratio, mu_s=0.0, mu_t=0.0, gamma=1.1, seed=0, *, c: int = 8, tau_seg: float = 0.9,
                 d: float = 0.4, p: int = 4, beta: float = 0.6, k: int = 4, **common):
        super().__init__(ratio, mu_s, mu_t, gamma, seed, **common)
        if not (isinstance(c, int) and c >= 1):
            raise ValueError(f"c={c!r} is invalid; allowed: an integer >= 1 (paper: 8)")
        if not (isinstance(p, int) and p >= 1):
            raise ValueError(f"p={p!r} is invalid; allowed: an integer >= 1 (paper: 4)")
        if not 0 <= d < 1:
            raise ValueError(f"d={d!r} is invalid; allowed: a number in [0, 1) (paper: 0.4)")
        if not 0 <= beta <= 1:
            raise ValueError(f"beta={beta!r} is invalid; allowed: a number in [0, 1] (paper: 0.6)")
        self.c, self.tau_seg, self.d, self.p, self.beta, self.k = c, float(tau_seg), float(d), p, float(beta), int(k)

    def describe(self):
        return {**super().describe(), "c": self.c, "tau_seg": self.tau_seg, "d": self.d, "p": self.p, "beta": self.beta}

    def _prune(self, video: VideoTokens) -> PruneOutput:
        X = video.features  # (T, n, D)
        T, n, D = X.shape
        device = X.device
        R_s, R_c = fastvid_budget(self.ratio, n, self.d)
        survivors = n - video.dropped_per_frame
        if survivors < R_s:
            raise ValueError(f"hard_k={self.hard_k} leaves {survivors} tokens per frame, fewer than the {R_s} "
                             f"salient tokens FastVID keeps at ratio={self.ratio}; lower hard_k")

        uses_global = video.frame_features is not None
        g = cosine_normalise(video.frame_features if uses_global else X.float().mean(dim=1))  # (T, D_g)
        segments = dyseg_segments((g[:-1] * g[1:]).sum(dim=-1), self.c, self.tau_seg)

        salient = top_k_mask(self.importance(video), R_s)  # (T, n)
        flat_X = X.reshape(T * n, D)  # (T*n, D) view
        kept_index = [torch.nonzero(salient.reshape(-1)).squeeze(1)]  # (T*R_s,)
        kept_tokens = [flat_X.index_select(0, kept_index[0])]  # (T*R_s, D)

        context = ~salient if video.dropped is None else ~salient & ~video.dropped  # (T, n) mergeable tokens
        m = survivors - R_s  # non-salient tokens per frame
        if R_c > 0 and m > 0:
            nonsalient = torch.nonzero(context, as_tuple=False)[:, 1].view(T, m)  # (T, m) positions, raster
            nonsalient_flat = nonsalient + (torch.arange(T, device=device) * n).view(T, 1)  # (T, m)
            starts = torch.tensor([0] + segments[:-1]).cumsum(0).tolist()
            frames = [s + j for s, L in zip(starts, segments) for j in anchor_frames(L, self.p)]
            frame_pos = {t: row for row, t in enumerate(frames)}
            anchor_rows = torch.tensor(frames, device=device)  # (F,)
            # Density peaks within each anchor frame's non-salient tokens: (F, m)
            anchor_X = flat_X.index_select(0, nonsalient_flat[anchor_rows].reshape(-1)).view(len(frames), m, D)
            scores = density_peak_scores(pairwise_distance(anchor_X, scratch=True), self.k)  # (F, m)
            del anchor_X
            release_penalty = self.variant == "release" and self.mu_s != 0
            if release_penalty:
                sink_at = video.sink.float()[nonsalient[anchor_rows]]  # (F, m)
                multi = torch.tensor([L > 1 for s, L in zip(starts, segments) for _ in anchor_frames(L, self.p)],
                                     device=device).view(-1, 1)  # (F, 1) anchor frame of a multi-frame segment
                scores = scores - RELEASE_ANCHOR_PENALTY * sink_at - multi * (RELEASE_ANCHOR_PENALTY * sink_at)  # (F, m)

            for start, L in zip(starts, segments):
                own = [frame_pos[start + j] for j in anchor_frames(L, self.p)]
                per_anchor_frame = min(m, floor_count(R_c * L / len(own)))
                chosen = top_k_mask(scores[own], per_anchor_frame)  # (F, m)
                anchors_flat = nonsalient_flat[anchor_rows[own]][chosen]  # (F * per_anchor_frame,), raster
                merged = self._merge_into_anchors(X[start:start + L], context[start:start + L],
                                                  flat_X.index_select(0, anchors_flat), len(own))
                kept_index.append(anchors_flat)
                kept_tokens.append(merged.to(X.dtype))

        index = torch.cat(kept_index)  # (k,)
        order = torch.sort(index, stable=True).indices  # (k,)
        info = {"segments": segments, "salient_per_frame": R_s, "context_per_frame": R_c,
                "global_feature": "frame_features" if uses_global else "mean_token"}
        return PruneOutput(torch.cat(kept_tokens).index_select(0, order), index[order], info)

    def _merge_into_anchors(self, segment: Tensor, members: Tensor, anchors: Tensor, frames: int) -> Tensor:
        """Per anchor frame, every member joins that frame's most cosine-similar anchor; then
        anchor' = w*anchor + (1-w)*mean(its members), w = max(1/(|members|+1), beta). Returns (F*c, D) float32.

        segment: (L, n, D) the segment's tokens; members: (L, n) bool, the non-salient (surviving) ones;
        anchors: (F*c, D), c anchors of each of the F anchor frames, frame by frame. Ties go to the first
        anchor. Cosine argmax over anchors = argmax of x.a/|a| (|x| > 0 is common to all anchors), so the
        members are never normalised or copied; the sums are one (F*c, L*n) x (L*n, D) product.
        """
        L, n, D = segment.shape
        tokens = segment.reshape(L * n, D).float()  # (L*n, D), a view for float32 input
        anchors = anchors.float()  # (F*c, D)
        c = anchors.shape[0] // frames
        scores = tokens @ cosine_normalise(anchors).T  # (L*n, F*c)
        choice = scores.view(L * n, frames, c).argmax(dim=-1)  # (L*n, F) anchor of each anchor frame
        weights = torch.zeros(frames, c, L * n, dtype=torch.float32, device=segment.device)  # (F, c, L*n)
        weights.scatter_(1, choice.T.unsqueeze(1), members.reshape(1, 1, L * n).float().expand(frames, 1, L * n))  # (F, c, L*n)
        weights = weights.view(frames * c, L * n)  # (F*c, L*n) one-hot membership
        counts = weights.sum(dim=1, keepdim=True)  # (F*c, 1)
        sums = weights @ tokens  # (F*c, D)
        weight = torch.clamp(1.0 / (counts + 1.0), min=self.beta)  # (F*c, 1)
        mean = sums / counts.clamp_min(1.0)  # (F*c, D)
        return torch.where(counts > 0, weight * anchors + (1 - weight) * mean, anchors)  # (F*c, D)
