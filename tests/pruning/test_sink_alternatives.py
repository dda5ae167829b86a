"""The paper's Fig. 7 alternatives to SToP as stop modes (hard pruning, attention redistribution), the
stop_parameters contract, and the sink statistics -- by hand and against the slow references."""
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import (  # noqa: E402
    assert_matches,
    fastvid_ref,
    hard_drop_ref,
    holitom_ref,
    random_inputs,
    redistribute_ref,
    sink_ref,
    sink_set_ref,
    visionzip_ref,
)

from sinktop_eval.pruning import PRUNERS, build_pruner, sink_statistics, summarise_sink_statistics  # noqa: E402
from sinktop_eval.pruning.defaults import PAPER_MU, STOP_MODES, stop_parameters  # noqa: E402
from sinktop_eval.pruning.sink_alternatives import redistribute_attention  # noqa: E402

ATTENTION = [name for name, cls in PRUNERS.items() if cls.uses_attention]
FEATURE_ONLY = [name for name, cls in PRUNERS.items() if not cls.uses_attention]


def test_attention_pruners_are_the_expected_ones():
    assert ATTENTION == ["visionzip", "fastvid", "holitom", "flashvid"]


# ------------------------------------------------------------------------------------------ hard pruning
def test_hard_pruning_example_of_the_spec():
    """One frame, A = (.9, .05, .03, .02), n = 4, r = 0.5: S = 2, K_d = 1, K_c = 1.
    K = 25 %: token 0 is removed; dominant = token 1; the survivors 2, 3 are the remaining list: target 2
    (slot 0) absorbs 3 -> tokens [x1, x2 + x3]. K = 0: dominant 0; remaining 1, 2, 3, stride 3 -> target 1
    absorbs 2 and 3 -> [x0, x1 + (x2 + x3) / 2]."""
    X = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, 0.0]]])
    A = torch.tensor([[0.9, 0.05, 0.03, 0.02]])
    K = torch.eye(4).unsqueeze(0)  # orthogonal keys: every member joins the first target
    hard = build_pruner("visionzip", 0.5, sink_handling="hard", hard_k=0.25)(X, A, keys=K, grid=(2, 2))
    assert hard.index.tolist() == [1, 2]
    assert torch.allclose(hard.tokens, torch.tensor([[0.0, 1.0], [6.0, 2.0]]))
    plain = build_pruner("visionzip", 0.5, sink_handling="hard", hard_k=0.0)(X, A, keys=K, grid=(2, 2))
    assert plain.index.tolist() == [0, 1]
    assert torch.allclose(plain.tokens, torch.tensor([[1.0, 0.0], [3.0, 2.0]]))


@pytest.mark.parametrize("name", ATTENTION)
def test_hard_k_zero_is_bit_identical_and_hard_keeps_the_base_count(name):
    X, A, K = random_inputs(6, 36, D=6, seed=7, static_frac=0.4)
    base = build_pruner(name, 0.25)(X, A, keys=K, grid=(6, 6))
    zero = build_pruner(name, 0.25, sink_handling="hard", hard_k=0.0)(X, A, keys=K, grid=(6, 6))
    assert torch.equal(base.index, zero.index) and torch.equal(base.tokens, zero.tokens)
    hard = build_pruner(name, 0.25, sink_handling="hard")(X, A, keys=K, grid=(6, 6))
    dropped = hard_drop_ref(A, 0.1)  # ceil(3.6) = 4 per frame
    assert all(j % 36 not in dropped[j // 36] for j in hard.index.tolist())  # nothing removed is kept
    if name in ("visionzip", "fastvid"):  # per-frame budgets: the same count as the base pruner
        assert len(hard) == len(base)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k,unit", [(0.1, "token"), (0.2, "token"), (0.1, "position")])
def test_hard_matches_references(seed, k, unit):
    X, A, K = random_inputs(6, 36, D=6, dk=5, seed=seed, static_frac=0.5, noise=0.3)
    A[:, [0, 7]] += 0.05  # sinks
    drop = hard_drop_ref(A, k, unit)
    settings = {"sink_handling": "hard", "hard_k": k, "hard_unit": unit}
    out = build_pruner("visionzip", 0.3, **settings)(X, A, keys=K, grid=(6, 6))
    assert_matches(out, *visionzip_ref(X, A, K, 0.3, drop=drop))
    out = build_pruner("fastvid", 0.4, c=2, **settings)(X, A, grid=(6, 6))
    tokens, index, _ = fastvid_ref(X, A, 0.4, c=2, drop=drop)
    assert_matches(out, tokens, index)
    out = build_pruner("holitom", 0.25, **settings)(X, A, grid=(6, 6))
    tokens, index, info = holitom_ref(X, A, 0.25, drop=drop)
    assert out.info["static_positions"] == info["static_positions"]
    assert_matches(out, tokens, index)


def test_hard_position_unit_drops_the_same_positions_in_every_frame():
    X, A, K = random_inputs(4, 20, D=6, seed=1)
    A[:, 5] += 1.0  # the most attended position on average, not necessarily in every frame
    out = build_pruner("visionzip", 0.5, sink_handling="hard", hard_k=0.05, hard_unit="position")(X, A, keys=K, grid=(4, 5))
    assert 5 not in {j % 20 for j in out.index.tolist()}


def test_hard_k_too_large_for_the_budget_is_an_error():
    X, A, K = random_inputs(2, 16, seed=0)
    with pytest.raises(ValueError, match=r"hard_k=0.9 leaves 1 tokens per frame"):
        build_pruner("visionzip", 0.5, sink_handling="hard", hard_k=0.9)(X, A, keys=K, grid=(4, 4))


# ------------------------------------------------------------------------------------------ redistribution
def test_redistribution_example_of_the_spec():
    """A = (.5, .3, .2), Z = {0}, p = .6: m_Z = m_N = .5 -> (.2, .3 + .6*.5*.3/.5, .2 + .6*.5*.2/.5) =
    (.2, .48, .32); the row sum stays 1 and the top token moves from 0 to 1."""
    A = torch.tensor([[0.5, 0.3, 0.2]])
    out = redistribute_attention(A, torch.tensor([True, False, False]), 0.6)
    assert torch.allclose(out, torch.tensor([[0.2, 0.48, 0.32]]), atol=1e-7)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-7)
    # through VisionZip: n = 3, r = 0.67 -> S = 2, K_d = 1; Z = the top ceil(0.3) = 1 position by s = {0}
    X, _, K = random_inputs(1, 3, D=4, dk=3, seed=0)
    plain = build_pruner("visionzip", 0.67)(X, A, keys=K, grid=(1, 3))
    moved = build_pruner("visionzip", 0.67, sink_handling="redistribute")(X, A, keys=K, grid=(1, 3))
    assert plain.index[0] == 0 and moved.index[0] == 1


def test_redistribution_is_a_multiplicative_demotion():
    # non-sinks keep their ratios; a sink more than (1 + p m_Z / m_N) / (1 - p) times a non-sink still wins
    A = torch.tensor([[0.7, 0.1, 0.15, 0.05]])
    out = redistribute_attention(A, torch.tensor([True, False, False, False]), 0.6)[0]
    assert out[2] / out[1] == pytest.approx(1.5) and out[3] / out[1] == pytest.approx(0.5)
    factor = (1 + 0.6 * 0.7 / 0.3) / 0.4
    assert (0.7 / 0.15 > factor) == bool(out[0] > out[2])
    assert torch.allclose(redistribute_attention(A, torch.zeros(4, dtype=torch.bool), 0.6), A)


def test_redistribution_without_attention_off_the_sinks_spreads_it_evenly():
    A = torch.tensor([[0.6, 0.4, 0.0, 0.0]])
    out = redistribute_attention(A, torch.tensor([True, True, False, False]), 0.5)
    assert torch.allclose(out, torch.tensor([[0.3, 0.2, 0.25, 0.25]]))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kw", [{}, {"redistribute_p": 0.9}, {"redistribute_threshold": 0.3}])
def test_redistribution_matches_references(seed, kw):
    X, A, K = random_inputs(4, 30, D=6, dk=5, seed=seed, static_frac=0.5, noise=0.3)
    A[:, [1, 2, 3]] += 0.08
    s = sink_ref(A)
    zone = {i for i in range(30) if s[i] >= kw["redistribute_threshold"]} if "redistribute_threshold" in kw \
        else sink_set_ref(s)
    A2 = redistribute_ref(A, zone, kw.get("redistribute_p", 0.6))
    out = build_pruner("visionzip", 0.3, sink_handling="redistribute", **kw)(X, A, keys=K, grid=(5, 6))
    assert_matches(out, *visionzip_ref(X, A2, K, 0.3))
    out = build_pruner("holitom", 0.3, sink_handling="redistribute", **kw)(X, A, grid=(5, 6))
    tokens, index, _ = holitom_ref(X, A2, 0.3)
    assert_matches(out, tokens, index)


def test_redistribution_changes_the_selection_somewhere():
    changed = 0
    for seed in range(3):
        X, A, K = random_inputs(4, 30, D=6, dk=5, seed=seed)
        A[:, [1, 2, 3]] += 0.08
        a = build_pruner("visionzip", 0.3)(X, A, keys=K, grid=(5, 6))
        b = build_pruner("visionzip", 0.3, sink_handling="redistribute")(X, A, keys=K, grid=(5, 6))
        changed += not torch.equal(a.index, b.index)
    assert changed


# ------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("name", FEATURE_ONLY)
@pytest.mark.parametrize("mode", ["hard", "redistribute"])
def test_feature_only_pruners_refuse_the_alternatives(name, mode):
    with pytest.raises(ValueError, match=f"sink_handling='{mode}' needs a pruner that ranks tokens by attention"):
        build_pruner(name, 0.25, sink_handling=mode)


@pytest.mark.parametrize("kwargs,word", [({"hard_k": 0.1}, "hard_k=0.1 only applies with sink_handling='hard'"),
                                         ({"sink_handling": "hard", "redistribute_p": 0.5}, "redistribute_p"),
                                         ({"sink_handling": "soft"}, "sink_handling='soft' is unknown"),
                                         ({"sink_handling": "hard", "hard_unit": "frame"}, "hard_unit"),
                                         ({"sink_handling": "hard", "hard_k": 1.0}, "hard_k"),
                                         ({"sink_handling": "redistribute", "redistribute_top": 0.1,
                                           "redistribute_threshold": 0.5}, "both given")])
def test_bad_sink_handling_settings(kwargs, word):
    with pytest.raises(ValueError, match=word):
        build_pruner("visionzip", 0.25, **kwargs)


def test_describe_records_the_sink_handling():
    assert build_pruner("holitom", 0.1).describe()["sink_handling"] == "stop"
    hard = build_pruner("holitom", 0.1, sink_handling="hard").describe()
    assert (hard["sink_handling"], hard["hard_k"], hard["hard_unit"]) == ("hard", 0.1, "token")
    red = build_pruner("holitom", 0.1, sink_handling="redistribute", redistribute_threshold=0.5).describe()
    assert (red["redistribute_p"], red["redistribute_threshold"]) == (0.6, 0.5) and "redistribute_top" not in red


# ------------------------------------------------------------------------------------------ stop_parameters
def test_stop_modes_list_every_mode():
    assert set(STOP_MODES) == {"off", "on", "stsp", "sttp", "hard", "redistribute"}
    assert PAPER_MU["flashvid"] == (0.02, 0.0) and "prunevid" not in PAPER_MU and "dpc_knn" not in PAPER_MU


@pytest.mark.parametrize("name", list(PRUNERS))
@pytest.mark.parametrize("mode", list(STOP_MODES))
def test_stop_parameters_result_builds_the_pruner(name, mode):
    """The contract: every key but stop and mu_source is a build_pruner keyword; or a one-line error."""
    try:
        stop = stop_parameters(name, "llava_ov", mode)
    except ValueError as err:
        assert "\n" not in str(err)
        assert (mode in ("hard", "redistribute") and not PRUNERS[name].uses_attention) or (
            mode == "sttp" and PRUNERS[name].uses_attention and not PRUNERS[name].uses_temporal_test)
        return
    assert {"stop", "mu_s", "mu_t", "mu_source"} <= set(stop)
    pruner = build_pruner(name, 0.25, gamma=1.1, seed=0, **{k: v for k, v in stop.items() if k not in ("stop", "mu_source")})
    described = pruner.describe()
    assert described["sink_handling"] == (mode if mode in ("hard", "redistribute") else "stop")
    X, A, K = random_inputs(4, 16, seed=2, static_frac=0.5)
    assert len(pruner(X, A, keys=K, grid=(4, 4))) > 0


def test_stop_parameters_values():
    assert stop_parameters("flashvid", "llava_ov", "on") == {"stop": "on", "mu_s": 0.02, "mu_t": 0.0, "mu_source": "paper"}
    hard = stop_parameters("visionzip", "llava_ov", "hard")
    assert hard["sink_handling"] == "hard" and hard["hard_k"] == 0.1 and hard["mu_s"] == hard["mu_t"] == 0.0
    assert stop_parameters("visionzip", "llava_ov", "hard", hard_k=0.05)["hard_k"] == 0.05
    red = stop_parameters("holitom", "qwen25vl", "redistribute", redistribute_threshold=0.5)
    assert red["redistribute_threshold"] == 0.5 and "redistribute_top" not in red
    assert stop_parameters("prunevid", "llava_ov", "on")["stop"] == "off"


@pytest.mark.parametrize("args,kwargs,word", [
    (("prunevid", "llava_ov", "hard"), {}, "stop=hard needs a pruner that ranks tokens by attention"),
    (("dpc_knn", "llava_ov", "redistribute"), {}, "stop=redistribute needs"),
    (("visionzip", "llava_ov", "on"), {"hard_k": 0.1}, "hard_k=0.1 does not apply to stop=on"),
    (("visionzip", "llava_ov", "hard"), {"mu_s": 0.03}, "mu_s=0.03 has no effect with stop=hard"),
    (("visionzip", "llava_ov", "hard"), {"hard_k": 2.0}, "hard_k"),
    (("flashvid", "llava_ov", "sttp"), {}, "stop=sttp needs a pruner with a temporal redundancy test"),
    (("visionzip", "llava_ov", "soft"), {}, "stop='soft' is unknown"),
])
def test_stop_parameters_errors_are_one_line(args, kwargs, word):
    with pytest.raises(ValueError, match=word) as err:
        stop_parameters(*args, **kwargs)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------ sink statistics
def test_sink_statistics_by_hand():
    """T = 3, n = 20: the sink set is the top ceil(2) = 2 positions by s. Attention 0.5 at position 7 and
    0.3 at position 2 in every frame, 0.01 elsewhere -> sinks {2, 7}. Kept: frame 0 {7, 1}, frame 1 {7},
    frame 2 {2, 7, 7 (a duplicate pick)} -> 5 of 6 kept tokens at sinks; the dense input has 3 * 2."""
    A = torch.full((3, 20), 0.01)
    A[:, 7], A[:, 2] = 0.5, 0.3
    index = torch.tensor([1, 7, 27, 42, 47, 47])
    stats = sink_statistics(A, index, 3, 20)
    assert stats["sink_positions"] == [2, 7]
    assert (stats["kept_tokens"], stats["kept_at_sink"], stats["dense_at_sink"]) == (6, 5, 6)
    frequency = stats["selection_frequency"]
    assert len(frequency) == 20 and frequency[7] == 1.0 and frequency[1] == pytest.approx(1 / 3)
    assert frequency[2] == pytest.approx(1 / 3) and sum(frequency) == pytest.approx(5 / 3)
    assert stats["frames"] == 3 and stats["tokens_per_frame"] == 20 and "top 0.1" in stats["sink_set"]
    import json
    json.dumps(stats)  # JSON-friendly
    # the same from a precomputed sink score
    s = torch.tensor(sink_ref(A), dtype=torch.float32)
    assert sink_statistics(s, index, 3, 20)["kept_at_sink"] == 5


def test_no_sink_evidence_gives_an_empty_sink_set():
    A = torch.full((2, 10), 0.1)
    stats = sink_statistics(A, torch.tensor([0, 15]), 2, 10)
    assert stats["sink_positions"] == [] and stats["kept_at_sink"] == 0 and stats["dense_at_sink"] == 0


def test_sink_statistics_count_static_tokens_once():
    # HoliTom: a fully static video keeps its sink position once (one window token), not once per frame
    T, n = 4, 10
    X = torch.randn(1, n, 6).expand(T, n, 6).clone()
    A = torch.full((T, n), 0.01)
    A[:, 3] = 0.9
    merged = build_pruner("holitom", 0.5)(X, A, grid=(2, 5))
    spatial = build_pruner("visionzip", 0.5)(X, A, keys=torch.randn(T, n, 4), grid=(2, 5))
    assert sink_statistics(A, merged.index, T, n)["kept_at_sink"] <= 1
    assert sink_statistics(A, spatial.index, T, n)["kept_at_sink"] == T


def test_sink_statistics_errors():
    with pytest.raises(ValueError, match="index values"):
        sink_statistics(torch.rand(2, 4), torch.tensor([8]), 2, 4)
    with pytest.raises(ValueError, match="attn_or_sink"):
        sink_statistics(torch.rand(5), torch.tensor([0]), 2, 4)


def test_summary_of_a_run():
    a = {"frames": 2, "tokens_per_frame": 3, "kept_tokens": 4, "kept_at_sink": 1, "dense_at_sink": 2,
         "selection_frequency": [1.0, 0.5, 0.0]}
    b = {"frames": 4, "tokens_per_frame": 3, "kept_tokens": 6, "kept_at_sink": 3, "dense_at_sink": 4,
         "selection_frequency": [0.25, 0.5, 1.0]}
    summary = summarise_sink_statistics([a, b])
    assert (summary["videos"], summary["kept_at_sink"], summary["dense_at_sink"], summary["kept_tokens"]) == (2, 4, 6, 10)
    assert summary["kept_at_sink_per_video"] == 2.0 and summary["sink_share_of_kept"] == 0.4
    assert summary["selection_frequency"] == pytest.approx([(2 + 1) / 6, 0.5, 4 / 6])
    assert summarise_sink_statistics([a, {**b, "tokens_per_frame": 4, "selection_frequency": [0] * 4}])[
        "selection_frequency"] is None
    assert summarise_sink_statistics([]) == {"videos": 0}


# ------------------------------------------------------------------------------------------ tiny ratios
def covered_frames(out, T, n):
    """Frames a kept token stands for: its own frame, or every frame of its window (static tokens)."""
    frames = set()
    windows = out.info.get("windows")
    for j in out.index.tolist():
        t = j // n
        if windows:
            a, b = next((a, b) for a, b in windows if a <= t <= b)
            frames.update(range(a, b + 1)) if t == a else frames.add(t)
        else:
            frames.add(t)
    return frames


@pytest.mark.parametrize("name", list(PRUNERS))
@pytest.mark.parametrize("video", ["random", "static"])
def test_every_frame_keeps_a_token_at_tiny_ratios(name, video):
    T, n = 6, 36
    X, A, K = random_inputs(T, n, D=6, seed=3, static_frac=0.5)
    if video == "static":  # everything static: HoliTom used to keep 0 tokens here at r = 1e-9
        X = X[:1].expand(T, n, 6).clone()
    for ratio in (1e-9, 1e-3):
        out = build_pruner(name, ratio)(X, A, keys=K, grid=(6, 6))
        assert len(out) >= 1
        assert covered_frames(out, T, n) == set(range(T)), (name, ratio)
