"""The pruner call contract: published token budgets, determinism, dtype/device, argument errors."""
import math
import pathlib
import sys
from fractions import Fraction

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import random_inputs  # noqa: E402

from sinktop_eval.pruning import PRUNERS, build_pruner  # noqa: E402

RATIOS = (0.1, 0.15, 0.2, 0.25)
GRID = (14, 14)
N = 196


def test_registry_names():
    assert set(PRUNERS) == {"dense", "random", "uniform", "visionzip", "fastvid", "holitom", "flashvid", "prunevid",
                            "dpc_knn"}


# ------------------------------------------------------------------------------------------ budgets
@pytest.fixture(scope="module")
def video196():
    return random_inputs(4, N, D=8, dk=4, seed=11)


@pytest.mark.parametrize("ratio,per_frame", [(0.1, 20), (0.15, 30), (0.2, 40), (0.25, 50)])
def test_visionzip_count_is_T_times_S(video196, ratio, per_frame):
    X, A, K = video196
    assert len(build_pruner("visionzip", ratio)(X, A, keys=K, grid=GRID)) == 4 * per_frame


@pytest.mark.parametrize("ratio,per_frame", [(0.1, 19), (0.15, 29), (0.2, 39), (0.25, 49)])
def test_random_count_is_T_times_floor_nr(video196, ratio, per_frame):
    X, A, _ = video196
    out = build_pruner("random", ratio)(X, A, grid=GRID)
    assert len(out) == 4 * per_frame
    for t in range(4):  # floor(n r) in every frame
        assert int(((out.index // N) == t).sum()) == per_frame


# FastVID with frame features that give segments [1]*7 + [25] at T = 32 (c = 8: the 7 lowest transitions,
# all tied at cos 1, are the first 7): total = T*R_s + 7*R_c + ceil(25/4) * floor(R_c*25/ceil(25/4)).
@pytest.mark.parametrize("ratio,R,R_c,total", [
    (0.1, 19, 7, 32 * 12 + 7 * 7 + 7 * 25),    # floor(175/7) = 25 -> 608 = T*R exactly
    (0.15, 29, 11, 32 * 18 + 7 * 11 + 7 * 39),  # floor(275/7) = 39 -> 926 (T*R = 928)
    (0.2, 39, 15, 32 * 24 + 7 * 15 + 7 * 53),  # floor(375/7) = 53 -> 1244 (T*R = 1248)
    (0.25, 49, 19, 32 * 30 + 7 * 19 + 7 * 67),  # floor(475/7) = 67 -> 1562 (T*R = 1568)
])
def test_fastvid_count_matches_the_formula(ratio, R, R_c, total):
    X, A, _ = random_inputs(32, N, D=4, dk=4, seed=12)
    out = build_pruner("fastvid", ratio)(X, A, grid=GRID, frame_features=torch.ones(32, 3))
    assert out.info["segments"] == [1] * 7 + [25]
    assert len(out) == total
    assert abs(len(out) - 32 * R) <= 8  # within a few tokens of T * floor(n r)


@pytest.mark.parametrize("ratio", RATIOS)
def test_holitom_count_without_static_tokens_is_T_times_ceil_nr(video196, ratio):
    X, A, _ = video196
    X = X.clone()
    X[1::2] = -X[0::2]  # same-position similarity -1: nothing static, r' = r
    out = build_pruner("holitom", ratio)(X, A, grid=GRID)
    assert out.info["saved"] == 0
    assert len(out) == 4 * math.ceil(Fraction(str(ratio)) * N)  # 20, 30, 40, 49 per frame


@pytest.mark.parametrize("ratio", RATIOS)
def test_holitom_count_with_half_the_grid_static(ratio):
    # positions 0..97 identical in all T frames, 98..195 flip sign each frame: one window (0, T-1),
    # R_tot = 98 (T-1), r' = r N / (N - R_tot); count = round-half-even(98 r') + T ceil(98 r').
    T = 4
    X, A, _ = random_inputs(T, N, D=8, seed=13)
    for t in range(1, T):
        X[t, :98] = X[0, :98]
        X[t, 98:] = -X[t - 1, 98:]
    out = build_pruner("holitom", ratio)(X, A, grid=GRID)
    r_prime = min(Fraction(str(ratio)) * T * N / (T * N - 98 * (T - 1)), Fraction(1))
    expected = round(98 * r_prime) + T * math.ceil(98 * r_prime)
    assert out.info["windows"] == [(0, T - 1)] and out.info["saved"] == 98 * (T - 1)
    assert len(out) == expected


@pytest.mark.parametrize("ratio,shape", [(0.1, (4, 5)), (0.15, (5, 6)), (0.2, (6, 7)), (0.25, (7, 7)), (1.0, (14, 14))])
def test_uniform_keeps_a_regular_subgrid_of_about_nr(video196, ratio, shape):
    X, A, _ = video196
    out = build_pruner("uniform", ratio)(X, A, grid=GRID)
    rows, cols = shape
    assert len(out) == 4 * rows * cols
    assert abs(rows * cols - ratio * N) <= max(rows, cols) / 2  # within half a row/column of r*n
    frame0 = out.index[: rows * cols].tolist()
    r_set, c_set = sorted({j // 14 for j in frame0}), sorted({j % 14 for j in frame0})
    assert (len(r_set), len(c_set)) == (rows, cols)
    assert set(frame0) == {r * 14 + c for r in r_set for c in c_set}
    for t in range(1, 4):  # the same sub-grid in every frame
        assert out.index[t * rows * cols:(t + 1) * rows * cols].tolist() == [t * N + j for j in frame0]


def test_dense_keeps_everything_and_ignores_ratio(video196):
    X, A, _ = video196
    for r in (0.1, 1.0):
        out = build_pruner("dense", r)(X, A, grid=GRID)
        assert torch.equal(out.index, torch.arange(4 * N)) and torch.equal(out.tokens, X.reshape(-1, 8))


# ------------------------------------------------------------------------------------------ determinism
def test_random_pruner_seed():
    X, A, _ = random_inputs(3, 16, seed=0)
    a = build_pruner("random", 0.25, seed=7)(X, A, grid=(4, 4))
    b = build_pruner("random", 0.25, seed=7)(X, A, grid=(4, 4))
    c = build_pruner("random", 0.25, seed=8)(X, A, grid=(4, 4))
    assert torch.equal(a.index, b.index) and torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.index, c.index)
    assert torch.equal(a.tokens, X.reshape(-1, X.shape[-1])[a.index])  # kept tokens are the inputs
    # the draw does not depend on the attention values
    d = build_pruner("random", 0.25, seed=7)(X, torch.rand(3, 16), grid=(4, 4))
    assert torch.equal(a.index, d.index)


STOP_ON = {"visionzip": (0.03, 0.0), "fastvid": (0.02, 0.0), "holitom": (0.04, 0.07), "flashvid": (0.02, 0.0)}


@pytest.mark.parametrize("name", list(PRUNERS))
def test_every_pruner_is_deterministic(name):
    X, A, K = random_inputs(6, 16, seed=21, static_frac=0.5)
    mu_s, mu_t = STOP_ON.get(name, (0.0, 0.0))
    runs = [build_pruner(name, 0.25, mu_s=mu_s, mu_t=mu_t)(X, A, keys=K, grid=(4, 4)) for _ in range(2)]
    runs.append(build_pruner(name, 0.25, mu_s=mu_s, mu_t=mu_t)(X.clone(), A.clone(), keys=K.clone(), grid=(4, 4)))
    for other in runs[1:]:
        assert torch.equal(runs[0].index, other.index) and torch.equal(runs[0].tokens, other.tokens)
        assert runs[0].index.dtype == torch.long


# ------------------------------------------------------------------------------------------ dtype/device
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("name", list(PRUNERS))
def test_output_dtype_matches_input(name, dtype):
    X, A, K = random_inputs(6, 16, seed=22, static_frac=0.5)
    mu_s, mu_t = STOP_ON.get(name, (0.0, 0.0))
    out = build_pruner(name, 0.25, mu_s=mu_s, mu_t=mu_t)(X.to(dtype), A.to(dtype), keys=K.to(dtype), grid=(4, 4))
    assert out.tokens.dtype == dtype and out.index.dtype == torch.long
    assert out.tokens.device == X.device and out.index.device == X.device
    assert out.tokens.shape == (len(out), 8)
    ref = build_pruner(name, 0.25, mu_s=mu_s, mu_t=mu_t)(X, A, keys=K, grid=(4, 4))
    if dtype == torch.float32:
        assert torch.equal(out.tokens, ref.tokens)
    elif torch.equal(out.index, ref.index):  # same selection: values agree to the dtype's precision
        assert torch.allclose(out.tokens.float(), ref.tokens, atol=0.1, rtol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", list(PRUNERS))
def test_cuda_matches_cpu(name):
    X, A, K = random_inputs(6, 16, seed=23, static_frac=0.5)
    mu_s, mu_t = STOP_ON.get(name, (0.0, 0.0))
    prune = build_pruner(name, 0.25, mu_s=mu_s, mu_t=mu_t)
    cpu = prune(X, A, keys=K, grid=(4, 4))
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        gpu = prune(X.cuda().to(dtype), A.cuda().to(dtype), keys=K.cuda().to(dtype), grid=(4, 4))
        assert gpu.tokens.device.type == "cuda" and gpu.index.device.type == "cuda"
        assert gpu.tokens.dtype == dtype
        if dtype == torch.float32:
            assert torch.equal(gpu.index.cpu(), cpu.index)
            assert torch.allclose(gpu.tokens.cpu(), cpu.tokens, atol=1e-5)


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("ratio", [0, 0.0, 1.5, -0.1, "0.1", None, float("nan"), True])
@pytest.mark.parametrize("name", list(PRUNERS))
def test_bad_ratio(name, ratio):
    with pytest.raises(ValueError, match=r"ratio.*\(0, 1\]"):
        build_pruner(name, ratio)


def test_unknown_name_lists_the_allowed_names():
    with pytest.raises(ValueError, match="holitomm") as err:
        build_pruner("holitomm", 0.1)
    for name in PRUNERS:
        assert name in str(err.value)


@pytest.mark.parametrize("name", ["visionzip", "fastvid", "holitom", "random"])
@pytest.mark.parametrize("shape", [(6, 15), (5, 16), (16,), (6, 16, 1)])
def test_attn_shape_mismatch(name, shape):
    X, _, K = random_inputs(6, 16, seed=0)
    with pytest.raises(ValueError, match="attn"):
        build_pruner(name, 0.25)(X, torch.rand(*shape), keys=K, grid=(4, 4))


@pytest.mark.parametrize("name", ["visionzip", "fastvid", "holitom"])
def test_attention_pruners_require_attn(name):
    X, _, K = random_inputs(2, 16, seed=0)
    with pytest.raises(ValueError, match="attn"):
        build_pruner(name, 0.25)(X, None, keys=K, grid=(4, 4))


def test_visionzip_requires_keys_of_the_right_shape():
    X, A, K = random_inputs(2, 16, seed=0)
    with pytest.raises(ValueError, match="keys"):
        build_pruner("visionzip", 0.25)(X, A, grid=(4, 4))
    with pytest.raises(ValueError, match="keys"):
        build_pruner("visionzip", 0.25)(X, A, keys=K[:, :15], grid=(4, 4))


@pytest.mark.parametrize("name", list(PRUNERS))
@pytest.mark.parametrize("grid", [(4, 5), (2, 2), (16,), (0, 16)])
def test_grid_mismatch(name, grid):
    X, A, K = random_inputs(2, 16, seed=0)
    with pytest.raises(ValueError, match="grid"):
        build_pruner(name, 0.25)(X, A, keys=K, grid=grid)


def test_non_square_n_needs_a_grid():
    X, A, K = random_inputs(2, 12, seed=0)
    with pytest.raises(ValueError, match="grid"):
        build_pruner("random", 0.25)(X, A)
    assert len(build_pruner("random", 0.25)(X, A, grid=(3, 4))) == 6


def test_bad_features_and_frame_features():
    X, A, K = random_inputs(2, 16, seed=0)
    with pytest.raises(ValueError, match="features"):
        build_pruner("fastvid", 0.25)(X[0], A, grid=(4, 4))
    with pytest.raises(ValueError, match="features"):
        build_pruner("fastvid", 0.25)(X.long(), A, grid=(4, 4))
    with pytest.raises(ValueError, match="frame_features"):
        build_pruner("fastvid", 0.25)(X, A, grid=(4, 4), frame_features=torch.rand(3, 5))


@pytest.mark.parametrize("kwargs,word", [({"mu_s": float("nan")}, "mu_s"), ({"gamma": 0.0}, "gamma"),
                                         ({"gamma": -1.0}, "gamma"), ({"mu_t": "0.07"}, "mu_t"),
                                         ({"seed": 1.5}, "seed"), ({"nonsense": 1}, "nonsense")])
def test_bad_settings(kwargs, word):
    with pytest.raises(ValueError, match=word):
        build_pruner("holitom", 0.1, **kwargs)


# ------------------------------------------------------------------------------------------ decimal budgets
def test_budgets_use_the_decimal_ratio_not_its_float_rounding():
    # 0.29 * 100 = 28.999999999999996 in floating point, but floor(n r) is 29
    assert 0.29 * 100 < 29
    X, A, K = random_inputs(2, 100, D=4, dk=4, seed=0)
    assert len(build_pruner("random", 0.29)(X, A, grid=(10, 10))) == 2 * 29
    assert len(build_pruner("visionzip", 0.29)(X, A, keys=K, grid=(10, 10))) == 2 * 29
    out = build_pruner("fastvid", 0.29, c=2)(X, A, grid=(10, 10))
    assert (out.info["salient_per_frame"], out.info["context_per_frame"]) == (29 - 11, 11)  # floor(11.6)
    # HoliTom without static tokens: r' = 0.28 * 50 / 50 and 25 r' = 7.000000000000001; ceil is 7
    X, A, _ = random_inputs(2, 25, D=4, seed=1)
    X[1] = -X[0]
    out = build_pruner("holitom", 0.28)(X, A, grid=(5, 5))
    assert out.info["saved"] == 0 and 25 * out.info["r_prime"] > 7
    assert len(out) == 2 * 7
