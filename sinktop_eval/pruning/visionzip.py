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


class VisionZipPruner(Pruner):
    """Per frame: top-K_d tokens by A (STSP: by A - mu_s*s), then K_c strided contextual targets that
    absorb the remaining tokens by key similarity (target + mean of its members, as published).
    Output per frame: dominant tokens in raster order, then contextual tokens in raster order.
    """

    name = "visionzip"
    uses_attention = True
    needs_keys = True

    def _prune(self, video: VideoTokens) -> PruneOutput:
        X = video.features  # (T, n, D)
        T, n, D = X.shape
        K_d, K_c = visionzip_budget(self.ratio, n)
        device = X.device

        dominant = top_k_mask(self.importance(video), K_d)  # (T, n)
        # Remaining tokens, raster order within each frame; every frame has M of them.
        M = n - K_d
        remaining = torch.nonzero(~dominant, as_tuple=False)[:, 1].view(T, M)  # (T, M) positions
        dominant_pos = torch.nonzero(dominant, as_tuple=False)[:, 1].view(T, K_d)  # (T, K_d)

        frame_offset = (torch.arange(T, device=device) * n).view(T, 1)
        flat_X = X.reshape(T * n, D)
        pieces, indices = [flat_X.index_select(0, (dominant_pos + frame_offset).reshape(-1)).view(T, K_d, D)], [dominant_pos]

        if K_c > 0:
            stride = max(1, M // K_c)
            slot_is_target = torch.zeros(M, dtype=torch.bool, device=device)
            slot_is_target[torch.arange(K_c, device=device) * stride] = True
            target_pos = remaining[:, slot_is_target]  # (T, K_c)
            member_pos = remaining[:, ~slot_is_target]  # (T, M - K_c)

            keys = cosine_normalise(video.keys)  # (T, n, d_k)
            target_keys = torch.gather(keys, 1, target_pos.unsqueeze(-1).expand(-1, -1, keys.shape[-1]))
            member_keys = torch.gather(keys, 1, member_pos.unsqueeze(-1).expand(-1, -1, keys.shape[-1]))
            # (T, M - K_c, K_c): ties go to the first target (argmax returns the first maximum)
            assignment = torch.bmm(member_keys, target_keys.transpose(1, 2)).argmax(dim=-1)

            frame_ids = torch.arange(T, device=device).view(T, 1)
            cluster = (assignment + frame_ids * K_c).reshape(-1)  # (T*(M-K_c),) cluster id over all frames
            member_flat = (member_pos + frame_offset).reshape(-1)
            sums = torch.zeros(T * K_c, D, dtype=torch.float32, device=device)
            sums.index_add_(0, cluster, flat_X.index_select(0, member_flat).float())
            counts = torch.bincount(cluster, minlength=T * K_c).to(torch.float32).unsqueeze(1)  # (T*K_c, 1)
            targets = flat_X.index_select(0, (target_pos + frame_offset).reshape(-1)).float()
            contextual = targets + sums / counts.clamp_min(1.0)  # an empty cluster adds nothing
            pieces.append(contextual.to(X.dtype).view(T, K_c, D))
            indices.append(target_pos)

        tokens = torch.cat(pieces, dim=1).reshape(-1, D)  # (T*(K_d+K_c), D)
        index = (torch.cat(indices, dim=1) + frame_offset).reshape(-1)
        return PruneOutput(tokens, index, {"dominant_per_frame": K_d, "contextual_per_frame": K_c})
