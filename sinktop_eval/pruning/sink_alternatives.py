"""The two naive sink-handling alternatives SToP is compared with (paper Fig. 7): hard pruning and
attention redistribution. Both act on the attention signal *before* a base pruner runs, so either can
be put in front of any pruner that ranks tokens by attention (``Pruner(sink_handling=...)``).

Neither is in the SToP release; these are the readings of ``shared/docs/specs/baselines_extra.md``
(b) and (c), chosen there as the most literal reading of the paper's one-line descriptions.

Hard pruning (``sink_handling="hard"``)
    Per frame, the ceil(K*n) tokens with the largest attention A[t, i] (K = 10 % by default, the
    paper's best) are removed from the frame *entirely* before pruning: they can be neither kept nor
    a merge target, and they are not merged into any kept token. The base pruner then runs on the
    survivors with its unchanged budget (computed from the full n), so the kept count equals the base
    pruner's at the same r. K = 0 removes nothing and is bit-identical to the base pruner.
    ``hard_unit="position"`` instead removes the ceil(K*n) *positions* with the largest mean_t A[t, i]
    from every frame (the "same coordinates in every frame" notion of a sink).

Attention redistribution (``sink_handling="redistribute"``)
    The encoder-side reading of Kang et al. (ICLR 2025): within each frame a fraction p (0.6) of the
    attention on the sink set Z is taken away and handed to the other tokens in proportion to their own
    attention; the base pruner then ranks by the redistributed map:

        A'[t, i] = (1 - p) * A[t, i]                          i in Z
        A'[t, i] = A[t, i] + p * m_Z(t) * A[t, i] / m_N(t)      i not in Z

    with m_Z(t), m_N(t) the frame's attention mass on / off Z, so each row keeps its sum. Z is the
    project's one sink set (``sink.sink_set``: the top 10 % positions by the SToP sink score s, s > 0),
    the set the spec's Fig. 7 runs name; ``redistribute_threshold`` switches to Z = {i : s_i >= thr}.
    If a frame has no attention off Z (m_N = 0) the removed mass is spread evenly over the non-sink
    positions, so the row sum is still kept. Non-sinks are scaled by a common factor and sinks by
    (1 - p): a multiplicative demotion, which is why it is expected to be weaker than STSP's
    subtraction. The LLM-side variant of the spec (editing decoder attention) is not implemented here:
    it changes the decoder, not the pruning.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .sink import sink_set


def hard_drop_count(k: float, n: int) -> int:
    """ceil(k * n) tokens (or positions) dropped per frame."""
    return min(n, int(math.ceil(k * n - 1e-9)))


def hard_drop_mask(attn: Tensor, k: float, unit: str = "token") -> Tensor | None:
    """(T, n) bool mask of the tokens hard pruning removes, or None when k * n rounds to nothing.

    ``unit="token"``: per frame the ceil(k*n) most attended tokens; ``"position"``: the ceil(k*n)
    positions with the largest mean_t A[t, i], in every frame. Ties go to the lower position, so every
    frame loses exactly the same number of tokens.
    """
    T, n = attn.shape
    count = hard_drop_count(k, n)
    if count == 0:
        return None
    values = attn.float()  # (T, n)
    if unit == "position":
        values = values.mean(dim=0, keepdim=True).expand(T, n)  # (T, n) same ranking in every frame
    elif unit != "token":
        raise ValueError(f"hard_unit={unit!r} is unknown; allowed: token, position")
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices[:, :count]  # (T, count)
    mask = torch.zeros((T, n), dtype=torch.bool, device=attn.device)
    return mask.scatter_(1, order, True)


def redistribution_set(sink: Tensor, top: float = 0.1, threshold: float | None = None) -> Tensor:
    """(n,) bool sink set Z for redistribution: ``sink_set(sink, top)`` or {i : s_i >= threshold}."""
    if threshold is not None:
        return sink.float() >= threshold
    return sink_set(sink, top)


def redistribute_attention(attn: Tensor, zone: Tensor, p: float = 0.6) -> Tensor:
    """Move a fraction p of each frame's attention on ``zone`` to the other tokens (see module doc).

    attn: (T, n) non-negative; zone: (n,) bool. Returns (T, n) float32 with the same row sums.
    """
    A = attn.float()  # (T, n)
    Z = zone.to(A.device).view(1, -1)  # (1, n)
    on = (A * Z).sum(dim=1, keepdim=True)  # (T, 1) m_Z
    off = (A * ~Z).sum(dim=1, keepdim=True)  # (T, 1) m_N
    n_off = int((~Z).sum())
    if n_off == 0:  # every position is a sink: nowhere to move attention to
        return A.clone()
    share = torch.where(off > 0, A / off.clamp_min(torch.finfo(A.dtype).tiny), torch.full_like(A, 1.0 / n_off))  # (T, n)
    return torch.where(Z, (1.0 - p) * A, A + p * on * share)  # (T, n)
