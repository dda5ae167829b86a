"""FlashVID as ported into the SToP release (the FlashVid row of SToP Table 6): the pre-LLM stage only.

Specification: shared/docs/specs/flashvid.md (FlashVID, ICLR 2026, arXiv 2602.08024). Per video:
1. DySeg: cut after every frame transition with cos(f_t, f_t+1) < tau_seg (f = frame mean token), then
   add the least similar transitions until there are ``min_segments`` segments.
2. Budget per frame B = ceil(n*r*e) with the expansion e = 1.25 (official FlashVID prunes again inside
   the LLM so that the *layer-averaged* ratio is r; SToP's port has no LLM stage, so every layer sees
   about 1.25*r*N tokens -- ``info["kept"]`` is the true count), split into K_a = ceil(alpha*B) ADTS
   tokens and K_m = B - K_a merged tokens.
3. ADTS v2 per frame: farthest-point picking on the cosine-distance matrix whose columns are scaled
   by 1e6*A (STSP: A - mu_s*s) and by the token's dot product with the segment's mean token.
4. TSTM per segment: each token links to its most similar token of the previous frame (any position)
   when that similarity exceeds tau_t (capped so at least B*L roots remain); trees are summed from the
   last frame to the first.
5. The non-ADTS roots of each segment are reduced to K_m*L tokens by per-frame DPC-kNN (plain means).
Output: ADTS tokens and merged tokens, ordered by the position they stand at (stable: an ADTS token
before a merged token at the same position).

Kept on purpose, as the release does (each recorded in ``info`` or switchable):
- the sink score is computed per DySeg segment (``sink_scope="segment"``; "video" = the paper's Eq. 4);
- ADTS v2 does not exclude already picked tokens, so a negative column scale (negative 1e6*A_hat, e.g.
  at mu_s = 0.02, or a negative mean-token dot product) can pick the same token twice:
  ``info["duplicates"]`` counts them; ``mask_picked=True`` excludes picked tokens instead;
- a tree root's value is (sum of its tree) / (1 + number of DIRECT children), not the mean, for chains
  of three or more frames; ``true_mean=True`` uses the mean;
- a one-frame segment clusters all its tokens, the ADTS ones included (the same content can appear twice).
Deliberate differences: DPC ties are broken deterministically (lower index denser, no random noise);
budgets use exact decimal arithmetic; clusters/picks in a frame never exceed its token count; DySeg never
makes empty segments on very short clips; everything is computed in float32 (the release works in the
model dtype). There is no SToP temporal term (mu_t): TSTM's test is not a same-position test.
"""
from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor

from .base import (
    CHUNK_ELEMENTS,
    PruneOutput,
    Pruner,
    VideoTokens,
    cluster_sums,
    cosine_normalise,
    density_peak_scores,
    pairwise_distance,
)
from .sink import sink_aware_importance, sink_score

ATTENTION_SCALE = 1e6  # ADTS scales attention by 1e6 before calibrating distances (numerical range)


def flashvid_budget(ratio: float, n: int, expansion: float = 1.25, alpha: float = 0.7) -> tuple[int, int, int]:
    """(B, K_a, K_m) per frame: B = ceil(n*r*e) (at least 1, at most n), K_a = ceil(alpha*B), K_m = B - K_a.

    Exact decimal arithmetic (0.1 means 1/10): n = 196 gives B = 25, 37, 49, 62 at r = .10, .15, .20, .25.
    """
    exact = Fraction(str(ratio)) * n * Fraction(str(expansion))
    budget = max(1, min(n, math.ceil(exact)))
    adts = math.ceil(budget * Fraction(str(alpha)))
    return budget, adts, budget - adts


def flashvid_segments(similarity: Tensor, tau: float, min_segments: int) -> list[int]:
    """DySeg segment lengths from the T-1 consecutive frame-mean cosines.

    Cuts after every transition below tau; if that makes fewer than ``min_segments`` segments, the
    remaining transitions (the cut ones count as similarity 1) with the smallest similarity are cut too,
    ties to the earlier transition. With fewer transitions than needed every transition is cut.
    """
    sim = similarity.float().cpu()  # (T-1,)
    transitions = sim.shape[0]
    cuts = set(torch.nonzero(sim < tau).flatten().tolist())
    if len(cuts) + 1 < min_segments and transitions:
        rest = sim.clone()
        rest[list(cuts)] = 1.0
        extra = min(min_segments - len(cuts) - 1, transitions)
        cuts |= set(torch.sort(rest, stable=True).indices[:extra].tolist())
    bounds = [-1] + sorted(cuts) + [transitions]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:])]


def cosine_matrix(a: Tensor, b: Tensor, norm_a: Tensor | None = None, norm_b: Tensor | None = None) -> Tensor:
    """(F, m, D), (F, m', D) -> (F, m, m') cosine similarities in float32: one Gram product divided by the
    norms (given as (F, m), (F, m') or computed), so no normalised copy of the tokens is made (zero vectors
    have similarity 0)."""
    a, b = a.float(), b.float()  # (F, m, D), (F, m', D): views for float32 input
    norm_a = torch.linalg.vector_norm(a, dim=-1) if norm_a is None else norm_a  # (F, m)
    norm_b = torch.linalg.vector_norm(b, dim=-1) if norm_b is None else norm_b  # (F, m')
    norms = norm_a.unsqueeze(2) * norm_b.unsqueeze(1)  # (F, m, m')
    return torch.bmm(a, b.transpose(1, 2)).div_(norms.clamp_min_(1e-24))  # (F, m, m')


def adts_pick(features: Tensor, column_scale: Tensor, count: int, mask_picked: bool = False,
              norms: Tensor | None = None) -> Tensor:
    """ADTS v2 for a batch of frames: (F, m, D), (F, m) -> (F, count) picked rows, ascending per frame.

    M[i, j] = (1 - cos(x_i, x_j)) * column_scale_j. First pick: the column whose second-smallest entry
    (its nearest neighbour, M[j, j] = 0 being the smallest when the scale is positive) is largest; then
    farthest-point picking, j_k = argmax_j min over picked s of M[s, j]. Ties go to the lower row. Picked
    rows are not excluded unless ``mask_picked`` (the released v2 relies on M[j, j] = 0, which fails for a
    negative scale: it can then pick a row again). Cosines come from one Gram product divided by the
    norms, and the diagonal distance is set to exactly 0: the release's normalise-then-dot leaves it at
    +-1e-7, which can decide a pick only between (near-)collinear tokens.
    """
    F, m, _ = features.shape
    distance = 1.0 - cosine_matrix(features, features, norms, norms)  # (F, m, m)
    distance.diagonal(dim1=1, dim2=2).zero_()  # exactly 0, as in exact arithmetic (rounding gives +-1e-7)
    calibrated = distance * column_scale.unsqueeze(1)  # (F, m, m), column j scaled
    if m >= 2:
        nearest = torch.topk(calibrated, 2, dim=1, largest=False).values[:, 1, :]  # (F, m)
    else:
        nearest = calibrated[:, 0, :]  # (F, 1): a single token
    rows = torch.arange(F, device=features.device)  # (F,)
    pick = nearest.argmax(dim=-1)  # (F,)
    picks = [pick]
    running = calibrated[rows, pick]  # (F, m) min over picked rows
    for _ in range(1, count):
        if mask_picked:
            running = running.scatter(1, torch.stack(picks, dim=1), float("-inf"))  # (F, m)
        pick = running.argmax(dim=-1)  # (F,)
        picks.append(pick)
        running = torch.minimum(running, calibrated[rows, pick])  # (F, m)
    return torch.stack(picks, dim=1).sort(dim=-1).values  # (F, count)


def tstm_roots(features: Tensor, selected: Tensor, tau: float, lower_bound: int,
               norms: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """TSTM's forest for one segment: (L, m, D) tokens, (L, m) ADTS mask -> roots (L, m), parent (L, m).

    Token (t, i) links to parent p = argmax_j cos(x_{t,i}, x_{t-1,j}) (any position, ties to the lower j)
    when that similarity exceeds tau; ADTS tokens neither link nor are linked to (similarity -1); frame 0
    has no parents. If fewer than ``lower_bound`` roots remain, tau is raised to the
    (L*m - lower_bound)-th largest similarity (at least -1 + 1e-6) so that no more are merged.
    Similarities are computed a few frame pairs at a time (bounded memory).
    """
    L, m, D = features.shape
    best = torch.full((L, m), -1.0, dtype=torch.float32, device=features.device)  # (L, m), frame 0: -1
    parent = torch.zeros((L, m), dtype=torch.long, device=features.device)  # (L, m)
    step = max(1, CHUNK_ELEMENTS // max(1, 2 * m * D))
    for first in range(1, L, step):
        last = min(L, first + step)
        children, parents = slice(first, last), slice(first - 1, last - 1)
        sims = cosine_matrix(features[children], features[parents], None if norms is None else norms[children],
                             None if norms is None else norms[parents])  # (c, m, m): rows frame t, columns t-1
        sims.masked_fill_(selected[first:last].unsqueeze(-1), -1.0)  # (c, m, m) ADTS children
        sims.masked_fill_(selected[first - 1:last - 1].unsqueeze(1), -1.0)  # (c, m, m) ADTS parents
        best[first:last], parent[first:last] = sims.max(dim=-1)  # (c, m), (c, m): first max on ties
    linked = best > tau  # (L, m)
    if int((~linked).sum()) < lower_bound:
        merges = L * m - lower_bound
        if merges > 0:
            threshold = max(float(best.flatten().topk(merges).values[-1]), -1.0 + 1e-6)
            linked = best > threshold  # (L, m)
        else:
            linked = torch.zeros_like(linked)  # (L, m)
    return ~linked, parent


def tstm_values(features: Tensor, roots: Tensor, parent: Tensor, wanted: Tensor, true_mean: bool) -> Tensor:
    """Values of the ``wanted`` roots (a (L, m) mask, frame-major order): (sum of the root's tree) / count.

    The release aggregates from the last frame to the first: a non-root adds its running sum to its
    parent's, so a root ends with the sum of its whole tree, and its count grows by 1 per DIRECT child
    (``true_mean``: by the child's subtree size, i.e. the mean). Here every token is mapped to its root
    (one pass over the frames on (m,) index vectors); a wanted root starts from its own token and the
    linked tokens of its tree are added with one index_add. Returns (P, D) float32.
    """
    L, m, D = features.shape
    device = features.device
    flat = features.reshape(L * m, D)  # (L*m, D) view
    frame = torch.arange(L, device=device).view(L, 1) * m  # (L, 1)
    owner = torch.empty(L, m, dtype=torch.long, device=device)  # (L, m) flat id of each token's root
    owner[0] = torch.arange(m, device=device)  # (m,) frame 0: all roots
    for t in range(1, L):
        own = torch.arange(m, device=device) + t * m  # (m,)
        owner[t] = torch.where(roots[t], own, owner[t - 1][parent[t]])  # (m,)
    wanted_ids = torch.nonzero(wanted.reshape(-1)).squeeze(1)  # (P,) flat, frame-major
    slot = torch.full((L * m,), -1, dtype=torch.long, device=device)  # (L*m,) wanted-root slot or -1
    slot[wanted_ids] = torch.arange(wanted_ids.numel(), device=device)  # (P,)
    sums = flat.index_select(0, wanted_ids).float()  # (P, D) each root's own token
    linked = torch.nonzero(~roots.reshape(-1)).squeeze(1)  # (c,) flat ids of linked tokens
    target = slot[owner.reshape(-1)[linked]]  # (c,) wanted slot of each linked token's root, or -1
    into = target >= 0  # (c,)
    sums.index_add_(0, target[into], flat.index_select(0, linked[into]).float())  # (P, D) tree sums
    if true_mean:
        counts = 1.0 + torch.bincount(target[into], minlength=wanted_ids.numel()).float()  # (P,) tree sizes
    else:  # 1 + the number of linked tokens whose parent is this root
        parent_slot = slot[(frame - m + parent)[~roots]]  # (c,) wanted slot of each linked token's parent, or -1
        direct = parent_slot[parent_slot >= 0]  # (c',)
        counts = 1.0 + torch.bincount(direct, minlength=wanted_ids.numel()).float()  # (P,)
    return sums / counts.unsqueeze(1)  # (P, D)


class FlashVIDPruner(Pruner):
    """FlashVID, SToP's port (pre-LLM stage only): see the module docstring and flashvid.md.

    STSP (mu_s, paper default 0.02) enters ADTS's attention term. ``info``: segments, per-frame budget
    (B, K_a, K_m), the expansion, ``kept`` (the true count, about 1.25*r*T*n), ``kept_ratio`` and
    ``duplicates`` (repeated positions).
    """

    name = "flashvid"
    uses_attention = True

    def __init__(self, ratio, mu_s=0.0, mu_t=0.0, gamma=1.1, seed=0, *, expansion: float = 1.25, alpha: float = 0.7,
                 segment_threshold: float = 0.9, min_segments: int = 8, temporal_threshold: float = 0.8, k: int = 7,
                 sink_scope: str = "segment", mask_picked: bool = False, true_mean: bool = False, **common):
        super().__init__(ratio, mu_s, mu_t, gamma, seed, **common)
        if not (isinstance(expansion, (int, float)) and expansion > 0):
            raise ValueError(f"expansion={expansion!r} is invalid; allowed: a number > 0 (FlashVID: 1.25)")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha={alpha!r} is invalid; allowed: a fraction in [0, 1] (FlashVID: 0.7)")
        if not (isinstance(min_segments, int) and min_segments >= 1):
            raise ValueError(f"min_segments={min_segments!r} is invalid; allowed: an integer >= 1 (FlashVID: 8)")
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k={k!r} is invalid; allowed: an integer >= 1 (FlashVID: 7)")
        if sink_scope not in ("segment", "video"):
            raise ValueError(f"sink_scope={sink_scope!r} is unknown; allowed: segment, video")
        self.expansion, self.alpha = float(expansion), float(alpha)
        self.segment_threshold, self.min_segments = float(segment_threshold), min_segments
        self.temporal_threshold, self.k, self.sink_scope = float(temporal_threshold), k, sink_scope
        self.mask_picked, self.true_mean = bool(mask_picked), bool(true_mean)

    def describe(self):
        return {**super().describe(), "expansion": self.expansion, "alpha": self.alpha,
                "segment_threshold": self.segment_threshold, "min_segments": self.min_segments,
                "temporal_threshold": self.temporal_threshold, "sink_scope": self.sink_scope,
                "mask_picked": self.mask_picked, "true_mean": self.true_mean}

    def _prune(self, video: VideoTokens) -> PruneOutput:
        X = video.features  # (T, n, D)
        T, n, D = X.shape
        device = X.device
        B, K_a, K_m = flashvid_budget(self.ratio, n, self.expansion, self.alpha)
        # Hard pruning removes tokens from their frames: work on each frame's survivors, in raster order.
        if video.dropped is None:
            positions = torch.arange(n, device=device).expand(T, n)  # (T, m) with m = n
            tokens = X  # (T, m, D)
        else:
            m_alive = n - video.dropped_per_frame
            positions = torch.nonzero(~video.dropped, as_tuple=False)[:, 1].view(T, m_alive)  # (T, m)
            tokens = torch.gather(X, 1, positions.unsqueeze(-1).expand(T, m_alive, D))  # (T, m, D) copy
        m = tokens.shape[1]
        K_a = min(K_a, m)

        means = tokens.float().mean(dim=1)  # (T, D) frame means
        norms = torch.linalg.vector_norm(tokens.float(), dim=-1)  # (T, m), shared by ADTS and TSTM cosines
        frame_means = cosine_normalise(means)  # (T, D)
        segments = flashvid_segments((frame_means[:-1] * frame_means[1:]).sum(dim=-1), self.segment_threshold,
                                     self.min_segments)
        starts = [sum(segments[:i]) for i in range(len(segments))]

        # ADTS column scale per frame: 1e6 * A_hat (STSP) times the dot product with the segment's mean token
        attention = torch.gather(video.attn.float(), 1, positions)  # (T, m)
        scale = torch.empty(T, m, dtype=torch.float32, device=device)  # (T, m)
        for start, L in zip(starts, segments):
            frames = slice(start, start + L)
            A_hat = attention[frames]  # (L, m)
            if self.mu_s != 0:
                raw = video.raw_attn if self.sink_scope == "video" else video.raw_attn[frames]
                sink = torch.gather(sink_score(raw.float(), self.gamma).expand(L, n), 1, positions[frames])  # (L, m)
                A_hat = sink_aware_importance(A_hat, sink, self.mu_s)  # (L, m)
            mean_token = means[frames].mean(dim=0)  # (D,) the segment's mean token
            relevance = tokens[frames].float() @ mean_token  # (L, m)
            scale[frames] = (A_hat * ATTENTION_SCALE) * relevance  # (L, m)
        picks = torch.zeros(T, K_a, dtype=torch.long, device=device)  # (T, K_a)
        step = max(1, CHUNK_ELEMENTS // max(1, m * D))  # frames per ADTS batch: bounded memory
        for first in range(0, T if K_a > 0 else 0, step):
            picks[first:first + step] = adts_pick(tokens[first:first + step], scale[first:first + step], K_a,
                                                  self.mask_picked, norms[first:first + step])
        selected = torch.zeros(T, m, dtype=torch.bool, device=device).scatter_(1, picks, True)  # (T, m)

        # per segment: TSTM, then the DPC merge of its candidates (non-ADTS roots)
        merged_tokens, merged_index = [], []
        if K_m > 0 and self.temporal_threshold < 1.0:
            for start, L in zip(starts, segments):
                frames = slice(start, start + L)
                if L == 1:  # one-frame segment: every token is a candidate, ADTS ones included
                    wanted = torch.ones(1, m, dtype=torch.bool, device=device)  # (1, m)
                    values = tokens[start].float()  # (m, D)
                else:
                    roots, parent = tstm_roots(tokens[frames], selected[frames], self.temporal_threshold, B * L,
                                               norms[frames])
                    wanted = roots & ~selected[frames]  # (L, m) candidates: roots that are not ADTS tokens
                    values = tstm_values(tokens[frames], roots, parent, wanted, self.true_mean)  # (P, D)
                sizes = wanted.sum(dim=1).tolist()  # candidates per frame
                total = sum(sizes)
                budget = K_m * L
                # ceil(|P_t| * K_m L / N_cur), exactly; every candidate stays when the budget covers them all
                quota = [-1 if budget >= total else -(-size * budget // total) for size in sizes]
                rows = torch.nonzero(wanted, as_tuple=False)[:, 1]  # (P,) each candidate's row in its frame
                out, at = self._merge(values, rows, sizes, quota, positions[frames], start, n)
                merged_tokens.append(out)
                merged_index.append(at)
                del values
        merged_tokens = torch.cat(merged_tokens) if merged_tokens else torch.zeros(0, D, device=device)  # (k_m, D)
        merged_index = torch.cat(merged_index) if merged_index else torch.zeros(0, dtype=torch.long, device=device)  # (k_m,)

        pick_index = (torch.gather(positions, 1, picks) + (torch.arange(T, device=device) * n).view(T, 1)).reshape(-1)  # (T*K_a,)
        pick_tokens = X.reshape(T * n, D).index_select(0, pick_index)  # (T*K_a, D)
        index = torch.cat([pick_index, merged_index])  # (k,)
        order = torch.sort(index, stable=True).indices  # (k,) an ADTS token before a merged one at one position
        out_tokens = torch.cat([pick_tokens, merged_tokens.to(X.dtype)]).index_select(0, order)  # (k, D)
        index = index[order]  # (k,)
        kept = int(index.numel())
        info = {"segments": segments, "budget_per_frame": B, "adts_per_frame": K_a, "merge_per_frame": K_m,
                "expansion": self.expansion, "kept": kept, "kept_ratio": kept / (T * n),
                "duplicates": kept - int(torch.unique(index).numel()), "sink_scope": self.sink_scope}
        return PruneOutput(out_tokens, index, info)

    def _merge(self, values: Tensor, rows: Tensor, sizes: list[int], quota: list[int], positions: Tensor,
               start: int, n: int) -> tuple[Tensor, Tensor]:
        """One segment's per-frame DPC-kNN of its candidates: ``quota[t]`` centres in frame start + t
        (k = min(quota, 7)), members join the nearest centre, a cluster is the plain mean of its members and
        stands at its centre; quota -1 keeps every candidate as it is. Frames are clustered in padded
        batches of a bounded size.

        values: (P, D) the candidates, frame by frame (``sizes[t]`` of frame t); rows: (P,) each one's row
        in its frame; positions: (L, m) grid position of every row. Returns tokens (k, D) float32, index (k,).
        """
        device, D = values.device, values.shape[1]
        offsets = [0]
        for size in sizes:
            offsets.append(offsets[-1] + size)
        kept_tokens, kept_index = [], []
        for t, q in enumerate(quota):
            if q == -1 and sizes[t]:
                a, b = offsets[t], offsets[t + 1]
                kept_tokens.append(values[a:b])  # (P_t, D)
                kept_index.append((start + t) * n + positions[t, rows[a:b]])  # (P_t,)
        clustered = [t for t, q in enumerate(quota) if q > 0 and sizes[t] > 0]
        step = max(1, CHUNK_ELEMENTS // max(1, max([sizes[t] for t in clustered], default=1) * D))
        for first in range(0, len(clustered), step):
            chunk = clustered[first:first + step]
            F = len(chunk)
            sizes_t = torch.tensor([sizes[t] for t in chunk], device=device)  # (F,)
            P = int(sizes_t.max())
            valid = torch.arange(P, device=device).view(1, -1) < sizes_t.view(-1, 1)  # (F, P)
            where = torch.tensor([offsets[t] for t in chunk], device=device).view(-1, 1) + torch.arange(P, device=device)
            where = torch.where(valid, where, torch.zeros_like(where))  # (F, P) candidate ids, padding -> 0
            batch = values.index_select(0, where.reshape(-1)).view(F, P, D)  # (F, P, D)
            batch.masked_fill_(~valid.unsqueeze(-1), 0.0)  # zero padding
            counts = torch.minimum(torch.tensor([quota[t] for t in chunk], device=device), sizes_t)  # (F,)
            dist = pairwise_distance(batch, valid)  # (F, P, P)
            score = density_peak_scores(dist, counts.clamp(max=self.k), valid)  # (F, P), padding -inf
            C = int(counts.max())
            centres = torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :C]  # (F, C) by rank
            real = torch.arange(C, device=device).view(1, -1) < counts.view(-1, 1)  # (F, C)
            to_centre = dist.gather(2, centres.unsqueeze(1).expand(F, P, C))  # (F, P, C)
            assignment = to_centre.masked_fill(~real.unsqueeze(1), float("inf")).argmin(dim=-1)  # (F, P), first on ties
            rank = torch.arange(C, device=device).expand(F, C)  # (F, C)
            own = torch.where(real, rank, assignment.gather(1, centres))  # only a frame's real centres join themselves
            assignment = assignment.scatter(1, centres, own)  # (F, P)
            assignment = torch.where(valid, assignment, torch.full_like(assignment, C))  # padding: a discarded cluster
            sums, members = cluster_sums(batch, assignment, C + 1)  # (F, C+1, D), (F, C+1, 1)
            means = sums[:, :C] / members[:, :C].clamp_min(1.0)  # (F, C, D)
            del batch, sums
            centre_rows = rows.index_select(0, torch.gather(where, 1, centres).reshape(-1)).view(F, C)  # (F, C)
            for row, t in enumerate(chunk):
                c = int(counts[row])
                kept_tokens.append(means[row, :c])  # (c, D)
                kept_index.append((start + t) * n + positions[t, centre_rows[row, :c]])  # (c,)
        if not kept_tokens:
            return torch.zeros(0, D, dtype=torch.float32, device=device), torch.zeros(0, dtype=torch.long, device=device)
        return torch.cat(kept_tokens), torch.cat(kept_index)
