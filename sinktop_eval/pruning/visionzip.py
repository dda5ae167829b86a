"""VisionZip applied frame by frame: dominant tokens by attention plus merged contextual tokens."""
from __future__ import annotations

import torch

from .base import PruneOutput, Pruner, VideoTokens, cosine_normalise, floor_count, round_half_up, top_k_mask

# Per-frame budgets the paper used for n = 196 (LLaVA-OV's 14x14 pooled grid).
PAPER_BUDGETS_196 = {0.10: 20, 0.15: 30, 0.20: 40, 0.25: 50}
DOMINANT_SHARE = (54, 64)  # K_d = floor(S * 54 / 64)


def visionzip_budget(ratio: float, n: int) -> tuple[int, int]:
    """(dominant K_d, contextual K_c) tokens per frame for ``ratio`` and n tokens per frame.

    Paper ratios use the published table (scaled by n/196 for other grids); any other ratio uses
    floor(n*r). At least one token is kept.
    """
    table = next((budget for r, budget in PAPER_BUDGETS_196.items() if abs(r - ratio) < 1e-9), None)
    total = round_half_up(table * n / 196) if table is not None else floor_count(n * ratio)
    total = max(1, min(n, total))
    dominant = floor_count(total * DOMINANT_SHARE[0] / DOMINANT_SHARE[1])
    return dominant, total - dominant


# variant="release": the SToP release skips the RELEASE_SINK_SLOTS positions with the largest sink
# score when it places contextual targets, always (even at mu_s = 0). See release_target_slots.
RELEASE_SINK_SLOTS = 20


def release_target_slots(slots: list[int], sink_positions: set[int], remaining: int) -> list[int]:
    """The release's contextual target slots: each stride slot j that equals one of the top-20 sink
    *positions* moves to j + 1, j + 2, ... until it does not (or reaches the end of the list).

    The slot number (an index into the frame's list of ``remaining`` non-dominant tokens) is compared
    with grid positions: mixed index spaces, the release's bug, reproduced because it produced the
    released numbers (release_extras.md). Moved slots may collide with the next stride slot; the
    duplicate target is kept, as in the release. Where the release would run past the list (an index
    error there) the last slot is used.
    """
    moved = []
    for slot in slots:
        while slot in sink_positions and slot < remaining:
            slot += 1
        moved.append(min(slot, remaining - 1))
    return moved


class VisionZipPruner(Pruner):
    """Per frame: top-K_d tokens by A (STSP: by A - mu_s*s), then K_c strided contextual targets that
    absorb the remaining tokens by key similarity (target + mean of its members, as published).
    Output per frame: dominant tokens in raster order, then contextual tokens in target order.

    variant="release": contextual target slots skip the top-20 sink positions (``release_target_slots``).
    sink_handling="hard": dropped tokens are neither dominant, nor targets, nor merged; the budget is
    unchanged, so the kept count equals plain VisionZip's.
    """

    name = "visionzip"
    uses_attention = True
    needs_keys = True
    variants = ("paper", "release")

    def _prune(self, video: VideoTokens) -> PruneOutput:
        X = video.features  # (T, n, D)
        T, n, D = X.shape
        K_d, K_c = visionzip_budget(self.ratio, n)
        device = X.device
        M = n - video.dropped_per_frame - K_d  # remaining (non-dominant, not dropped) tokens per frame
        if M < K_c or M < 0:
            raise ValueError(f"hard_k={self.hard_k} leaves {n - video.dropped_per_frame} tokens per frame, fewer than "
                             f"the {K_d + K_c} VisionZip keeps at ratio={self.ratio}; lower hard_k")

        dominant = top_k_mask(self.importance(video), K_d)  # (T, n)
        available = ~dominant if video.dropped is None else ~dominant & ~video.dropped  # (T, n)
        # Remaining tokens, raster order within each frame; every frame has M of them.
        remaining = torch.nonzero(available, as_tuple=False)[:, 1].view(T, M)  # (T, M) positions
        dominant_pos = torch.nonzero(dominant, as_tuple=False)[:, 1].view(T, K_d)  # (T, K_d)

        frame_offset = (torch.arange(T, device=device) * n).view(T, 1)  # (T, 1)
        flat_X = X.reshape(T * n, D)  # (T*n, D) view
        pieces = [flat_X.index_select(0, (dominant_pos + frame_offset).reshape(-1)).view(T, K_d, D)]
        indices = [dominant_pos]

        if K_c > 0:
            stride = max(1, M // K_c)
            slots = [j * stride for j in range(K_c)]
            if self.variant == "release":
                top = torch.sort(video.sink.float(), descending=True, stable=True).indices[:RELEASE_SINK_SLOTS]
                slots = release_target_slots(slots, set(top.tolist()), M)
            is_target = torch.zeros(M, dtype=torch.bool, device=device)
            is_target[slots] = True
            target_pos = remaining[:, slots]  # (T, K_c), a duplicate slot gives a duplicate target
            member_pos = remaining[:, ~is_target]  # (T, M')

            keys = cosine_normalise(video.keys)  # (T, n, d_k)
            target_keys = torch.gather(keys, 1, target_pos.unsqueeze(-1).expand(-1, -1, keys.shape[-1]))
            member_keys = torch.gather(keys, 1, member_pos.unsqueeze(-1).expand(-1, -1, keys.shape[-1]))
            # (T, M', K_c): ties go to the first target (argmax returns the first maximum)
            assignment = torch.bmm(member_keys, target_keys.transpose(1, 2)).argmax(dim=-1)

            # membership (T, K_c, n): one-hot over each frame's positions; sums are one batched product,
            # so the members are never gathered into a copy of the features
            weights = torch.zeros(T, K_c, n, dtype=torch.float32, device=device)
            weights[torch.arange(T, device=device).view(T, 1), assignment, member_pos] = 1.0
            counts = weights.sum(dim=-1, keepdim=True)  # (T, K_c, 1)
            sums = torch.bmm(weights, X.float())  # (T, K_c, D)
            targets = torch.gather(X, 1, target_pos.unsqueeze(-1).expand(-1, -1, D)).float()  # (T, K_c, D)
            contextual = targets + sums / counts.clamp_min(1.0)  # an empty cluster adds nothing
            pieces.append(contextual.to(X.dtype))
            indices.append(target_pos)

        tokens = torch.cat(pieces, dim=1).reshape(-1, D)  # (T*(K_d+K_c), D)
        index = (torch.cat(indices, dim=1) + frame_offset).reshape(-1)  # (T*(K_d+K_c),)
        return PruneOutput(tokens, index, {"dominant_per_frame": K_d, "contextual_per_frame": K_c})
