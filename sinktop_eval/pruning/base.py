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

# A budget like 0.1 * 190 is 18.999999999999996 in floating point; nudge before floor/ceil.
_EPS = 1e-9


def floor_count(x: float) -> int:
    return int(math.floor(x + _EPS))


def ceil_count(x: float) -> int:
    return int(math.ceil(x - _EPS))


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5 + _EPS))


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
    sink: Tensor | None  # (n,), only when mu_s or mu_t is non-zero

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

    ``uses_attention``: ranks tokens by A, so STSP (mu_s) applies. ``uses_temporal_test``: decides
    temporal redundancy by same-position similarity, so STTP (mu_t) applies. Asking for a SToP term a
    pruner has no place for is an error rather than a silent no-op, so an ablation cannot lie.
    """

    name: ClassVar[str] = "base"
    uses_attention: ClassVar[bool] = False
    uses_temporal_test: ClassVar[bool] = False
    needs_keys: ClassVar[bool] = False

    def __init__(self, ratio: float, mu_s: float = 0.0, mu_t: float = 0.0, gamma: float = 1.1, seed: int = 0):
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

    @property
    def stop(self) -> bool:
        """True when any SToP term is active."""
        return self.mu_s != 0 or self.mu_t != 0

    def describe(self) -> dict[str, Any]:
        """The settings that identify this pruner in results files."""
        return {"pruner": self.name, "ratio": self.ratio, "mu_s": self.mu_s, "mu_t": self.mu_t, "gamma": self.gamma}

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
        """(T, n) float32 ranking signal; STSP-corrected when mu_s != 0."""
        assert video.attn is not None
        return sink_aware_importance(video.attn, video.sink, self.mu_s)

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
        sink = sink_score(attn, self.gamma) if (self.stop and attn is not None) else None
        return VideoTokens(features, attn, keys, grid, frame_features, sink)


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


def pairwise_distance(x: Tensor) -> Tensor:
    """(B, m, D) -> (B, m, m) Euclidean distances scaled by 1/sqrt(D), computed in float32.

    Fast (one Gram matmul per matrix) yet exact where it matters for density peaks:
    - rows are centred first, so |x|^2 + |y|^2 - 2xy does not cancel catastrophically when tokens
      share a large common component (they do: neighbouring patches of one frame);
    - identical tokens (common in static video) are deduplicated first, so they sit at distance
      exactly 0 from each other and have bit-identical distance rows, which keeps density ties and
      nearest-denser links the same as in an exact computation.
    """
    x = x.float()
    B, m, D = x.shape
    out = x.new_empty(B, m, m)
    for b in range(B):
        unique, inverse = torch.unique(x[b], dim=0, return_inverse=True)  # (u, D), (m,)
        unique = unique - unique.mean(dim=0, keepdim=True)
        squared = (unique * unique).sum(dim=-1)  # (u,)
        d2 = squared.unsqueeze(1) + squared.unsqueeze(0) - 2.0 * (unique @ unique.T)  # (u, u)
        d2 = ((d2 + d2.T) * 0.5).clamp_min_(0.0).fill_diagonal_(0.0)
        out[b] = d2.sqrt_()[inverse][:, inverse]
    return out / math.sqrt(D)


def density_peak_scores(dist: Tensor, k: int) -> Tensor:
    """Density-peak score rho * delta for each point of (B, m, m) distance matrices.

    rho_i = exp(-mean of squared distances to its k nearest neighbours, itself included);
    delta_i = distance to the nearest denser point (ties in rho: the lower index counts as denser),
    or, for the densest point, the largest distance in its matrix. Returns (B, m).
    """
    B, m, _ = dist.shape
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


def cosine_normalise(x: Tensor) -> Tensor:
    """L2-normalise the last dim in float32 (zero vectors stay zero)."""
    return torch.nn.functional.normalize(x.float(), dim=-1, eps=1e-12)
