"""What every pruner shares: argument checks, the call contract, and small exact helpers.

A pruner sees ONE video: features X (T, n, D), importance A (T, n), optional keys K (T, n, d_k), the
spatial grid (h, w) and optional per-frame global features. It returns the kept/merged tokens in the
order the LLM will read them and, for each, the flat position t*n+i it stands at (merged tokens stand at
their anchor/target), which the backbone adapters turn into placeholders and position ids.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from .sink import sink_aware_importance, sink_aware_similarity, sink_score
from .sink_alternatives import hard_drop_mask, redistribute_attention, redistribution_set

# A budget like 0.1 * 190 is 18.999999999999996 in floating point; nudge before floor/ceil.
_EPS = 1e-9


def floor_count(x: float) -> int:
    return int(math.floor(x + _EPS))


def ceil_count(x: float) -> int:
    return int(math.ceil(x - _EPS))


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5 + _EPS))


VARIANTS = ("paper", "release")
SINK_HANDLING = ("stop", "hard", "redistribute")
HARD_UNITS = ("token", "position")
# Defaults of the sink-handling alternatives (paper Fig. 7; shared/docs/specs/baselines_extra.md (b), (c)).
HARD_K = 0.1
REDISTRIBUTE_P = 0.6
REDISTRIBUTE_TOP = 0.1


@dataclass
class PruneOutput:
    """Kept tokens for one video, in LLM order.

    tokens: (k, D) in the input dtype/device; index: (k,) long, flat position t*n+i each token stands at;
    info: pruner-specific bookkeeping (segments, windows, effective ratios) for logs and tests.
    """

    tokens: Tensor
    index: Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.index.numel())


@dataclass
class VideoTokens:
    """Validated inputs of one call, plus the sink score when SToP needs it."""

    features: Tensor  # (T, n, D)
    attn: Tensor | None  # (T, n)
    keys: Tensor | None  # (T, n, d_k)
    grid: tuple[int, int]  # (h, w), h * w == n
    frame_features: Tensor | None  # (T, D_g)
    sink: Tensor | None  # (n,), from the raw attention; only when a SToP term, the release variant or
    #                      redistribution needs it
    dropped: Tensor | None = None  # (T, n) bool, tokens hard pruning removed (same count in every frame)
    raw_attn: Tensor | None = None  # (T, n) the attention as given (attn may be redistributed)

    @property
    def dropped_per_frame(self) -> int:
        return 0 if self.dropped is None else int(self.dropped[0].sum())

    @property
    def num_frames(self) -> int:
        return self.features.shape[0]

    @property
    def tokens_per_frame(self) -> int:
        return self.features.shape[1]


def _check_number(name: str, value: Any, allowed: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(float(value)):
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")
    return float(value)


class Pruner:
    """Base class: subclasses set ``name`` and implement ``_prune``.

    ``uses_attention``: ranks tokens by A, so STSP (mu_s) and the sink-handling alternatives apply.
    ``uses_temporal_test``: decides temporal redundancy by same-position similarity, so STTP (mu_t)
    applies. ``variants``: the implementations a pruner offers ("paper" always; "release" adds the SToP
    release's code-only sink terms, see release_extras.md). Asking for a SToP term, a variant or a
    sink-handling mode a pruner has no place for is an error rather than a silent no-op, so an ablation
    cannot lie.

    Common keyword options (every pruner):
      variant: "paper" (default) | "release".
      sink_handling: "stop" (default: the SToP terms mu_s / mu_t, which may be 0) | "hard" |
        "redistribute" (paper Fig. 7, see ``sink_alternatives``); the latter two need an attention pruner.
      hard_k (0.1), hard_unit ("token" | "position"): only with sink_handling="hard".
      redistribute_p (0.6), redistribute_top (0.1) or redistribute_threshold: only with "redistribute".
    """

    name: ClassVar[str] = "base"
    uses_attention: ClassVar[bool] = False
    uses_temporal_test: ClassVar[bool] = False
    needs_keys: ClassVar[bool] = False
    variants: ClassVar[tuple[str, ...]] = ("paper",)

    def __init__(self, ratio: float, mu_s: float = 0.0, mu_t: float = 0.0, gamma: float = 1.1, seed: int = 0, *,
                 variant: str = "paper", sink_handling: str = "stop", hard_k: float | None = None,
                 hard_unit: str | None = None, redistribute_p: float | None = None,
                 redistribute_top: float | None = None, redistribute_threshold: float | None = None):
        self.ratio = _check_number("ratio", ratio, "a number in (0, 1], e.g. 0.1", lambda r: 0 < r <= 1)
        self.mu_s = _check_number("mu_s", mu_s, "a finite number (0 turns STSP off)", math.isfinite)
        self.mu_t = _check_number("mu_t", mu_t, "a finite number (0 turns STTP off)", math.isfinite)
        self.gamma = _check_number("gamma", gamma, "a number > 0 (the paper uses 1.1)", lambda g: g > 0 and math.isfinite(g))
        if self.mu_s != 0 and not self.uses_attention:
            raise ValueError(f"mu_s={mu_s} has no effect on pruner '{self.name}' (it does not rank by attention); allowed: 0")
        if self.mu_t != 0 and not self.uses_temporal_test:
            raise ValueError(f"mu_t={mu_t} has no effect on pruner '{self.name}' (it has no temporal redundancy test); allowed: 0")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed={seed!r} is invalid; allowed: an integer")
        self.seed = seed
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r} is unknown; allowed: {', '.join(VARIANTS)}")
        if variant not in self.variants:
            raise ValueError(f"variant={variant!r} is not available for pruner '{self.name}' (the SToP release has "
                             f"no extra terms for it); allowed: {', '.join(self.variants)}")
        self.variant = variant
        self._set_sink_handling(sink_handling, hard_k, hard_unit, redistribute_p, redistribute_top,
                                redistribute_threshold)

    def _set_sink_handling(self, mode, hard_k, hard_unit, p, top, threshold) -> None:
        if mode not in SINK_HANDLING:
            raise ValueError(f"sink_handling={mode!r} is unknown; allowed: {', '.join(SINK_HANDLING)}")
        if mode != "stop" and not self.uses_attention:
            raise ValueError(f"sink_handling={mode!r} needs a pruner that ranks tokens by attention; pruner "
                             f"'{self.name}' does not; allowed: stop")
        given = {"hard_k": hard_k, "hard_unit": hard_unit, "redistribute_p": p, "redistribute_top": top,
                 "redistribute_threshold": threshold}
        owner = {"hard_k": "hard", "hard_unit": "hard", "redistribute_p": "redistribute",
                 "redistribute_top": "redistribute", "redistribute_threshold": "redistribute"}
        for key, value in given.items():
            if value is not None and owner[key] != mode:
                raise ValueError(f"{key}={value!r} only applies with sink_handling='{owner[key]}' (got "
                                 f"sink_handling={mode!r}); remove it or set sink_handling='{owner[key]}'")
        self.sink_handling = mode
        self.hard_k = self.hard_unit = self.redistribute_p = self.redistribute_top = None
        self.redistribute_threshold = None
        if mode == "hard":
            self.hard_k = _check_number("hard_k", HARD_K if hard_k is None else hard_k,
                                        "a fraction in [0, 1), e.g. 0.1", lambda k: 0 <= k < 1)
            self.hard_unit = "token" if hard_unit is None else hard_unit
            if self.hard_unit not in HARD_UNITS:
                raise ValueError(f"hard_unit={hard_unit!r} is unknown; allowed: {', '.join(HARD_UNITS)}")
        elif mode == "redistribute":
            self.redistribute_p = _check_number("redistribute_p", REDISTRIBUTE_P if p is None else p,
                                                "a fraction in [0, 1], e.g. 0.6", lambda v: 0 <= v <= 1)
            if top is not None and threshold is not None:
                raise ValueError("redistribute_top and redistribute_threshold both given; allowed: one of them")
            if threshold is not None:
                self.redistribute_threshold = _check_number("redistribute_threshold", threshold,
                                                            "a sink score in [0, 1], e.g. 0.5", lambda v: 0 <= v <= 1)
            else:
                self.redistribute_top = _check_number("redistribute_top", REDISTRIBUTE_TOP if top is None else top,
                                                      "a fraction in (0, 1], e.g. 0.1", lambda v: 0 < v <= 1)

    @property
    def stop(self) -> bool:
        """True when any SToP term is active."""
        return self.mu_s != 0 or self.mu_t != 0

    @property
    def needs_sink(self) -> bool:
        """True when the call must compute the sink score (a SToP term, release terms, redistribution)."""
        return self.stop or self.variant == "release" or self.sink_handling == "redistribute"

    def describe(self) -> dict[str, Any]:
        """The settings that identify this pruner in results files (every value JSON/CSV-friendly)."""
        out = {"pruner": self.name, "ratio": self.ratio, "mu_s": self.mu_s, "mu_t": self.mu_t, "gamma": self.gamma,
               "variant": self.variant, "sink_handling": self.sink_handling}
        if self.sink_handling == "hard":
            out.update(hard_k=self.hard_k, hard_unit=self.hard_unit)
        elif self.sink_handling == "redistribute":
            out["redistribute_p"] = self.redistribute_p
            if self.redistribute_threshold is not None:
                out["redistribute_threshold"] = self.redistribute_threshold
            else:
                out["redistribute_top"] = self.redistribute_top
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "pruner")
        return f"{type(self).__name__}({args})"

    def __call__(
        self,
        features: Tensor,
        attn: Tensor | None = None,
        *,
        keys: Tensor | None = None,
        grid: tuple[int, int] | None = None,
        frame_features: Tensor | None = None,
    ) -> PruneOutput:
        video = self._validate(features, attn, keys, grid, frame_features)
        with torch.no_grad():
            out = self._prune(video)
        return out

    # -- helpers for subclasses ------------------------------------------------------------------------
    def importance(self, video: VideoTokens) -> Tensor:
        """(T, n) float32 ranking signal; STSP-corrected when mu_s != 0; -inf at hard-dropped tokens."""
        assert video.attn is not None
        ranking = sink_aware_importance(video.attn, video.sink, self.mu_s)  # (T, n)
        if video.dropped is not None:
            ranking = ranking.masked_fill(video.dropped, float("-inf"))
        return ranking

    def redundancy(self, similarity: Tensor, video: VideoTokens) -> Tensor:
        """Same-position similarity, STTP-corrected when mu_t != 0."""
        return sink_aware_similarity(similarity, video.sink, self.mu_t)

    def _prune(self, video: VideoTokens) -> PruneOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- argument checks -------------------------------------------------------------------------------
    def _validate(self, features, attn, keys, grid, frame_features) -> VideoTokens:
        if not isinstance(features, Tensor) or features.dim() != 3 or features.shape[0] < 1 or features.shape[1] < 1:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(f"features must be a tensor of shape (T, n, D) with T, n >= 1; got {shape}")
        if not features.is_floating_point():
            raise ValueError(f"features must be floating point (float16/bfloat16/float32); got {features.dtype}")
        T, n, _ = features.shape
        if attn is None:
            if self.uses_attention:
                raise ValueError(f"attn is required by pruner '{self.name}': pass the (T, n) = ({T}, {n}) attention map")
        elif not isinstance(attn, Tensor) or tuple(attn.shape) != (T, n):
            shape = tuple(attn.shape) if isinstance(attn, Tensor) else type(attn).__name__
            raise ValueError(f"attn must have shape (T, n) = ({T}, {n}) to match features; got {shape}")
        if keys is None:
            if self.needs_keys:
                raise ValueError(f"keys is required by pruner '{self.name}': pass the (T, n, d_k) encoder keys")
        elif not isinstance(keys, Tensor) or keys.dim() != 3 or tuple(keys.shape[:2]) != (T, n):
            shape = tuple(keys.shape) if isinstance(keys, Tensor) else type(keys).__name__
            raise ValueError(f"keys must have shape (T, n, d_k) = ({T}, {n}, d_k) to match features; got {shape}")
        if grid is None:
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(f"grid is required: n={n} tokens per frame is not a square; pass grid=(h, w) with h*w={n}")
            grid = (side, side)
        else:
            grid = tuple(int(g) for g in grid)
            if len(grid) != 2 or grid[0] * grid[1] != n or min(grid) < 1:
                raise ValueError(f"grid={grid} does not match n={n} tokens per frame; allowed: (h, w) with h*w={n}")
        if frame_features is not None:
            if not isinstance(frame_features, Tensor) or frame_features.dim() != 2 or frame_features.shape[0] != T:
                shape = tuple(frame_features.shape) if isinstance(frame_features, Tensor) else type(frame_features).__name__
                raise ValueError(f"frame_features must have shape (T, D_g) with T={T}; got {shape}")
        sink = sink_score(attn, self.gamma) if (self.needs_sink and attn is not None) else None
        raw_attn, dropped = attn, None
        if self.sink_handling == "redistribute":
            zone = redistribution_set(sink, self.redistribute_top or 0.1, self.redistribute_threshold)  # (n,)
            attn = redistribute_attention(attn, zone, self.redistribute_p)  # (T, n)
        elif self.sink_handling == "hard":
            dropped = hard_drop_mask(attn, self.hard_k, self.hard_unit)  # (T, n) or None (nothing dropped)
        return VideoTokens(features, attn, keys, grid, frame_features, sink, dropped, raw_attn)


def top_k_mask(scores: Tensor, k: int) -> Tensor:
    """(..., m) bool mask of the k highest scores along the last dim.

    Ties go to the lower index (a stable sort), so the kept set is the same on every device and run.
    """
    m = scores.shape[-1]
    k = max(0, min(k, m))
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k]
    mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    return mask.scatter_(-1, order, True)


def frame_major_output(features: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Gather kept tokens of a (T, n) keep mask in frame-major raster order: tokens (k, D), index (k,)."""
    T, n, D = features.shape
    index = torch.nonzero(keep.reshape(-1), as_tuple=False).squeeze(1)  # (k,) ascending = t*n+i order
    return features.reshape(T * n, D).index_select(0, index), index


# Distance matrices are built a few sets at a time, so the float32 working copies (centred rows, their
# squares) stay bounded (about 32 MB) whatever the number of frames: peak memory does not grow with T.
CHUNK_ELEMENTS = 1 << 23


def pairwise_distance(x: Tensor, valid: Tensor | None = None, scratch: bool = False) -> Tensor:
    """(B, m, D) -> (B, m, m) Euclidean distances scaled by 1/sqrt(D), computed in float32.

    ``valid`` (B, m) marks the real rows of a padded batch: padding is never checked for copies (its
    distances are meaningless and must be masked by the caller). ``scratch=True``: x is a float32 working
    copy the caller no longer needs, centred in place instead of copied.

    One batched Gram matmul (per chunk of sets), yet exact where it matters for density peaks:
    - rows are centred first, so |x|^2 + |y|^2 - 2xy does not cancel catastrophically when tokens
      share a large common component (they do: neighbouring patches of one frame);
    - identical tokens (common in static video) sit at distance exactly 0 from each other and have
      bit-identical distance rows and columns (those of their first copy), which keeps density ties and
      nearest-denser links the same as in an exact computation. Copies are found without a per-matrix
      ``torch.unique``: a pair can only be identical if its Gram distance is within the worst-case float32
      rounding bound of 0, and every such candidate is confirmed by exact comparison.
    """
    B, m, D = x.shape
    step = max(1, CHUNK_ELEMENTS // max(1, m * D))
    if step >= B:
        return _pairwise_distance(x, valid, scratch)
    out = torch.empty(B, m, m, dtype=torch.float32, device=x.device)  # (B, m, m)
    for start in range(0, B, step):
        rows = None if valid is None else valid[start:start + step]
        out[start:start + step] = _pairwise_distance(x[start:start + step], rows, scratch)  # (step, m, m)
    return out


def _pairwise_distance(x: Tensor, valid: Tensor | None = None, scratch: bool = False) -> Tensor:
    scratch = scratch and x.dtype == torch.float32
    x = x.float()  # (B, m, D)
    B, m, D = x.shape
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, D)
    centred = x.sub_(mean) if scratch else x - mean  # (B, m, D)
    gram = torch.bmm(centred, centred.transpose(1, 2))  # (B, m, m)
    squared = gram.diagonal(dim1=1, dim2=2).clone()  # (B, m) |u|^2 from the same product: no extra pass
    d2 = (squared.unsqueeze(2) + squared.unsqueeze(1)).sub_(gram, alpha=2.0)  # (B, m, m)
    del gram
    d2 = (d2 + d2.transpose(1, 2)).mul_(0.5).clamp_min_(0.0)  # (B, m, m), exactly symmetric
    d2.diagonal(dim1=1, dim2=2).zero_()
    # identical tokens have identical centred rows (the copy test runs on those); distinct tokens whose
    # centred rows round to the same values are at computed distance 0 anyway, so they are treated alike
    first = _first_identical(centred, d2, squared, valid)  # (B, m)
    del centred
    if first is not None:  # rows and columns of every copy become those of its first copy
        rows = first.unsqueeze(2).expand(B, m, m)  # (B, m, m)
        d2 = d2.gather(1, rows).gather(2, first.unsqueeze(1).expand(B, m, m))  # (B, m, m)
    return d2.sqrt_().div_(math.sqrt(D))  # (B, m, m)


def _first_identical(x: Tensor, d2: Tensor, squared: Tensor, valid: Tensor | None = None) -> Tensor | None:
    """first[b, i] = the lowest j with x[b, j] == x[b, i] exactly (i itself when it has no earlier copy).

    Candidates are pairs whose computed squared distance is within the float32 error bound for identical
    rows, 2 * (2D + 8) * 2^-24 * (|u|^2 + |v|^2) (Gram and norms each off by at most D * 2^-24 relative,
    twice over for safety): every truly identical pair is a candidate, and each candidate is confirmed
    by exact comparison. Returns None when no token has an earlier copy.
    """
    B, m, D = x.shape
    tolerance = (2 * (2 * D + 8) * 2.0**-24) * (squared.unsqueeze(2) + squared.unsqueeze(1))  # (B, m, m)
    candidate = (d2 <= tolerance).tril_()  # (B, m, m): j <= i only; the diagonal is always a candidate
    if valid is not None:  # padding neither has nor is a copy
        candidate &= valid.unsqueeze(1) & valid.unsqueeze(2)
        candidate.diagonal(dim1=1, dim2=2).fill_(True)
    first = candidate.to(torch.uint8).argmax(dim=-1)  # (B, m) lowest candidate (argmax returns the first max)
    own = torch.arange(m, device=x.device).expand(B, m)  # (B, m)
    claimed = torch.nonzero(first != own, as_tuple=False)  # (c, 2) rows whose lowest candidate is earlier
    if claimed.numel() == 0:
        return None
    b, i = claimed[:, 0], claimed[:, 1]  # (c,), (c,)
    confirmed = (x[b, i] == x[b, first[b, i]]).all(dim=-1)  # (c,)
    for bb, ii in claimed[~confirmed].tolist():  # near but not identical: check every earlier candidate
        earlier = torch.nonzero(candidate[bb, ii, :ii]).flatten()  # (e,) earlier candidates
        same = earlier[(x[bb, earlier] == x[bb, ii]).all(dim=-1)]  # (e',) exact copies
        first[bb, ii] = same[0] if same.numel() else ii
    if bool((first == own).all()):
        return None
    return first


def density_peak_scores(dist: Tensor, k: int | Tensor, valid: Tensor | None = None) -> Tensor:
    """Density-peak score rho * delta for each point of (B, m, m) distance matrices.

    rho_i = exp(-mean of squared distances to its k nearest neighbours, itself included);
    delta_i = distance to the nearest denser point (ties in rho: the lower index counts as denser),
    or, for the densest point, the largest distance in its matrix. Returns (B, m).

    Padded batches of sets of different sizes: ``valid`` (B, m) bool marks each set's points (a prefix
    or any subset) and ``k`` may be a (B,) tensor; padding never counts as a neighbour, a denser point
    or a distance, so every set scores exactly as alone. Padding rows score -inf.
    """
    B, m, _ = dist.shape
    if valid is None and not isinstance(k, Tensor):
        k = max(1, min(k, m))
        nearest = torch.topk(dist, k, dim=-1, largest=False).values  # (B, m, k)
        rho = torch.exp(-(nearest**2).mean(dim=-1))  # (B, m)
        idx = torch.arange(m, device=dist.device)
        # denser[b, i, j]: point j is denser than point i
        denser = (rho.unsqueeze(1) > rho.unsqueeze(2)) | (
            (rho.unsqueeze(1) == rho.unsqueeze(2)) & (idx.view(1, 1, m) < idx.view(1, m, 1))
        )
        farthest = dist.amax(dim=(1, 2), keepdim=True).expand_as(dist)
        delta = torch.where(denser, dist, farthest).amin(dim=-1)  # (B, m)
        return rho * delta
    if valid is None:
        valid = torch.ones(B, m, dtype=torch.bool, device=dist.device)  # (B, m)
    sizes = valid.sum(dim=1)  # (B,)
    k = torch.as_tensor(k, device=dist.device).expand(B)  # (B,)
    k = torch.minimum(k, sizes).clamp_min(1)  # (B,)
    pair = valid.unsqueeze(1) & valid.unsqueeze(2)  # (B, m, m)
    k_max = int(k.max()) if B else 1
    nearest = torch.topk(dist.masked_fill(~valid.unsqueeze(1), float("inf")), k_max, dim=-1, largest=False).values  # (B, m, k_max)
    within = torch.arange(k_max, device=dist.device).view(1, 1, -1) < k.view(B, 1, 1)  # (B, 1, k_max)
    squared = torch.where(within, nearest**2, torch.zeros((), device=dist.device))  # (B, m, k_max)
    rho = torch.exp(-(squared.sum(dim=-1) / k.view(B, 1)))  # (B, m)
    idx = torch.arange(m, device=dist.device)  # (m,)
    denser = (rho.unsqueeze(1) > rho.unsqueeze(2)) | (  # (B, m, m): j denser than i
        (rho.unsqueeze(1) == rho.unsqueeze(2)) & (idx.view(1, 1, m) < idx.view(1, m, 1))
    )
    denser &= valid.unsqueeze(1)  # padding is never denser
    farthest = dist.masked_fill(~pair, float("-inf")).amax(dim=(1, 2), keepdim=True).expand_as(dist)  # (B, m, m)
    delta = torch.where(denser, dist, farthest).amin(dim=-1)  # (B, m)
    return (rho * delta).masked_fill(~valid, float("-inf"))


def cosine_normalise(x: Tensor) -> Tensor:
    """L2-normalise the last dim in float32 (zero vectors stay zero)."""
    return torch.nn.functional.normalize(x.float(), dim=-1, eps=1e-12)


def density_peak_clusters(x: Tensor, count: int, k: int, *, centre_order: str = "rank",
                          score_penalty: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """DPC-kNN on each of B sets of m tokens: ``count`` centres and every token's cluster.

    x: (B, m, D). Centres are the ``count`` largest rho*delta (``density_peak_scores``; minus
    ``score_penalty`` (B, m) when given), ties to the lower row; ``centre_order="rank"`` lists them by
    score (FlashVID, PruneVid), ``"index"`` by row (HoliTom, dpc_knn). Every token joins the nearest
    centre (ties: the first centre in that order) and each centre joins itself.
    Returns centres (B, C) rows and assignment (B, m) in 0..C-1.
    """
    B, m, _ = x.shape
    count = max(0, min(count, m))
    dist = pairwise_distance(x)  # (B, m, m)
    score = density_peak_scores(dist, k)  # (B, m)
    if score_penalty is not None:
        score = score - score_penalty
    centres = torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :count]  # (B, C) by rank
    if centre_order == "index":
        centres = centres.sort(dim=-1).values  # (B, C) by row
    elif centre_order != "rank":
        raise ValueError(f"centre_order={centre_order!r} is unknown; allowed: rank, index")
    to_centre = dist.gather(2, centres.unsqueeze(1).expand(B, m, count))  # (B, m, C)
    assignment = to_centre.argmin(dim=-1)  # (B, m), first centre on ties
    assignment.scatter_(1, centres, torch.arange(count, device=x.device).expand(B, count))  # (B, m)
    return centres, assignment


def cluster_sums(x: Tensor, assignment: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """Per cluster: the sum of its members' features (B, C, D) float32 and their number (B, C, 1).

    One index_add over all B*m rows (faster here than a one-hot (B, C, m) x (B, m, D) product)."""
    B, m, D = x.shape
    flat = (assignment + torch.arange(B, device=x.device).view(B, 1) * count).reshape(-1)  # (B*m,) cluster ids
    sums = torch.zeros(B * count, D, dtype=torch.float32, device=x.device)  # (B*C, D)
    sums.index_add_(0, flat, x.reshape(B * m, D).float())
    members = torch.bincount(flat, minlength=B * count).to(torch.float32)  # (B*C,)
    return sums.view(B, count, D), members.view(B, count, 1)
