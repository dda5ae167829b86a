"""PruneVid stage 1 (SToP's port): refinement, static test, budget-matched ratio and cluster counts by hand
(shared/docs/specs/prunevid.md sections 3, 4, 7, 9), any grid, and the whole pruner against the slow reference."""
import pathlib
import sys
from fractions import Fraction

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import assert_matches, prunevid_ref, refine_ref  # noqa: E402

from sinktop_eval.pruning import build_pruner  # noqa: E402
from sinktop_eval.pruning.prunevid import cluster_ratio, label_windows, refine_labels, static_positions  # noqa: E402


def prunevid(ratio=0.25, **kw):
    return build_pruner("prunevid", ratio, **kw)


# ------------------------------------------------------------------------------------------ refinement
@pytest.mark.parametrize("labels,refined,windows", [
    # the spec's case: label 1 only in single frames (2 and 7) -> released; label 0's two runs of 2 are both
    # kept; frame 2: neighbours 0-1 (len 2) and 3-4 (len 2) tie -> left -> 0; frame 7 -> its left run, 2
    ([0, 0, 1, 0, 0, 2, 2, 1], [0, 0, 0, 0, 0, 2, 2, 2], [(0, 4), (5, 7)]),
    # label 0's shorter run (frame 4) and label 2 (a single frame) are released; frames 3-4 form one
    # released run between runs of length 3 and 3: tie -> left
    ([0, 0, 0, 2, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1, 1], [(0, 4), (5, 7)]),
    # the longer neighbour wins: frame 2 sits between a run of 2 and a run of 3 -> right
    ([0, 0, 2, 1, 1, 1], [0, 0, 1, 1, 1, 1], [(0, 1), (2, 5)]),
    # nothing survives: no neighbours -> label 0
    ([3, 1, 2], [0, 0, 0], [(0, 2)]),
    ([1, 1, 1, 1], [1, 1, 1, 1], [(0, 3)]),
])
def test_refine_labels_by_hand(labels, refined, windows):
    assert refine_labels(labels) == refined == refine_ref(labels)
    assert label_windows(refined) == windows


def test_refine_agrees_with_reference_on_random_label_sequences():
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        labels = torch.randint(0, 4, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g).tolist()
        assert refine_labels(labels) == refine_ref(labels), labels


# ------------------------------------------------------------------------------------------ static test, ratio
def test_one_frame_window_has_no_static_positions():
    X = torch.randn(1, 6, 4)
    assert not static_positions(X, -1.0).any()


def test_static_test_is_the_mean_over_pairs_of_distinct_frames():
    # position 0 identical in 3 frames (mean 1); position 1: (1,0), (1,0), (0,1): cos 1, 0, 0 -> mean 1/3
    X = torch.tensor([[[2.0, 0.0], [1.0, 0.0]], [[2.0, 0.0], [1.0, 0.0]], [[2.0, 0.0], [0.0, 1.0]]])
    assert static_positions(X, 0.3).tolist() == [True, True]
    assert static_positions(X, 0.34).tolist() == [True, False]


def test_cluster_ratio_examples_of_the_spec():
    # w = 4, |S| = 100, n = 196, r = 0.1: 78.4 / 484 + 0.005 = 0.16698...; w = 1: 0.1 + 0.005
    assert float(cluster_ratio(0.1, 196, 4, 100)) == pytest.approx(78.4 / 484 + 0.005, abs=1e-15)
    assert cluster_ratio(0.1, 196, 1, 0) == Fraction(105, 1000)
    assert cluster_ratio(0.5, 4, 4, 2) == Fraction(805, 1000)  # section 7: 0.5*4*4/10 + 0.005
    assert cluster_ratio(1.0, 16, 3, 0) == 1


def static_dynamic_video(T, n, n_static, D=32, seed=0):
    """Positions < n_static identical in every frame; the others fresh Gaussian vectors every frame."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(T, n, D, generator=g)
    X[:, :n_static] = torch.randn(n_static, D, generator=g) + 3.0
    return X


def test_counts_of_the_196_example():
    """T = 4 -> floor(4 * 0.25) = 1 temporal cluster, one window of 4; 100 static positions:
    rho = 0.16698; static floor(16.698) = 16 clusters; dynamic floor(96 * 0.16698) = 16 per frame -> 80."""
    X = static_dynamic_video(4, 196, 100)
    out = prunevid(0.1)(X, grid=(14, 14))
    assert out.info["windows"] == [(0, 3)] and out.info["static_positions"] == [100]
    assert len(out) == 16 + 4 * 16
    assert all(0 <= j < 100 for j in out.index[:16].tolist())  # static tokens stand in the first frame
    for t in range(4):
        frame = out.index[16 + 16 * t:16 + 16 * (t + 1)].tolist()
        assert all(t * 196 + 100 <= j < (t + 1) * 196 for j in frame)


def test_one_frame_window_keeps_20_tokens_at_r_0_1():
    X = static_dynamic_video(1, 196, 0)
    out = prunevid(0.1)(X, grid=(14, 14))  # rho = 0.105, floor(196 * 0.105) = floor(20.58) = 20
    assert out.info["windows"] == [(0, 0)] and len(out) == 20


def test_small_sets_are_kept_unclustered_so_tiny_grids_go_over_budget():
    """Section 7: T = 4, n = 4, r = 0.5, static {0, 1}: both sets have <= 14 tokens, so all 2 static means
    and 2 x 4 dynamic tokens are kept: 10 tokens although r*T*n = 8."""
    X = static_dynamic_video(4, 4, 2, D=8)
    out = prunevid(0.5)(X, grid=(2, 2))
    assert out.info["static_positions"] == [2] and len(out) == 10
    assert out.index.tolist() == [0, 1, 2, 3, 6, 7, 10, 11, 14, 15]
    assert torch.allclose(out.tokens[:2], X[:, :2].mean(dim=0), atol=1e-6)
    assert torch.equal(out.tokens[2:4], X[0, 2:])


@pytest.mark.parametrize("grid", [(13, 13), (3, 4), (1, 30), (16, 9)])
def test_any_grid(grid):
    n = grid[0] * grid[1]
    X = static_dynamic_video(6, n, n // 3, D=8, seed=1)
    out = prunevid(0.2)(X, grid=grid)
    tokens, index, info = prunevid_ref(X, 0.2)
    assert out.info["windows"] == info["windows"]
    assert_matches(out, tokens, index)


# ------------------------------------------------------------------------------------------ reference
def scene_video(T, n, D, cuts, seed, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    X = torch.empty(T, n, D)
    base = torch.randn(n, D, generator=g) + 1.0
    for t in range(T):
        if t in cuts:
            base = torch.randn(n, D, generator=g) + 1.0
        X[t] = base + noise * torch.randn(n, D, generator=g)
        X[t, -6:] = torch.randn(6, D, generator=g)  # a few positions change every frame
    return X


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("T,cuts", [(8, {3, 6}), (12, {4, 9}), (5, set())])
@pytest.mark.parametrize("ratio", [0.1, 0.3])
def test_matches_slow_reference(seed, T, cuts, ratio):
    X = scene_video(T, 25, 6, cuts, seed)
    out = prunevid(ratio)(X, grid=(5, 5))
    tokens, index, info = prunevid_ref(X, ratio)
    assert out.info["windows"] == info["windows"] and out.info["static_positions"] == info["static_positions"]
    assert_matches(out, tokens, index)


def test_reference_cases_cluster_static_and_dynamic_sets():
    # guard: the cases above have windows with static sets and sets large enough to be clustered
    X = scene_video(12, 25, 6, {4, 9}, 0)
    out = prunevid(0.1)(X, grid=(5, 5))
    assert len(out.info["windows"]) >= 2 and max(out.info["static_positions"]) > 14
    assert len(out) < 12 * 25 * 0.5


def test_prunevid_refuses_stop_terms_and_attention_alternatives():
    with pytest.raises(ValueError, match="mu_s"):
        prunevid(0.1, mu_s=0.02)
    with pytest.raises(ValueError, match="sink_handling='hard'"):
        prunevid(0.1, sink_handling="hard")
