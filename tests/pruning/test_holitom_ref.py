"""HoliTom: window DP vs brute force over all partitions, r', static/dynamic counts, static clustering."""
import math
import pathlib
import random
import sys
from fractions import Fraction

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import (  # noqa: E402
    all_partitions,
    assert_matches,
    brute_force_windows,
    dp_ref,
    holitom_ref,
    random_inputs,
    savings_ref,
    sign_flip_video,
)

from sinktop_eval.pruning import build_pruner  # noqa: E402


def holitom(ratio=0.25, **kw):
    return build_pruner("holitom", ratio, **kw)


def random_pattern(T, n, p_static, rng):
    return [[rng.random() < p_static for _ in range(n)] for _ in range(T - 1)]


def test_all_partitions_helper_enumerates_2_to_the_T_minus_1():
    assert len(list(all_partitions(6))) == 32
    assert len({tuple(w) for w in all_partitions(6)}) == 32


@pytest.mark.parametrize("T", range(2, 9))
@pytest.mark.parametrize("max_window", [1024, 3, 2])
def test_dp_optimum_equals_brute_force_over_all_partitions(T, max_window):
    rng = random.Random(100 * T + max_window)
    n = 5
    for trial in range(6):
        pattern = random_pattern(T, n, [0.3, 0.6, 0.85][trial % 3], rng)
        X = sign_flip_video(pattern, seed=trial)  # similarity exactly +1 / -1 by construction
        A = torch.rand(T, n, generator=torch.Generator().manual_seed(trial))
        out = holitom(0.3, max_window=max_window)(X, A, grid=(1, n))
        P = savings_ref(pattern)
        best = brute_force_windows(T, P, max_window)
        windows = out.info["windows"]
        assert out.info["saved"] == best
        # the returned windows are a partition of 0..T-1 that achieves the optimum
        assert [a for a, _ in windows] == [0] + [b + 1 for _, b in windows[:-1]] and windows[-1][1] == T - 1
        assert all(b - a + 1 <= max_window for a, b in windows)
        assert sum(P(a, b) for a, b in windows) == best
        # ... and follows the spec's tie rule (the reference recurrence)
        assert windows == dp_ref(T, P, max_window)[0]


def test_dp_tie_prefers_single_frame_before_a_window():
    # position 0 static at step 0, position 1 at step 1: [0,1]+[2] and [0]+[1,2] both save 1
    X = sign_flip_video([[True, False], [False, True]])
    out = holitom(0.5)(X, torch.rand(3, 2), grid=(1, 2))
    assert out.info["saved"] == 1 and out.info["windows"] == [(0, 1), (2, 2)]


def test_dp_prefers_shorter_window_on_ties():
    # position 0 static at both steps, position 1 at step 1: P(0,1) = 1, P(1,2) = 2, P(0,2) = 2.
    # dp[1] = 1; dp[2]: single 1, [1,2] -> 0 + 2, [0,2] -> 2: the shorter window wins the tie.
    X = sign_flip_video([[True, False], [True, True]])
    out = holitom(0.5)(X, torch.rand(3, 2), grid=(1, 2))
    assert out.info["windows"] == [(0, 0), (1, 2)] and out.info["saved"] == 2


def test_everything_static_is_one_window_and_r_prime_formula():
    # T=4, n=4, all static: P(0,3) = 4*3 = 12, N = 16, r' = min(r * 16 / 4, 1)
    X = sign_flip_video([[True] * 4] * 3)
    A = torch.rand(4, 4, generator=torch.Generator().manual_seed(0))
    for r, r_prime, C in [(0.1, 0.4, 2), (0.2, 0.8, 3), (0.3, 1.0, 4), (0.125, 0.5, 2)]:
        out = holitom(r)(X, A, grid=(2, 2))
        assert out.info["windows"] == [(0, 3)] and out.info["saved"] == 12
        assert out.info["r_prime"] == pytest.approx(r_prime)
        assert len(out) == C  # round(4 r'), half to even: 1.6 -> 2, 3.2 -> 3, 4 -> 4, 2.0 -> 2
        assert all(0 <= j < 4 for j in out.index.tolist())  # static tokens stand at the window's 1st frame


@pytest.mark.parametrize("n,n_static,ratio,centres", [
    (8, 5, 11 / 32, 2),  # r' = (11/32) * 16 / 11 = 0.5 exactly; 5 * 0.5 = 2.5 -> 2 (half-up would give 3)
    (8, 7, 9 / 32, 4),   # r' = (9/32) * 16 / 9 = 0.5; 7 * 0.5 = 3.5 -> 4 (floor would give 3)
    (10, 9, 11 / 40, 4),  # r' = (11/40) * 20 / 11 = 0.5; 9 * 0.5 = 4.5 -> 4
])
def test_static_centre_count_rounds_half_to_even(n, n_static, ratio, centres):
    # T = 2, positions 0..n_static-1 static (one window, R_tot = n_static); the product n_static * r' is
    # exactly x.5 in floating point. HoliTom's release uses Python's round(): half to even.
    assert (n_static * (ratio * 2 * n / (2 * n - n_static))) % 1 == 0.5
    X = sign_flip_video([[True] * n_static + [False] * (n - n_static)])
    A = torch.rand(2, n, generator=torch.Generator().manual_seed(0))
    out = holitom(ratio)(X, A, grid=(1, n))
    assert out.info["r_prime"] == 0.5 and out.info["static_positions"] == n_static
    n_dynamic = n - n_static
    keep = math.ceil(n_dynamic * 0.5)
    assert len(out) == centres + 2 * keep
    assert set(out.index[:centres].tolist()) <= set(range(n_static))
    for t in range(2):  # dynamic: top-keep of the dynamic positions by A in each frame
        top = sorted(sorted(range(n_static, n), key=lambda i: (-float(A[t, i]), i))[:keep])
        assert out.index[centres + keep * t:centres + keep * (t + 1)].tolist() == [t * n + i for i in top]


@pytest.mark.parametrize("seed", range(8))
def test_static_and_dynamic_counts_follow_the_formulas(seed):
    rng = random.Random(seed)
    T, n = 6, 12
    pattern = random_pattern(T, n, 0.7, rng)
    X = sign_flip_video(pattern, seed=seed)
    A = torch.rand(T, n, generator=torch.Generator().manual_seed(seed))
    ratio = [0.1, 0.15, 0.2, 0.25][seed % 4]
    out = holitom(ratio)(X, A, grid=(3, 4))
    P = savings_ref(pattern)
    windows, saved = dp_ref(T, P)
    N = T * n
    r_prime = min(Fraction(str(ratio)) * N / (N - saved), Fraction(1))
    assert out.info["r_prime"] == pytest.approx(float(r_prime), abs=1e-12)
    expected, pos = 0, 0
    for a, b in windows:
        static = [i for i in range(n) if b > a and all(pattern[t][i] for t in range(a, b))]
        C = round(len(static) * r_prime)  # exact Fraction, half to even
        keep = math.ceil((n - len(static)) * r_prime)
        block = out.index[pos:pos + C + (b - a + 1) * keep].tolist()
        assert [j // n for j in block[:C]] == [a] * C and {j % n for j in block[:C]} <= set(static)
        for t in range(a, b + 1):  # dynamic tokens frame by frame, raster within the frame
            frame = block[C + (t - a) * keep:C + (t - a + 1) * keep]
            assert [j // n for j in frame] == [t] * keep and frame == sorted(frame)
            assert not {j % n for j in frame} & set(static)
        pos += len(block)
        expected += C + (b - a + 1) * keep
    assert len(out) == expected == pos


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("T,n,grid", [(5, 16, (4, 4)), (7, 12, (3, 4)), (4, 30, (5, 6))])
@pytest.mark.parametrize("ratio,mu_s,mu_t", [(0.25, 0.0, 0.0), (0.1, 0.04, 0.07), (0.5, 0.3, 0.3)])
def test_matches_slow_reference_on_small_random_inputs(seed, T, n, grid, ratio, mu_s, mu_t):
    X, A, _ = random_inputs(T, n, D=6, seed=seed, static_frac=0.6, noise=0.35)
    out = holitom(ratio, mu_s=mu_s, mu_t=mu_t)(X, A, grid=grid)
    tokens, index, info = holitom_ref(X, A, ratio, mu_s=mu_s, mu_t=mu_t)
    assert out.info["windows"] == info["windows"] and out.info["saved"] == info["saved"]
    assert out.info["static_positions"] == info["static_positions"]
    assert_matches(out, tokens, index)


def test_reference_cases_exercise_static_clustering():
    # guard: the random reference cases above really contain windows whose static set is clustered
    clustered = 0
    for seed in range(4):
        X, A, _ = random_inputs(5, 16, D=6, seed=seed, static_frac=0.6, noise=0.35)
        _, _, info = holitom_ref(X, A, 0.25)
        clustered += sum(1 for w in info["per_window"] if 0 < w["C"] < len(w["static"]))
    assert clustered >= 3


def test_static_clustering_with_duplicate_tokens_matches_reference():
    """36 static positions holding 3 distinct vectors (12 copies each): copies are at distance exactly 0,
    so densities tie (lower index is denser) and members join the first of equally near centres."""
    T, n, D = 2, 36, 8
    g = torch.Generator().manual_seed(0)
    palette = torch.randn(3, D, generator=g) * 20
    X = palette[torch.arange(n) % 3].unsqueeze(0).expand(T, n, D).clone()
    A = torch.rand(T, n, generator=g)
    for ratio in (0.1, 0.2, 0.3):  # r' = 2r: C = round(36 * 2r) = 7, 14, 22 centres
        out = holitom(ratio)(X, A, grid=(6, 6))
        tokens, index, info = holitom_ref(X, A, ratio)
        assert info["per_window"][0]["C"] == round(72 * ratio)
        assert_matches(out, tokens, index, atol=1e-4, rtol=1e-5)


def test_centre_update_by_hand():
    # T=2, n=4, all static and identical over time: merged tokens are the frame-0 tokens.
    # r = 0.25 -> r' = 0.25 * 8 / 4 = 0.5 -> C = 2, k = min(7, 2) = 2 nearest (self included).
    X0 = torch.tensor([[0.0, 5.0], [1.0, 5.0], [10.0, 5.0], [12.0, 5.0]])  # no zero vector
    X = X0.unsqueeze(0).expand(2, 4, 2).clone()
    out = holitom(0.25)(X, torch.rand(2, 4), grid=(2, 2))
    # d/sqrt(2): pairs (0,1) 1, (2,3) 2, others >= 9. rho_i = exp(-(0 + d_nn^2)/2):
    # rho0 = rho1 = exp(-1/4) (tie: 0 denser), rho2 = rho3 = exp(-1) (tie: 2 denser).
    # delta: 0 -> max distance 12/sqrt2, 1 -> 1/sqrt2, 2 -> d(2,1) = 9/sqrt2, 3 -> d(3,2) = 2/sqrt2.
    # score: 0 > 2 > 1 > 3 -> centres {0, 2}; 1 joins 0, 3 joins 2.
    assert out.index.tolist() == [0, 2]
    want = torch.tensor([[0.6 * 0 + 0.4 * 1, 5.0], [0.6 * 10 + 0.4 * 12, 5.0]])
    assert torch.allclose(out.tokens, want, atol=1e-6)
    out = holitom(0.25, beta=0.25)(X, torch.rand(2, 4), grid=(2, 2))
    assert torch.allclose(out.tokens, torch.tensor([[0.75, 5.0], [11.5, 5.0]]), atol=1e-6)


def test_static_tokens_are_window_means():
    # one window of 3 frames; static positions drift slightly: merged token = mean over the window
    T, n, D = 3, 4, 3
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, D, generator=g) * 3
    X = base + 0.01 * torch.randn(T, n, D, generator=g)
    out = holitom(0.5)(X, torch.rand(T, n), grid=(2, 2))  # r' = min(0.5 * 12 / 4, 1) = 1: C = 4
    assert out.info["windows"] == [(0, 2)] and out.info["r_prime"] == 1.0
    assert out.index.tolist() == [0, 1, 2, 3]
    assert torch.allclose(out.tokens, X.mean(dim=0), atol=1e-6)


def test_tau_is_configurable():
    X, A, _ = random_inputs(5, 16, D=6, seed=1, static_frac=0.6, noise=0.35)
    for tau in (0.65, 0.95):
        out = holitom(0.1, tau=tau)(X, A, grid=(4, 4))
        tokens, index, info = holitom_ref(X, A, 0.1, tau=tau)
        assert out.info["saved"] == info["saved"]
        assert_matches(out, tokens, index)
    loose = holitom(0.1, tau=0.65)(X, A, grid=(4, 4)).info["saved"]
    strict = holitom(0.1, tau=0.95)(X, A, grid=(4, 4)).info["saved"]
    assert loose > strict
