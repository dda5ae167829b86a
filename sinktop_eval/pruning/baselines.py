"""Reference points that use no attention: dense (keep all), random, uniform sub-grid."""
from __future__ import annotations

import math

import torch

from .base import PruneOutput, Pruner, VideoTokens, floor_count, frame_major_output, round_half_up, top_k_mask


class DensePruner(Pruner):
    """Keeps every token (the unpruned model). The ratio is ignored: dense means r = 1."""

    name = "dense"

    def describe(self):
        return {**super().describe(), "ratio": 1.0}

    def _prune(self, video: VideoTokens) -> PruneOutput:
        T, n, D = video.features.shape
        index = torch.arange(T * n, device=video.features.device)
        return PruneOutput(video.features.reshape(T * n, D), index, {"per_frame": n})


class RandomPruner(Pruner):
    """Keeps floor(r*n) uniformly random tokens per frame (at least one), drawn from ``seed``.

    The draw depends only on (seed, T, n), so a fixed seed reproduces the kept set exactly.
    """

    name = "random"

    def _prune(self, video: VideoTokens) -> PruneOutput:
        T, n, _ = video.features.shape
        per_frame = max(1, floor_count(self.ratio * n))
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        scores = torch.rand((T, n), generator=generator).to(video.features.device)  # (T, n)
        keep = top_k_mask(scores, per_frame)
        tokens, index = frame_major_output(video.features, keep)
        return PruneOutput(tokens, index, {"per_frame": per_frame})


def subgrid_shape(h: int, w: int, ratio: float) -> tuple[int, int]:
    """The (rows, cols) sub-grid of about ratio*h*w tokens with the grid's own aspect ratio.

    rows = round(sqrt(r*h*w * h/w)), cols = round(r*h*w / rows), clamped to the grid. Keeping the
    aspect matters more than hitting the count exactly: the closest count alone would pick a 3x13
    "grid" for r=0.2 on 14x14. For 14x14: r=0.1 -> 4x5 (20), 0.15 -> 5x6 (30), 0.2 -> 6x7 (42),
    0.25 -> 7x7 (49), 1 -> 14x14.
    """
    target = ratio * h * w
    rows = min(h, max(1, round_half_up(math.sqrt(target * h / w))))
    cols = min(w, max(1, round_half_up(target / rows)))
    return rows, cols


def evenly_spaced(count: int, length: int) -> torch.Tensor:
    """``count`` centred, evenly spaced positions in range(length)."""
    return ((torch.arange(count, dtype=torch.float64) + 0.5) * length / count).floor().long()


class UniformPruner(Pruner):
    """Keeps a regular rows x cols sub-grid of each frame (the "downsampling" baseline)."""

    name = "uniform"

    def _prune(self, video: VideoTokens) -> PruneOutput:
        T, n, _ = video.features.shape
        h, w = video.grid
        rows, cols = subgrid_shape(h, w, self.ratio)
        positions = (evenly_spaced(rows, h).view(-1, 1) * w + evenly_spaced(cols, w).view(1, -1)).reshape(-1)
        keep = torch.zeros((T, n), dtype=torch.bool)
        keep[:, positions] = True
        tokens, index = frame_major_output(video.features, keep.to(video.features.device))
        return PruneOutput(tokens, index, {"per_frame": rows * cols, "subgrid": (rows, cols)})
