"""VisionZip per frame: budgets, dominant/contextual split, stride targets, key-similarity merge, order."""
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import assert_matches, random_inputs, visionzip_ref  # noqa: E402

from sinktop_eval.pruning import build_pruner  # noqa: E402


def run(ratio, X, A, K, grid, mu_s=0.0):
    return build_pruner("visionzip", ratio, mu_s=mu_s)(X, A, keys=K, grid=grid)


def test_paper_budget_640_tokens_for_32_frames_at_r_0_1():
    X, A, K = random_inputs(32, 196, D=4, dk=4, seed=0)
    out = run(0.1, X, A, K, (14, 14))
    assert len(out) == 640 and out.tokens.shape == (640, 4)
    assert (out.info["dominant_per_frame"], out.info["contextual_per_frame"]) == (16, 4)


# S from the paper's table (n = 196) or floor(196 r); K_d = floor(S * 54 / 64) worked by hand.
BUDGETS_196 = {
    0.1: (20, 16, 4),   # 1080/64 = 16.875
    0.15: (30, 25, 5),  # 1620/64 = 25.3125 (floor(29.4) would be 29)
    0.2: (40, 33, 7),   # 2160/64 = 33.75 (floor(39.2) would be 39)
    0.25: (50, 42, 8),  # 2700/64 = 42.19 (floor(49) would be 49)
    0.3: (58, 48, 10),  # floor(58.8); 3132/64 = 48.94
    0.05: (9, 7, 2),    # floor(9.8); 486/64 = 7.59
    0.5: (98, 82, 16),  # 5292/64 = 82.69
    1.0: (196, 165, 31),  # 10584/64 = 165.375
}


@pytest.mark.parametrize("ratio", sorted(BUDGETS_196))
def test_per_frame_budget_and_split_on_196(ratio):
    S, K_d, K_c = BUDGETS_196[ratio]
    X, A, K = random_inputs(2, 196, D=4, dk=4, seed=1)
    out = run(ratio, X, A, K, (14, 14))
    assert len(out) == 2 * S
    assert (out.info["dominant_per_frame"], out.info["contextual_per_frame"]) == (K_d, K_c)
    # the dominant block of each frame is the top-K_d by attention, in raster order
    for t in range(2):
        block = out.index[t * S:(t + 1) * S].tolist()
        want = sorted(sorted(range(196), key=lambda i: (-float(A[t, i]), i))[:K_d])
        assert block[:K_d] == [t * 196 + i for i in want]


@pytest.mark.parametrize("n,ratio,S", [(784, 0.1, 80), (784, 0.25, 200), (49, 0.1, 5), (49, 0.2, 10)])
def test_table_scales_with_the_grid(n, ratio, S):
    side = int(n ** 0.5)
    X, A, K = random_inputs(1, n, D=4, dk=4, seed=2)
    assert len(run(ratio, X, A, K, (side, side))) == S


def test_output_order_is_dominant_raster_then_contextual_and_strided_targets():
    # n = 20 (4x5), r = 0.65: S = 13, K_d = floor(702/64) = 10, K_c = 3; M = 10, stride 3 -> slots 0, 3, 6.
    T, n = 2, 20
    X = torch.randn(T, n, 3, generator=torch.Generator().manual_seed(0))
    K = torch.randn(T, n, 4, generator=torch.Generator().manual_seed(1))
    A = torch.zeros(T, n)
    A[0] = torch.arange(n, dtype=torch.float32)  # rank order = descending position: dominant 10..19
    A[1] = torch.arange(n, 0, -1, dtype=torch.float32)  # dominant 0..9
    A[1, 17] = 100.0  # position 17 ranks first in frame 1
    out = run(0.65, X, A, K, (4, 5))
    assert len(out) == 26
    f0, f1 = out.index[:13].tolist(), [j - n for j in out.index[13:].tolist()]
    assert f0 == list(range(10, 20)) + [0, 3, 6]  # remaining 0..9, slots 0, 3, 6 (not 9)
    assert f1 == [0, 1, 2, 3, 4, 5, 6, 7, 8, 17] + [9, 12, 15]  # remaining 9..16, 18, 19
    # dominant tokens are copied unchanged
    assert torch.equal(out.tokens[:10], X[0, 10:20])


def test_contextual_is_target_plus_mean_of_members_and_empty_cluster_adds_nothing():
    # n = 16, r = 0.5: S = 8, K_d = 6, K_c = 2. Dominant 0..5 by attention; remaining 6..15, stride 5
    # -> targets 6 and 11. All keys of the remaining tokens point like target 6's key, except target 11's.
    T, n, D = 1, 16, 3
    X = torch.arange(T * n * D, dtype=torch.float32).view(T, n, D) / 7
    A = torch.zeros(T, n)
    A[0, :6] = 1.0
    K = torch.zeros(T, n, 2)
    K[0, :, 0] = torch.arange(1, n + 1, dtype=torch.float32)  # all along e1 (different lengths: cosine 1)
    K[0, 11] = torch.tensor([0.0, 1.0])  # target 11 is orthogonal to everyone
    out = run(0.5, X, A, K, (4, 4))
    assert out.index.tolist() == [0, 1, 2, 3, 4, 5, 6, 11]
    members = [7, 8, 9, 10, 12, 13, 14, 15]
    want6 = X[0, 6] + X[0, members].mean(dim=0)
    assert torch.allclose(out.tokens[6], want6, atol=1e-6)
    assert torch.equal(out.tokens[7], X[0, 11])  # empty cluster: the target itself


def test_key_similarity_uses_normalised_keys_not_raw_dot_products():
    # member 7's key is long and points between the two targets but closer (in angle) to target 11
    T, n, D = 1, 16, 2
    X = torch.randn(T, n, D, generator=torch.Generator().manual_seed(0))
    A = torch.zeros(T, n)
    A[0, :6] = 1.0
    K = torch.zeros(T, n, 2)
    K[0, :, 1] = 1.0  # everyone along e2 ...
    K[0, 6] = torch.tensor([10.0, 0.0])  # ... except target 6 (long, along e1)
    K[0, 7] = torch.tensor([1.0, 2.0])  # raw dot: 10 with target 6, 2 with target 11; cosine: .45 vs .89
    out = run(0.5, X, A, K, (4, 4))
    others = [8, 9, 10, 12, 13, 14, 15]
    assert torch.allclose(out.tokens[6], X[0, 6], atol=1e-6)  # target 6 got nobody
    assert torch.allclose(out.tokens[7], X[0, 11] + X[0, [7] + others].mean(dim=0), atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio,grid", [(0.3, (4, 4)), (0.5, (4, 4)), (0.7, (4, 5)), (0.4, (5, 5)), (1.0, (3, 3))])
@pytest.mark.parametrize("mu_s", [0.0, 0.03, 0.5])
def test_matches_slow_reference_on_small_random_inputs(seed, ratio, grid, mu_s):
    n = grid[0] * grid[1]
    X, A, K = random_inputs(3, n, D=5, dk=4, seed=seed)
    out = run(ratio, X, A, K, grid, mu_s=mu_s)
    tokens, index = visionzip_ref(X, A, K, ratio, mu_s=mu_s)
    assert_matches(out, tokens, index)


@pytest.mark.parametrize("ratio", [0.1, 0.25])
def test_matches_slow_reference_on_196_with_paper_table(ratio):
    X, A, K = random_inputs(2, 196, D=4, dk=4, seed=9)
    out = run(ratio, X, A, K, (14, 14), mu_s=0.03)
    tokens, index = visionzip_ref(X, A, K, ratio, mu_s=0.03)
    assert_matches(out, tokens, index)


def test_tied_attention_goes_to_the_lower_index():
    X, _, K = random_inputs(1, 16, seed=3)
    A = torch.full((1, 16), 0.25)
    out = run(0.5, X, A, K, (4, 4))
    assert out.index[:6].tolist() == [0, 1, 2, 3, 4, 5]
