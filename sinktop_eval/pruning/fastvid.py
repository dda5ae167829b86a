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


class FastVIDPruner(Pruner):
    """Per frame R_s salient tokens by A (STSP: A - mu_s*s); per segment, anchor frames spend the
    segment's context budget on density-peak anchors among their non-salient tokens, and every
    non-salient token of the segment is merged into its most cosine-similar anchor of the segment.
    Output: salient tokens and anchors, ordered by original position.

    DySeg uses ``frame_features`` (e.g. a pooled vision output) when given, else each frame's mean token;
    ``info["global_feature"]`` records which.
    """

    name = "fastvid"
    uses_attention = True

    def __init__(self, ratio, mu_s=0.0, mu_t=0.0, gamma=1.1, seed=0, *, c: int = 8, tau_seg: float = 0.9,
                 d: float = 0.4, p: int = 4, beta: float = 0.6, k: int = 4):
        super().__init__(ratio, mu_s, mu_t, gamma, seed)
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

        uses_global = video.frame_features is not None
        g = cosine_normalise(video.frame_features if uses_global else X.float().mean(dim=1))  # (T, D_g)
        segments = dyseg_segments((g[:-1] * g[1:]).sum(dim=-1), self.c, self.tau_seg)

        salient = top_k_mask(self.importance(video), R_s)  # (T, n)
        flat_X = X.reshape(T * n, D)
        kept_index = [torch.nonzero(salient.reshape(-1)).squeeze(1)]
        kept_tokens = [flat_X.index_select(0, kept_index[0])]

        m = n - R_s  # non-salient tokens per frame
        if R_c > 0 and m > 0:
            nonsalient = torch.nonzero(~salient, as_tuple=False)[:, 1].view(T, m)  # (T, m) positions
            nonsalient_flat = nonsalient + (torch.arange(T, device=device) * n).view(T, 1)  # (T, m)
            starts = torch.tensor([0] + segments[:-1]).cumsum(0).tolist()
            frames = [s + j for s, L in zip(starts, segments) for j in anchor_frames(L, self.p)]
            frame_pos = {t: row for row, t in enumerate(frames)}
            anchor_rows = torch.tensor(frames, device=device)
            # Density peaks within each anchor frame's non-salient tokens: (B, m)
            anchor_X = flat_X.index_select(0, nonsalient_flat[anchor_rows].reshape(-1)).view(len(frames), m, D)
            scores = density_peak_scores(pairwise_distance(anchor_X), self.k)

            for start, L in zip(starts, segments):
                own = [frame_pos[start + j] for j in anchor_frames(L, self.p)]
                per_anchor_frame = min(m, floor_count(R_c * L / len(own)))
                chosen = top_k_mask(scores[own], per_anchor_frame)  # (F, m)
                anchors_flat = nonsalient_flat[anchor_rows[own]][chosen]  # (F * per_anchor_frame,), raster
                merged = self._merge_into_anchors(flat_X, anchors_flat, nonsalient_flat[start:start + L].reshape(-1))
                kept_index.append(anchors_flat)
                kept_tokens.append(merged.to(X.dtype))

        index = torch.cat(kept_index)
        order = torch.argsort(index)
        info = {"segments": segments, "salient_per_frame": R_s, "context_per_frame": R_c,
                "global_feature": "frame_features" if uses_global else "mean_token"}
        return PruneOutput(torch.cat(kept_tokens).index_select(0, order), index[order], info)

    def _merge_into_anchors(self, flat_X: Tensor, anchors_flat: Tensor, members_flat: Tensor) -> Tensor:
        """anchor' = w*anchor + (1-w)*mean(members), w = max(1/(|members|+1), beta); (A, D) float32.

        Every non-salient token of the segment (anchors included) joins its most cosine-similar anchor.
        """
        anchors = flat_X.index_select(0, anchors_flat).float()  # (A, D)
        members = flat_X.index_select(0, members_flat).float()  # (M, D)
        assignment = (cosine_normalise(members) @ cosine_normalise(anchors).T).argmax(dim=-1)  # (M,)
        sums = torch.zeros_like(anchors).index_add_(0, assignment, members)
        counts = torch.bincount(assignment, minlength=anchors.shape[0]).to(torch.float32).unsqueeze(1)
        weight = torch.clamp(1.0 / (counts + 1.0), min=self.beta)
        mean = sums / counts.clamp_min(1.0)
        return torch.where(counts > 0, weight * anchors + (1 - weight) * mean, anchors)
