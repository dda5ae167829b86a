"""FastVID: DySeg cuts, per-frame budgets, anchor frames and counts, density-peak anchors and merging."""
import math
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import assert_matches, fastvid_ref, random_inputs  # noqa: E402

from sinktop_eval.pruning import build_pruner  # noqa: E402

SIGMAS = [0.99, 0.95, 0.97, 0.85, 0.999, 0.96, 0.98, 0.93, 0.995]  # T = 10 transitions 0..8


def frames_with_similarities(sigmas, dim=2):
    """Unit 2-D frame features whose consecutive cosines are exactly ``sigmas`` (up to fp)."""
    theta, g = 0.0, []
    for t in range(len(sigmas) + 1):
        g.append([math.cos(theta), math.sin(theta)] + [0.0] * (dim - 2))
        if t < len(sigmas):
            theta += math.acos(sigmas[t])
    return torch.tensor(g, dtype=torch.float32)


def fastvid(ratio=0.5, **kw):
    return build_pruner("fastvid", ratio, **kw)


def small_video(T, n=16, D=6, seed=0):
    X, A, _ = random_inputs(T, n, D=D, seed=seed)
    return X, A


@pytest.mark.parametrize("c,tau,segments", [
    (3, 0.9, [4, 4, 2]),  # 2 lowest: t=3 (.85), t=7 (.93); below .9: t=3
    (3, 0.955, [2, 2, 4, 2]),  # below .955 adds t=1 (.95)
    (1, 0.9, [4, 6]),  # no "lowest" cuts, only t=3 below tau
    (8, 0.9, [1, 1, 1, 1, 2, 1, 1, 2]),  # 7 lowest: t = 3, 7, 1, 5, 2, 6, 0
    (10, 0.5, [1] * 10),  # c - 1 >= T - 1: every transition is a cut
    (2, 0.0, [4, 6]),  # nothing below tau: just the single lowest
])
def test_dyseg_cut_set_by_hand(c, tau, segments):
    X, A = small_video(10)
    out = fastvid(c=c, tau_seg=tau)(X, A, grid=(4, 4), frame_features=frames_with_similarities(SIGMAS))
    assert out.info["segments"] == segments
    assert out.info["global_feature"] == "frame_features"


def test_dyseg_ties_cut_after_the_earlier_transition():
    X, A = small_video(10)
    g = torch.ones(10, 3)  # all similarities equal
    out = fastvid(c=3, tau_seg=0.5)(X, A, grid=(4, 4), frame_features=g)
    assert out.info["segments"] == [1, 1, 8]


def test_dyseg_default_global_feature_is_the_frame_mean_token():
    T, n, D = 6, 16, 4
    g = frames_with_similarities([0.99, 0.5, 0.99, 0.99, 0.7], dim=D)  # cuts after 1 and 4 (< 0.9)
    X = g.view(T, 1, D).expand(T, n, D).clone()
    noise = torch.randn(T, n, D, generator=torch.Generator().manual_seed(0)) * 0.01
    X += noise - noise.mean(dim=1, keepdim=True)  # tokens differ but each frame's mean is g_t
    A = torch.rand(T, n, generator=torch.Generator().manual_seed(1))
    out = fastvid(c=1, tau_seg=0.9)(X, A, grid=(4, 4))
    assert out.info["segments"] == [2, 3, 1]
    assert out.info["global_feature"] == "mean_token"


def test_single_frame_video():
    X, A = small_video(1)
    out = fastvid(0.5)(X, A, grid=(4, 4))
    assert out.info["segments"] == [1] and len(out) == 8


# R = floor(196 r), R_c = floor(0.4 R), R_s = R - R_c, by hand
@pytest.mark.parametrize("ratio,R,R_s,R_c", [(0.1, 19, 12, 7), (0.15, 29, 18, 11), (0.2, 39, 24, 15),
                                             (0.25, 49, 30, 19), (0.5, 98, 59, 39)])
def test_per_frame_budgets_on_196(ratio, R, R_s, R_c):
    X, A = small_video(2, n=196, D=3)
    out = fastvid(ratio, c=2)(X, A, grid=(14, 14))  # 2 segments of one frame: exactly R per frame
    assert (out.info["salient_per_frame"], out.info["context_per_frame"]) == (R_s, R_c)
    assert out.info["segments"] == [1, 1]
    assert len(out) == 2 * R
    for t in range(2):  # the salient tokens are the top-R_s by attention
        top = sorted(range(196), key=lambda i: (-float(A[t, i]), i))[:R_s]
        assert {t * 196 + i for i in top} <= set(out.index.tolist())


def salient_sets(A, R_s):
    return [set(sorted(range(A.shape[1]), key=lambda i: (-float(A[t, i]), i))[:R_s]) for t in range(A.shape[0])]


# n = 16, r = 0.5: R = 8, R_c = floor(3.2) = 3, R_s = 5, m = 11 non-salient per frame. Segments [4, 4, 2].
@pytest.mark.parametrize("p,anchors_per_frame", [
    (2, {1: 6, 3: 6, 5: 6, 7: 6, 9: 6}),  # L=4: j=1,3, floor(3*4/2)=6; L=2: j=1, floor(3*2/1)=6
    (3, {0: 6, 3: 6, 4: 6, 7: 6, 9: 6}),  # L=4: (3-j)%3==0 -> j=0,3
    (4, {3: 11, 7: 11, 9: 6}),  # L=4: one anchor frame, floor(12/1)=12 clamped to m=11
    (1, {t: 3 for t in range(10)}),  # every frame an anchor frame, floor(3*L/L)=3
])
def test_anchor_frames_and_per_anchor_frame_counts(p, anchors_per_frame):
    X, A = small_video(10, seed=3)
    out = fastvid(0.5, c=3, p=p)(X, A, grid=(4, 4), frame_features=frames_with_similarities(SIGMAS))
    assert out.info["segments"] == [4, 4, 2]
    salient = salient_sets(A, 5)
    got = {}
    for j in out.index.tolist():
        t, i = divmod(j, 16)
        if i not in salient[t]:
            got[t] = got.get(t, 0) + 1
    assert got == anchors_per_frame
    assert len(out) == 10 * 5 + sum(anchors_per_frame.values())
    assert out.index.tolist() == sorted(out.index.tolist())  # ordered by original position


def test_merge_weight_is_max_of_inverse_count_and_beta():
    # T=2 one segment, n=4, r=1: R=4, R_c=1, R_s=3, m=1. p=4 -> anchor frame 1 with min(1, 2) = 1 anchor:
    # frame 1's non-salient token x1. Members: x0 (frame 0's non-salient) and x1 itself.
    T, n, D = 2, 4, 3
    X = torch.randn(T, n, D, generator=torch.Generator().manual_seed(0))
    A = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.1, 0.4, 0.3, 0.2]])  # non-salient: (0, 3) and (1, 0)
    g = torch.ones(T, 2)
    x0, x1 = X[0, 3], X[1, 0]
    out = fastvid(1.0, c=1)(X, A, grid=(2, 2), frame_features=g)
    assert out.index.tolist() == [0, 1, 2, 4, 5, 6, 7]
    mean = (x0 + x1) / 2
    assert torch.allclose(out.tokens[3], 0.6 * x1 + 0.4 * mean, atol=1e-6)  # w = max(1/3, 0.6)
    out = fastvid(1.0, c=1, beta=0.1)(X, A, grid=(2, 2), frame_features=g)
    assert torch.allclose(out.tokens[3], x1 / 3 + 2 / 3 * mean, atol=1e-6)  # w = max(1/3, 0.1)
    assert torch.equal(out.tokens[[0, 1, 2, 4, 5, 6]], X.reshape(8, D)[[0, 1, 2, 5, 6, 7]])  # salient copied


def scene_video(T, n, D, cuts, seed, noise=0.3):
    """Frames share a scene vector (high frame-mean similarity) until a scene cut."""
    g = torch.Generator().manual_seed(seed)
    X = torch.empty(T, n, D)
    base = torch.randn(n, D, generator=g)
    for t in range(T):
        if t in cuts:
            base = torch.randn(n, D, generator=g)
        X[t] = base + noise * torch.randn(n, D, generator=g)
    A = torch.rand(T, n, generator=g)
    return X, A


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("T,cuts,c,p", [(9, {4}, 3, 4), (9, {3, 6}, 8, 2), (8, set(), 2, 4), (12, {5}, 3, 3)])
@pytest.mark.parametrize("ratio,mu_s", [(0.5, 0.0), (0.3, 0.02), (0.75, 0.5)])
def test_matches_slow_reference_default_global_feature(seed, T, cuts, c, p, ratio, mu_s):
    X, A = scene_video(T, 16, 6, cuts, seed)
    out = fastvid(ratio, mu_s=mu_s, c=c, p=p)(X, A, grid=(4, 4))
    tokens, index, info = fastvid_ref(X, A, ratio, mu_s=mu_s, c=c, p=p)
    assert out.info["segments"] == info["segments"]
    assert_matches(out, tokens, index)


@pytest.mark.parametrize("seed", range(3))
def test_matches_slow_reference_with_frame_features_and_196_tokens(seed):
    X, A = scene_video(6, 196, 4, {3}, seed)
    g = torch.randn(6, 5, generator=torch.Generator().manual_seed(seed)) + 3.0
    out = fastvid(0.1, mu_s=0.02, c=3)(X, A, grid=(14, 14), frame_features=g)
    tokens, index, info = fastvid_ref(X, A, 0.1, mu_s=0.02, c=3, frame_features=g)
    assert out.info["segments"] == info["segments"]
    assert_matches(out, tokens, index)


def test_matches_slow_reference_with_duplicate_tokens():
    """Flat backgrounds repeat the same token exactly; distances between copies must be exactly 0
    (d_ij = ||x_i - x_j|| / sqrt(D)), so density ties and nearest-denser links follow the index rule."""
    # n = 49, r = 0.5: R = 24, R_c = 9, R_s = 15, m = 34 (> 25: where torch.cdist switches to matmul);
    # p = 1: every frame picks floor(9*4/4) = 9 anchors among its 34 non-salient tokens.
    T, n, D = 4, 49, 8
    g = torch.Generator().manual_seed(0)
    palette = torch.randn(3, D, generator=g) * 20
    X = palette[torch.randint(0, 3, (T, n), generator=g)]
    X[:, :6] += torch.randn(T, 6, D, generator=g)  # a few distinct tokens
    A = torch.rand(T, n, generator=g)
    out = fastvid(0.5, c=1, tau_seg=-1.0, p=1)(X, A, grid=(7, 7))
    tokens, index, info = fastvid_ref(X, A, 0.5, c=1, tau_seg=-1.0, p=1)
    assert out.info["segments"] == info["segments"] == [4]
    assert_matches(out, tokens, index, atol=1e-4, rtol=1e-5)


def test_leftovers_join_one_anchor_in_each_anchor_frame_by_hand():
    """One segment of L = 5 frames, p = 4: anchor frames 0 and 4 ((L-1-j) mod 4 == 0), one anchor each.

    n = 2, r = 1, d = 0.5: R = 2, R_c = 1, R_s = 1. Position 0 is salient in every frame (A = 0.9), so the
    non-salient tokens are u_t = X[t, 1]: u0 = (2, 0), u1 = (1, 0), u2 = (0, 1), u3 = (0, 3), u4 = (0, 2);
    anchors u0 (frame 0) and u4 (frame 4). Per anchor frame (the release, algorithms.md) each anchor absorbs
    all five: mean = (0.6, 1.2), w = max(1/6, 0.6) = 0.6:
        u0' = 0.6 (2, 0) + 0.4 (0.6, 1.2) = (1.44, 0.48);  u4' = 0.6 (0, 2) + 0.4 (0.6, 1.2) = (0.24, 1.68).
    The old rule (one anchor across all anchor frames) splits them {u0, u1} / {u2, u3, u4} and would give
    (1.8, 0) and (0, 2).
    """
    T, n = 5, 2
    X = torch.zeros(T, n, 2)
    X[:, 0] = torch.tensor([5.0, 5.0])
    X[:, 1] = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 2.0]])
    A = torch.tensor([[0.9, 0.1]] * T)
    out = fastvid(1.0, c=1, tau_seg=-1.0, d=0.5, p=4)(X, A, grid=(1, 2), frame_features=torch.ones(T, 2))
    assert out.info["segments"] == [5]
    assert out.index.tolist() == [0, 1, 2, 4, 6, 8, 9]  # salient (t, 0) for every t, anchors (0, 1), (4, 1)
    assert torch.allclose(out.tokens[1], torch.tensor([1.44, 0.48]), atol=1e-6)
    assert torch.allclose(out.tokens[6], torch.tensor([0.24, 1.68]), atol=1e-6)
    assert torch.equal(out.tokens[[0, 2, 3, 4, 5]], X[:, 0])
