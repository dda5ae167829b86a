"""Feature-only density-peak clustering (DPC-kNN) per frame: the paper's "no attention" baseline (Appendix E).

Specification: shared/docs/specs/baselines_extra.md (a), default reading. Not in the SToP release; the
building block is HoliTom's static-token clustering, applied to every frame with VisionZip's budget:
- per frame C = VisionZip's per-frame budget S(r) (20 / 30 / 40 / 50 at r = .10 / .15 / .20 / .25 for
  n = 196, scaled by n/196 on other grids; floor(n*r) at other ratios): 640 tokens at r = 0.1, T = 32;
- DPC-kNN on the frame's n tokens (distances ||x_a - x_b|| / sqrt(D), k = min(7, C) nearest neighbours
  including the point itself, delta to the nearest denser point, the densest gets the largest
  distance); centres are the top-C of rho*delta, listed by position;
- every other token joins its nearest centre (ties: the lower position); a centre becomes
  beta*centre + (1-beta)*mean(its members) (beta = 0.6; the centre itself when it has no members), or
  with ``merge="mean"`` the plain mean of all members, centre included (PruneVid's and FlashVID's rule);
- output frame by frame, centres in position order, each standing at its centre's position.
It uses neither attention nor keys, so SToP and the sink-handling alternatives do not apply. Ties in
density are broken deterministically (the lower position is denser) instead of by random noise. The
spec's alternative readings (HoliTom's D = 1 path; one clustering over the whole video) are not built.
"""
from __future__ import annotations

import torch

from .base import PruneOutput, Pruner, VideoTokens, cluster_sums, density_peak_clusters
from .visionzip import visionzip_budget


class DPCKNNPruner(Pruner):
    """Per frame, C = VisionZip's budget density-peak clusters of the frame's tokens (see module docstring)."""

    name = "dpc_knn"

    def __init__(self, ratio, mu_s=0.0, mu_t=0.0, gamma=1.1, seed=0, *, k: int = 7, beta: float = 0.6,
                 merge: str = "beta", **common):
        super().__init__(ratio, mu_s, mu_t, gamma, seed, **common)
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k={k!r} is invalid; allowed: an integer >= 1 (HoliTom: 7)")
        if not 0 <= beta <= 1:
            raise ValueError(f"beta={beta!r} is invalid; allowed: a number in [0, 1] (HoliTom: 0.6)")
        if merge not in ("beta", "mean"):
            raise ValueError(f"merge={merge!r} is unknown; allowed: beta, mean")
        self.k, self.beta, self.merge = k, float(beta), merge

    def describe(self):
        return {**super().describe(), "k": self.k, "beta": self.beta, "merge": self.merge}

    def _prune(self, video: VideoTokens) -> PruneOutput:
        X = video.features  # (T, n, D)
        T, n, D = X.shape
        dominant, contextual = visionzip_budget(self.ratio, n)
        C = dominant + contextual  # per-frame budget S, at least 1
        centres, assignment = density_peak_clusters(X, C, min(self.k, C), centre_order="index")  # (T, C), (T, n)
        # members other than the centre: centres move to an extra, discarded cluster C
        others = assignment.scatter(1, centres, C)  # (T, n)
        sums, members = cluster_sums(X, others, C + 1)  # (T, C+1, D), (T, C+1, 1)
        sums, members = sums[:, :C], members[:, :C]  # (T, C, D), (T, C, 1)
        centre_X = torch.gather(X, 1, centres.unsqueeze(-1).expand(T, C, D)).float()  # (T, C, D)
        if self.merge == "mean":
            merged = (centre_X + sums) / (members + 1.0)  # (T, C, D)
        else:
            mean = sums / members.clamp_min(1.0)  # (T, C, D)
            merged = torch.where(members > 0, self.beta * centre_X + (1 - self.beta) * mean, centre_X)  # (T, C, D)
        index = (centres + (torch.arange(T, device=X.device) * n).view(T, 1)).reshape(-1)  # (T*C,)
        return PruneOutput(merged.to(X.dtype).reshape(T * C, D), index, {"clusters_per_frame": C})
