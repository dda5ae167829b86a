"""FlashVID (SToP's port, pre-LLM stage only): budgets, DySeg, ADTS, TSTM and the DPC merge by hand
(shared/docs/specs/flashvid.md sections 3, 7, 9), and the whole pruner against the slow reference."""
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import assert_matches, flashvid_ref, random_inputs  # noqa: E402

from sinktop_eval.pruning import build_pruner  # noqa: E402
from sinktop_eval.pruning.base import cosine_normalise  # noqa: E402
from sinktop_eval.pruning.flashvid import adts_pick, flashvid_budget, tstm_roots, tstm_values  # noqa: E402


def flashvid(ratio=0.25, **kw):
    return build_pruner("flashvid", ratio, **kw)


# ------------------------------------------------------------------------------------------ budgets
@pytest.mark.parametrize("n,ratio,budget", [
    (196, 0.10, (25, 18, 7)),  # n r e = 24.5 -> 25; 0.7 * 25 = 17.5 -> 18
    (196, 0.15, (37, 26, 11)),  # 36.75 -> 37; 25.9 -> 26
    (196, 0.20, (49, 35, 14)),  # 49.0 -> 49; 34.3 -> 35
    (196, 0.25, (62, 44, 18)),  # 61.25 -> 62; 43.4 -> 44
    (169, 0.10, (22, 16, 6)),  # 21.125 -> 22; 15.4 -> 16
    (196, 1e-9, (1, 1, 0)),  # never below one token per frame
    (196, 1.0, (196, 138, 58)),  # 245 capped at n
])
def test_budget_table(n, ratio, budget):
    assert flashvid_budget(ratio, n) == budget


def test_true_kept_count_includes_the_expansion():
    # T = 32, n = 196, r = 0.1: about T * B = 800 tokens (12.8 %), not r*T*n = 627
    X, A, _ = random_inputs(32, 196, D=8, seed=0, static_frac=0.5, noise=0.2)
    out = flashvid(0.1)(X, A, grid=(14, 14))
    assert out.info["kept"] == len(out) and out.info["expansion"] == 1.25
    assert (out.info["budget_per_frame"], out.info["adts_per_frame"], out.info["merge_per_frame"]) == (25, 18, 7)
    assert abs(len(out) - 32 * 25) <= 32  # within a token per frame of T*B (cluster counts round up)
    assert out.info["kept_ratio"] == pytest.approx(len(out) / (32 * 196))


# ------------------------------------------------------------------------------------------ DySeg
def test_dyseg_example_of_the_spec():
    """Frame means (1,0), (1,.1), (.2,1), (.25,1), (.3,1), (1,1): cos = .995, .293, .9989, .9989, .881;
    tau = .9 cuts after 1 and 4 (3 segments < c_min = 4), then the least similar remaining transition,
    0 (.995; the cut ones count as 1), is cut too -> lengths (1, 1, 3, 1)."""
    means = torch.tensor([[1, 0], [1, 0.1], [0.2, 1], [0.25, 1], [0.3, 1], [1, 1]])
    X = means.unsqueeze(1).repeat(1, 4, 1)  # every token equals its frame mean
    out = flashvid(0.5, min_segments=4)(X, torch.rand(6, 4), grid=(2, 2))
    assert out.info["segments"] == [1, 1, 3, 1]
    assert flashvid(0.5, min_segments=1)(X, torch.rand(6, 4), grid=(2, 2)).info["segments"] == [2, 3, 1]


def test_dyseg_on_a_clip_shorter_than_the_segment_count_has_no_empty_segments():
    X, A, _ = random_inputs(3, 4, D=4, seed=1)
    assert flashvid(0.5)(X, A, grid=(2, 2)).info["segments"] == [1, 1, 1]


# ------------------------------------------------------------------------------------------ ADTS
def test_adts_example_of_the_spec():
    """X = (1,0), (.9,.1), (0,1), (.7,.7), A = (.4,.3,.2,.1), g = (.65,.45): column nearest-neighbour
    scores 1.59e3, 1.16e3, 2.64e4, 1.69e4 -> first pick 2; then row 2's largest is token 0 -> {0, 2}."""
    X = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7]]])
    A = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    scale = A * 1e6 * (X[0] @ torch.tensor([0.65, 0.45]))
    assert adts_pick(X, scale, 2).tolist() == [[0, 2]]
    # through the pruner: n = 4, r = 0.4 -> B = ceil(2.0) = 2, K_a = ceil(1.4) = 2, K_m = 0
    out = flashvid(0.4)(X, A, grid=(2, 2))
    assert (out.info["adts_per_frame"], out.info["merge_per_frame"]) == (2, 0)
    assert out.index.tolist() == [0, 2] and torch.equal(out.tokens, X[0, [0, 2]])


def six_token_frame():
    X = torch.tensor([[[1.0, 0.2], [0.8, 0.5], [0.3, 1.0], [0.9, 0.6], [0.2, 0.4], [1.0, 1.0]]])  # no two collinear
    A = torch.tensor([[3.0, 2.5, 1.2, 1.0, 0.8, 0.5]]) * 1e-3
    return X, A


def test_stsp_scale_hazard_picks_one_token_three_times():
    """Spec section 6: A = (3, 2.5, 1.2, 1, .8, .5)e-3, gamma 1.1 -> s = (1, .789, .262, .185, .110, 0);
    mu_s = .02 makes A - mu_s s negative everywhere but token 5, so every column but 5 scores negative
    and v2 picks token 5 three times. n = 6, r = 0.4: B = 3, K_a = 3, K_m = 0."""
    X, A = six_token_frame()
    plain = flashvid(0.4)(X, A, grid=(2, 3))
    assert len(set(plain.index.tolist())) == 3 and plain.info["duplicates"] == 0
    stsp = flashvid(0.4, mu_s=0.02)(X, A, grid=(2, 3))
    assert stsp.index.tolist() == [5, 5, 5] and stsp.info["duplicates"] == 2
    masked = flashvid(0.4, mu_s=0.02, mask_picked=True)(X, A, grid=(2, 3))
    assert len(set(masked.index.tolist())) == 3 and 5 in masked.index.tolist() and masked.info["duplicates"] == 0
    for out, kw in ((plain, {}), (stsp, {"mu_s": 0.02}), (masked, {"mu_s": 0.02, "mask_picked": True})):
        tokens, index, _ = flashvid_ref(X, A, 0.4, **kw)
        assert_matches(out, tokens, index)


# ------------------------------------------------------------------------------------------ TSTM
def chain_segment():
    """3 frames x 2 tokens: token 0 drifts (1,0) <- (1,.1) <- (1,.2) (cos ~.995 per step); token 1 is
    (0,1), (-1,0), (0,-1): never more similar than .8 to anything of the previous frame."""
    return torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.1], [-1.0, 0.0]], [[1.0, 0.2], [0.0, -1.0]]])


def test_tstm_chain_root_value_counts_direct_children_only():
    X = chain_segment()
    roots, parent = tstm_roots(cosine_normalise(X), torch.zeros(3, 2, dtype=torch.bool), 0.8, 0)
    assert roots.tolist() == [[True, True], [False, True], [False, True]]
    assert parent[1, 0] == 0 and parent[2, 0] == 0
    values = tstm_values(X, roots, parent, roots, true_mean=False)  # roots in order (0,0), (0,1), (1,1), (2,1)
    # root (0, 0) = ((1,0) + (1,.1) + (1,.2)) / (1 + one direct child) = (1.5, .15), the release's count
    assert torch.allclose(values[0], torch.tensor([1.5, 0.15]), atol=1e-6)
    assert torch.equal(values[1:], X[[0, 1, 2], [1, 1, 1]])
    mean = tstm_values(X, roots, parent, roots, true_mean=True)
    assert torch.allclose(mean[0], torch.tensor([1.0, 0.1]), atol=1e-6)
    only = tstm_values(X, roots, parent, torch.tensor([[True, False], [False, False], [False, True]]), False)
    assert torch.allclose(only, torch.stack([torch.tensor([1.5, 0.15]), X[2, 1]]), atol=1e-6)


def test_tstm_lower_bound_caps_the_merges():
    # every token of frame 1 is a near copy of a frame-0 token (cos .99995, .9998, .958, .928): 4 links,
    # 4 roots. A lower bound of 6 roots raises the threshold to the (8 - 6) = 2nd largest similarity,
    # .9998, and a link needs a similarity strictly above it: only token 0 stays linked (7 roots), as the
    # release's rule does (it keeps at least, not exactly, the lower bound).
    X0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    X1 = X0 + torch.tensor([[0.0, 0.01], [0.02, 0.0], [0.0, 0.3], [0.4, 0.0]])
    unit = cosine_normalise(torch.stack([X0, X1]))
    roots, _ = tstm_roots(unit, torch.zeros(2, 4, dtype=torch.bool), 0.8, 0)
    assert int(roots.sum()) == 4
    roots, _ = tstm_roots(unit, torch.zeros(2, 4, dtype=torch.bool), 0.8, 6)
    assert roots[1].tolist() == [False, True, True, True]
    roots, _ = tstm_roots(unit, torch.zeros(2, 4, dtype=torch.bool), 0.8, 5)  # 3rd largest, .958: 2 links
    assert roots[1].tolist() == [False, False, True, True]


def test_adts_tokens_are_never_linked():
    X = chain_segment()
    selected = torch.tensor([[True, False], [False, False], [False, False]])
    roots, _ = tstm_roots(cosine_normalise(X), selected, 0.8, 0)
    assert roots[1, 0]  # its only similar parent is an ADTS token


# ------------------------------------------------------------------------------------------ the whole pruner
def scene_video(T, n, D, cuts, seed, noise=0.15):
    g = torch.Generator().manual_seed(seed)
    X = torch.empty(T, n, D)
    base = torch.randn(n, D, generator=g) + 1.0
    for t in range(T):
        if t in cuts:
            base = torch.randn(n, D, generator=g) + 1.0
        X[t] = base + noise * torch.randn(n, D, generator=g)
    A = torch.rand(T, n, generator=g)
    A[:, :2] += 0.5  # sinks
    return X, A


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("T,cuts,min_segments", [(6, {3}, 2), (8, {2, 5}, 4), (7, set(), 3)])
@pytest.mark.parametrize("ratio,kw", [(0.25, {}), (0.4, {"mu_s": 0.5}), (0.25, {"mu_s": 0.5, "sink_scope": "video"}),
                                      (0.4, {"true_mean": True, "temporal_threshold": 0.95})])
def test_matches_slow_reference(seed, T, cuts, min_segments, ratio, kw):
    X, A = scene_video(T, 16, 6, cuts, seed)
    out = flashvid(ratio, min_segments=min_segments, **kw)(X, A, grid=(4, 4))
    tokens, index, info = flashvid_ref(X, A, ratio, c_min=min_segments, tau_t=kw.get("temporal_threshold", 0.8),
                                       **{k: v for k, v in kw.items() if k != "temporal_threshold"})
    assert out.info["segments"] == info["segments"]
    assert_matches(out, tokens, index, atol=1e-5, rtol=1e-5)


def test_reference_cases_merge_and_cluster():
    # guard: the reference cases above do link tokens across frames and cluster with unequal quotas
    X, A = scene_video(8, 16, 6, {2, 5}, 0)
    out = flashvid(0.25, min_segments=4)(X, A, grid=(4, 4))
    B = out.info["budget_per_frame"]
    assert len(out) < 8 * 16 and len(out) <= 8 * B + 8
    per_frame = torch.bincount(out.index // 16, minlength=8)
    assert len(set(per_frame.tolist())) > 1  # frames got different numbers of merged tokens


def test_hard_pruning_removes_tokens_before_flashvid():
    X, A = scene_video(6, 16, 6, {3}, 1)
    plain = flashvid(0.25, min_segments=2)(X, A, grid=(4, 4))
    hard = flashvid(0.25, min_segments=2, sink_handling="hard", hard_k=0.25)(X, A, grid=(4, 4))
    top = {t: set(sorted(range(16), key=lambda i: (-float(A[t, i]), i))[:4]) for t in range(6)}
    assert all((j % 16) not in top[j // 16] for j in hard.index.tolist())  # no dropped token is kept ...
    assert any((j % 16) in top[j // 16] for j in plain.index.tolist())  # ... plain FlashVID does keep some
    # and the survivors are pruned exactly as FlashVID prunes a video made of them (same n for the budget)
    zero = flashvid(0.25, min_segments=2, sink_handling="hard", hard_k=0.0)(X, A, grid=(4, 4))
    assert torch.equal(zero.index, plain.index) and torch.equal(zero.tokens, plain.tokens)
