"""STSP and STTP change exactly what algorithms.md says they change, and SToP off is bit-identical.

Hand cases: a 4x4 grid whose sink score is exactly 1 at positions 0 and 1 and exactly 0 elsewhere
(every non-sink column has the same mean), so A - mu_s*s only lowers the two sinks by mu_s.
"""
import math
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import holitom_ref, random_inputs  # noqa: E402

from sinktop_eval.pruning import PRUNERS, build_pruner, sink_score  # noqa: E402

N_GRID = 16


def two_sink_attention():
    """T=2, n=16. Sinks 0, 1: 64/256 in both frames. Frame 0: i/256; frame 1: (32-i)/256 (i >= 2)."""
    A = torch.zeros(2, N_GRID)
    A[:, 0] = A[:, 1] = 64 / 256
    for i in range(2, N_GRID):
        A[0, i] = i / 256
        A[1, i] = (32 - i) / 256
    return A


def test_two_sink_attention_has_a_binary_sink_score():
    s = sink_score(two_sink_attention())
    assert torch.equal(s, torch.tensor([1.0, 1.0] + [0.0] * 14))


def flipping_features(T=2, D=6):
    X = torch.randn(T, N_GRID, D, generator=torch.Generator().manual_seed(1))
    X[1::2] = -X[0::2][: X[1::2].shape[0]]  # same-position similarity -1: nothing is static for HoliTom
    return X


def frame_sets(index, n=N_GRID):
    sets = {}
    for j in index.tolist():
        sets.setdefault(j // n, set()).add(j % n)
    return sets


# Keep 4 per frame. Ranks by hand (units of 1/256): frame 0 sinks 64, others 2..15; frame 1 sinks 64,
# others 30..17. mu_s = 0.1 lowers sinks to 38.4 (still first), 0.2 to 12.8 (frame 0: below 13, above 12;
# ties between the two sinks go to position 0), 0.23 to 5.12 (below everything but 2..5 in frame 0).
KEEP4 = {
    0.0: {0: {0, 1, 14, 15}, 1: {0, 1, 2, 3}},
    0.1: {0: {0, 1, 14, 15}, 1: {0, 1, 2, 3}},
    0.2: {0: {0, 13, 14, 15}, 1: {2, 3, 4, 5}},
    0.23: {0: {12, 13, 14, 15}, 1: {2, 3, 4, 5}},
}


@pytest.mark.parametrize("mu_s", sorted(KEEP4))
def test_stsp_flips_fastvid_salient_set_exactly_where_ranks_flip(mu_s):
    # d = 0: no context tokens, FastVID keeps exactly the R = floor(16 * 0.25) = 4 salient tokens per frame
    prune = build_pruner("fastvid", 0.25, mu_s=mu_s, d=0.0)
    out = prune(flipping_features(), two_sink_attention(), grid=(4, 4))
    assert frame_sets(out.index) == KEEP4[mu_s]
    assert len(out) == 8


@pytest.mark.parametrize("mu_s", sorted(KEEP4))
def test_stsp_flips_holitom_dynamic_set_exactly_where_ranks_flip(mu_s):
    # no static positions (similarity -1), so r' = r and each frame keeps ceil(16 * 0.25) = 4 by A - mu_s*s
    prune = build_pruner("holitom", 0.25, mu_s=mu_s)
    out = prune(flipping_features(), two_sink_attention(), grid=(4, 4))
    assert out.info["saved"] == 0 and out.info["static_positions"] == 0
    assert frame_sets(out.index) == KEEP4[mu_s]


# VisionZip at r = 0.5 on n = 16: S = 8, K_d = floor(8*54/64) = 6 dominant per frame.
DOMINANT6 = {
    0.0: {0: {0, 1, 12, 13, 14, 15}, 1: {0, 1, 2, 3, 4, 5}},
    0.2: {0: {0, 1, 12, 13, 14, 15}, 1: {2, 3, 4, 5, 6, 7}},  # frame 0: sinks (12.8) still beat 12
    0.23: {0: {10, 11, 12, 13, 14, 15}, 1: {2, 3, 4, 5, 6, 7}},
}


@pytest.mark.parametrize("mu_s", sorted(DOMINANT6))
def test_stsp_flips_visionzip_dominant_set_exactly_where_ranks_flip(mu_s):
    keys = torch.randn(2, N_GRID, 5, generator=torch.Generator().manual_seed(2))
    out = build_pruner("visionzip", 0.5, mu_s=mu_s)(flipping_features(), two_sink_attention(), keys=keys, grid=(4, 4))
    assert (out.info["dominant_per_frame"], out.info["contextual_per_frame"]) == (6, 2)
    dominant = {0: set(out.index[0:6].tolist()), 1: {j - 16 for j in out.index[8:14].tolist()}}
    assert dominant == DOMINANT6[mu_s]


# ----------------------------------------------------------------------------------------------- STTP
def rotating_video(step_cosines, D=4, seed=0):
    """X[t, i] rotates in a random plane; cos(X[t,i], X[t+1,i]) = step_cosines[i][t] exactly (up to fp)."""
    n, T = len(step_cosines), len(step_cosines[0]) + 1
    g = torch.Generator().manual_seed(seed)
    X = torch.empty(T, n, D)
    for i in range(n):
        q, _ = torch.linalg.qr(torch.randn(D, 2, generator=g, dtype=torch.float64))
        u, v = q[:, 0], q[:, 1]
        scale = 1.0 + i / n
        theta = 0.0
        for t in range(T):
            X[t, i] = (scale * (math.cos(theta) * u + math.sin(theta) * v)).float()
            if t < T - 1:
                theta += math.acos(step_cosines[i][t])
    return X


def sttp_case():
    """T=3, n=16. Positions 0-3 static (cos 1); 4: cos .76 at both steps; 5: .76 then .5; 6, 7: .76;
    8-15: cos 0. gamma = 1 attention constant over time: means 0.5 (pos 4), 0.42 (5), 0.3 (6), 0.1 (7),
    0.2 elsewhere -> s = 1, 0.8, 0.5, 0, 0.25. With mu_t = 0.07, sim + mu_t*s > 0.8 at every step only
    for positions 0-3 (plain) and 4 (0.76 + 0.07 = 0.83); 5 fails at step 1, 6 gives 0.795, 7 gives 0.76.
    """
    cosines = [[1.0, 1.0]] * 4 + [[0.76, 0.76], [0.76, 0.5], [0.76, 0.76], [0.76, 0.76]] + [[0.0, 0.0]] * 8
    X = rotating_video(cosines)
    means = [0.2] * 4 + [0.5, 0.42, 0.3, 0.1] + [0.2] * 8
    A = torch.tensor([means] * 3)
    return X, A


def test_sttp_case_sink_score_by_hand():
    _, A = sttp_case()
    s = sink_score(A, gamma=1.0)
    assert torch.allclose(s[4:8], torch.tensor([1.0, 0.8, 0.5, 0.0]), atol=1e-6)
    assert torch.allclose(s[:4], torch.full((4,), 0.25), atol=1e-6)


def test_sttp_marks_static_exactly_where_sim_plus_mu_t_s_exceeds_tau():
    X, A = sttp_case()
    # Plain: static {0..3} in every step -> one window (0, 2), R_tot = 4*2 = 8, N = 48, r' = 0.5*48/40 = 0.6.
    off = build_pruner("holitom", 0.5, gamma=1.0)(X, A, grid=(4, 4))
    assert off.info["windows"] == [(0, 2)] and off.info["saved"] == 8
    assert off.info["r_prime"] == pytest.approx(0.6)
    assert off.info["static_positions"] == 4
    # static: C = round(4*0.6 = 2.4) = 2 centres at frame 0; dynamic 12: ceil(7.2) = 8 per frame by A:
    # 4 (.5), 5 (.42), 6 (.3), then 8..12 (.2, lower index first); 7 (.1) and 13-15 dropped.
    dyn = [4, 5, 6, 8, 9, 10, 11, 12]
    static_idx = off.index[:2].tolist()
    assert set(static_idx) <= {0, 1, 2, 3} and static_idx == sorted(static_idx)
    assert off.index[2:].tolist() == [t * 16 + i for t in range(3) for i in dyn]

    on = build_pruner("holitom", 0.5, mu_t=0.07, gamma=1.0)(X, A, grid=(4, 4))
    # r' is fixed by the plain test; STTP adds position 4 to the static set of the window.
    assert on.info["windows"] == [(0, 2)] and on.info["saved"] == 8
    assert on.info["r_prime"] == off.info["r_prime"]
    assert on.info["static_positions"] == 5
    # static 5: C = round(3.0) = 3 centres among {0..4}; dynamic 11: ceil(6.6) = 7 per frame:
    # 5 (.42), 6 (.3), 8, 9, 10, 11, 12.
    dyn = [5, 6, 8, 9, 10, 11, 12]
    static_idx = on.index[:3].tolist()
    assert set(static_idx) <= {0, 1, 2, 3, 4} and static_idx == sorted(static_idx)
    assert on.index[3:].tolist() == [t * 16 + i for t in range(3) for i in dyn]
    assert len(on) == 3 + 21 < len(off) == 2 + 24  # HoliTom+SToP may keep fewer tokens

    # and the whole output, merged values included, matches the slow reference
    for out, mu_t in ((off, 0.0), (on, 0.07)):
        tokens, index, info = holitom_ref(X, A, 0.5, mu_t=mu_t, gamma=1.0)
        assert out.index.tolist() == index
        assert torch.allclose(out.tokens.double(), torch.tensor(tokens, dtype=torch.float64), atol=1e-6)


def test_sttp_with_larger_mu_t_adds_exactly_the_positions_that_cross_tau():
    X, A = sttp_case()
    # mu_t = 0.2: 6 (0.76 + 0.1 = 0.86) joins, 5 still fails at step 1 (0.5 + 0.16), 7 (s = 0) never.
    out = build_pruner("holitom", 0.5, mu_t=0.2, gamma=1.0)(X, A, grid=(4, 4))
    assert out.info["static_positions"] == 6
    n_static, r_prime = 6, 0.6
    C, keep = round(n_static * r_prime), math.ceil((16 - n_static) * r_prime - 1e-9)  # 4, 6
    assert len(out) == C + 3 * keep
    assert set(out.index[:C].tolist()) <= {0, 1, 2, 3, 4, 6}
    assert out.index[C:C + keep].tolist() == [5, 8, 9, 10, 11, 12]


# ----------------------------------------------------------------------------------------------- off
def zero_sink_attention(T, n, seed=0):
    """Attention that varies per frame but has the same column mean everywhere -> sink score 0."""
    assert T % 2 == 0
    g = torch.Generator().manual_seed(seed)
    delta = torch.randint(-60, 61, (T // 2, n), generator=g).float() / 1024
    A = torch.empty(T, n)
    A[0::2] = 64 / 1024 + delta
    A[1::2] = 64 / 1024 - delta
    return A


def assert_same(a, b):
    assert torch.equal(a.index, b.index)
    assert a.tokens.dtype == b.tokens.dtype and torch.equal(a.tokens, b.tokens)
    assert a.info == b.info


@pytest.mark.parametrize("name", list(PRUNERS))
def test_explicit_zero_mu_is_bit_identical_to_default(name):
    X, A, K = random_inputs(6, 16, seed=4, static_frac=0.5)
    for r in (0.1, 0.25, 0.5):
        base = build_pruner(name, r)(X, A, keys=K, grid=(4, 4))
        zero = build_pruner(name, r, mu_s=0.0, mu_t=0.0)(X, A, keys=K, grid=(4, 4))
        assert_same(base, zero)


@pytest.mark.parametrize("name,mu_s,mu_t", [("visionzip", 0.03, 0.0), ("fastvid", 0.02, 0.0), ("holitom", 0.04, 0.07),
                                            ("visionzip", 5.0, 0.0), ("holitom", 5.0, 5.0)])
def test_stop_on_with_all_zero_sink_is_bit_identical_to_off(name, mu_s, mu_t):
    X, _, K = random_inputs(6, 16, seed=5, static_frac=0.5)
    A = zero_sink_attention(6, 16)
    assert torch.equal(sink_score(A), torch.zeros(16))
    for r in (0.1, 0.25, 0.5):
        off = build_pruner(name, r)(X, A, keys=K, grid=(4, 4))
        on = build_pruner(name, r, mu_s=mu_s, mu_t=mu_t)(X, A, keys=K, grid=(4, 4))
        assert_same(off, on)


@pytest.mark.parametrize("name,mu_s,mu_t", [("visionzip", 0.5, 0.0), ("fastvid", 0.5, 0.0), ("holitom", 0.5, 0.5)])
def test_stop_on_with_a_real_sink_does_change_the_output(name, mu_s, mu_t):
    # guards the two tests above against a pruner that ignores mu entirely
    X, A, K = random_inputs(6, 16, seed=6, static_frac=0.5)
    A[:, 3] += 0.5  # a strong sink at position 3
    off = build_pruner(name, 0.25)(X, A, keys=K, grid=(4, 4))
    on = build_pruner(name, 0.25, mu_s=mu_s, mu_t=mu_t)(X, A, keys=K, grid=(4, 4))
    assert not (torch.equal(off.index, on.index) and torch.equal(off.tokens, on.tokens))


@pytest.mark.parametrize("name", ["dense", "random", "uniform"])
def test_pruners_without_attention_refuse_stop_terms(name):
    with pytest.raises(ValueError, match="mu_s"):
        build_pruner(name, 0.5, mu_s=0.03)
    with pytest.raises(ValueError, match="mu_t"):
        build_pruner(name, 0.5, mu_t=0.07)


@pytest.mark.parametrize("name", ["visionzip", "fastvid"])
def test_spatial_only_pruners_refuse_mu_t(name):
    with pytest.raises(ValueError, match="mu_t"):
        build_pruner(name, 0.1, mu_t=0.07)
    build_pruner(name, 0.1, mu_s=0.03)  # allowed


def test_pruner_gamma_reaches_the_sink_score():
    X, A = sttp_case()
    # position 6: mean 0.3 on [0.1, 0.5] -> s = 0.5 (gamma 1) or (0.3^3 - 0.1^3)/(0.5^3 - 0.1^3) = 0.2097
    # (gamma 3). With mu_t = 0.15: 0.76 + 0.075 = 0.835 > 0.8 (static) vs 0.76 + 0.031 = 0.791 (dynamic).
    assert build_pruner("holitom", 0.5, mu_t=0.15, gamma=1.0)(X, A, grid=(4, 4)).info["static_positions"] == 6
    assert build_pruner("holitom", 0.5, mu_t=0.15, gamma=3.0)(X, A, grid=(4, 4)).info["static_positions"] == 5
