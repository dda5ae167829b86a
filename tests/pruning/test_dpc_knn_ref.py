"""Feature-only DPC-kNN per frame (paper Appendix E; shared/docs/specs/baselines_extra.md (a)): hand cases
and the slow reference."""
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import assert_matches, dpc_knn_ref, random_inputs  # noqa: E402

from sinktop_eval.pruning import build_pruner  # noqa: E402

LINE = torch.tensor([0.0, 1.0, 2.0, 50.0, 51.0, 52.0]).view(1, 6, 1)  # two groups on a line, D = 1


def test_two_groups_give_one_centre_each():
    """n = 6, r = 0.34: C = floor(2.04) = 2, k = min(7, 2) = 2 (the point and its nearest neighbour).
    Every point's nearest neighbour is 1 away, so all densities tie at exp(-1/2); the lower index counts
    as denser: point 0 is the densest (delta = 52, the largest distance), point 3 (50) has delta 48, every
    other point delta 1 -> centres 0 and 3. Merged: 0.6*0 + 0.4*mean(1, 2) = 0.6; 0.6*50 + 0.4*51.5 = 50.6."""
    out = build_pruner("dpc_knn", 0.34)(LINE, grid=(1, 6))
    assert out.index.tolist() == [0, 3] and out.info["clusters_per_frame"] == 2
    assert torch.allclose(out.tokens.flatten(), torch.tensor([0.6, 50.6]), atol=1e-6)
    mean = build_pruner("dpc_knn", 0.34, merge="mean")(LINE, grid=(1, 6))
    assert torch.allclose(mean.tokens.flatten(), torch.tensor([1.0, 51.0]), atol=1e-6)


def test_three_centres_make_the_middle_points_densest():
    """r = 0.5: C = 3, k = 3. The middle points (1, 51) are strictly densest (exp(-2/3) vs exp(-5/3)); 1 is
    denser by index: delta 52; 51: delta 50; every other point is 1 from a middle point, the tie goes to
    point 0. Centres 0, 1, 4: 2 joins 1 (distance 1 vs 2), 50 and 52 join 51. Merged: 0 (no members),
    0.6*1 + 0.4*2 = 1.4, 0.6*51 + 0.4*51 = 51."""
    out = build_pruner("dpc_knn", 0.5)(LINE, grid=(2, 3))
    assert out.index.tolist() == [0, 1, 4]
    assert torch.allclose(out.tokens.flatten(), torch.tensor([0.0, 1.4, 51.0]), atol=1e-6)


@pytest.mark.parametrize("ratio,per_frame", [(0.1, 20), (0.15, 30), (0.2, 40), (0.25, 50), (0.3, 58)])
def test_budget_is_visionzips(ratio, per_frame):
    X, _, _ = random_inputs(2, 196, D=4, seed=0)
    out = build_pruner("dpc_knn", ratio)(X, grid=(14, 14))
    assert len(out) == 2 * per_frame
    assert [int(((out.index // 196) == t).sum()) for t in range(2)] == [per_frame] * 2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio,merge", [(0.12, "beta"), (0.3, "beta"), (0.3, "mean"), (0.5, "beta")])
def test_matches_slow_reference(seed, ratio, merge):
    X, _, _ = random_inputs(3, 36, D=6, seed=seed)
    out = build_pruner("dpc_knn", ratio, merge=merge)(X, grid=(6, 6))
    tokens, index = dpc_knn_ref(X, ratio, merge=merge)
    assert_matches(out, tokens, index)


def test_duplicate_tokens_match_reference():
    # flat background: many exact copies; copies are at distance exactly 0, densities tie by index
    g = torch.Generator().manual_seed(0)
    palette = torch.randn(4, 8, generator=g) * 10
    X = palette[torch.randint(0, 4, (2, 49), generator=g)]
    X[:, :5] += torch.randn(2, 5, 8, generator=g)
    out = build_pruner("dpc_knn", 0.22)(X, grid=(7, 7))  # off the n = 196 table: C = floor(10.78) = 10
    tokens, index = dpc_knn_ref(X, 0.22)
    assert_matches(out, tokens, index, atol=1e-4, rtol=1e-5)


def test_uses_no_attention():
    X, A, _ = random_inputs(2, 16, D=4, seed=1)
    a = build_pruner("dpc_knn", 0.25)(X, grid=(4, 4))
    b = build_pruner("dpc_knn", 0.25)(X, A, grid=(4, 4))
    assert torch.equal(a.index, b.index) and torch.equal(a.tokens, b.tokens)
    with pytest.raises(ValueError, match="mu_s"):
        build_pruner("dpc_knn", 0.25, mu_s=0.03)
    with pytest.raises(ValueError, match="sink_handling='redistribute'"):
        build_pruner("dpc_knn", 0.25, sink_handling="redistribute")
