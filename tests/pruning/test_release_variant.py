"""variant="release": the SToP release's code-only sink terms (shared/docs/specs/release_extras.md), by hand
and against the slow reference; "paper" stays the default and other pruners refuse "release"."""
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import assert_matches, fastvid_ref, holitom_ref, random_inputs, visionzip_ref  # noqa: E402

from sinktop_eval.pruning import PRUNERS, build_pruner  # noqa: E402

RELEASE = ("visionzip", "fastvid", "holitom")


# ------------------------------------------------------------------------------------------ the switch
@pytest.mark.parametrize("name", list(PRUNERS))
def test_default_variant_is_paper_and_is_recorded(name):
    described = build_pruner(name, 0.25).describe()
    assert described["variant"] == "paper"
    if name in RELEASE:
        assert build_pruner(name, 0.25, variant="release").describe()["variant"] == "release"


@pytest.mark.parametrize("name", [n for n in PRUNERS if n not in RELEASE])
def test_pruners_without_release_terms_refuse_the_release_variant(name):
    with pytest.raises(ValueError, match=r"variant='release'.*allowed: paper"):
        build_pruner(name, 0.25, variant="release")


@pytest.mark.parametrize("variant", ["releas", "Paper", "", None, 1])
def test_unknown_variant_names_the_allowed_values(variant):
    with pytest.raises(ValueError, match=r"variant=.*allowed: paper, release"):
        build_pruner("holitom", 0.25, variant=variant)


# ------------------------------------------------------------------------------------------ VisionZip
def visionzip_sink_case():
    """T = 2, n = 49 (7x7), r = 0.5: S = floor(24.5) = 24, K_d = floor(24*54/64) = 20, K_c = 4, M = 29,
    stride 7 -> slots 0, 7, 14, 21. Attention is the same in both frames, with the 20 largest values at
    Z = {0, 1, 7, 8, 30..45}: Z is both the dominant set and the release's top-20 sink positions.
    Remaining positions (raster): 2 3 4 5 6 9 10 ... 29 46 47 48 (slot j -> position)."""
    n = 49
    Z = [0, 1, 7, 8] + list(range(30, 46))
    A = torch.tensor([[0.5 + i / 1000 if i in Z else i / 1000 for i in range(n)]] * 2)
    X, _, K = random_inputs(2, n, D=6, dk=5, seed=3)
    return X, A, K


def test_visionzip_release_moves_target_slots_off_sink_numbers_even_at_mu_zero():
    X, A, K = visionzip_sink_case()
    remaining = [2, 3, 4, 5, 6] + list(range(9, 30)) + [46, 47, 48]
    paper = build_pruner("visionzip", 0.5)(X, A, keys=K, grid=(7, 7))
    release = build_pruner("visionzip", 0.5, variant="release")(X, A, keys=K, grid=(7, 7))
    # paper: slots 0, 7, 14, 21. release: slot 0 is sink number 0 -> 1 (sink) -> 2; 7 -> 8 (sink) -> 9;
    # 14 and 21 are not among Z's numbers and stay.
    assert [remaining[j] for j in (0, 7, 14, 21)] == [2, 11, 18, 25]
    assert [remaining[j] for j in (2, 9, 14, 21)] == [4, 13, 18, 25]
    for t in range(2):
        assert [j - 49 * t for j in paper.index[24 * t + 20:24 * (t + 1)].tolist()] == [2, 11, 18, 25]
        assert [j - 49 * t for j in release.index[24 * t + 20:24 * (t + 1)].tolist()] == [4, 13, 18, 25]
        assert paper.index[24 * t:24 * t + 20].tolist() == release.index[24 * t:24 * t + 20].tolist()
    for out, rel in ((paper, False), (release, True)):
        tokens, index = visionzip_ref(X, A, K, 0.5, release=rel)
        assert_matches(out, tokens, index)


def test_visionzip_release_keeps_colliding_targets_as_duplicates():
    # sinks at 0..19: slots 0, 7, 14 all walk to slot 20, slot 21 stays: three copies of one target,
    # the first absorbs its members, the other two are the bare target (an empty cluster adds nothing)
    n = 49
    A = torch.tensor([[1.0 - i / 100 if i < 20 else i / 1000 for i in range(n)]] * 2)
    X, _, K = random_inputs(2, n, D=6, dk=5, seed=4)
    out = build_pruner("visionzip", 0.5, variant="release")(X, A, keys=K, grid=(7, 7))
    assert out.index[20:24].tolist() == [40, 40, 40, 41]  # remaining = 20..48, slot 20 -> position 40
    assert torch.equal(out.tokens[21], X[0, 40]) and torch.equal(out.tokens[22], X[0, 40])
    tokens, index = visionzip_ref(X, A, K, 0.5, release=True)
    assert_matches(out, tokens, index)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio,mu_s", [(0.12, 0.0), (0.3, 0.03), (0.5, 0.3)])  # off the n=196 table
def test_visionzip_release_matches_reference(seed, ratio, mu_s):
    X, A, K = random_inputs(3, 64, D=6, dk=5, seed=seed)
    A[:, [0, 1, 8, 9, 17]] += 0.05  # sinks at low position numbers, which collide with slot numbers
    out = build_pruner("visionzip", ratio, mu_s=mu_s, variant="release")(X, A, keys=K, grid=(8, 8))
    tokens, index = visionzip_ref(X, A, K, ratio, mu_s=mu_s, release=True)
    assert_matches(out, tokens, index)


# ------------------------------------------------------------------------------------------ FastVID
def fastvid_sink_case():
    """T = 2, n = 5 (1x5), D = 1, r = 0.6, d = 0.4: R = 3, R_c = 1, R_s = 2, m = 3.
    Frame 1: A = (.5, .4, .05, .1, .05) -> salient {0, 1}; non-salient features x = 1, 2, 4 at positions
    2, 3, 4. Density peaks (k = min(4, 3) = 3, distances |dx|): rho = exp(-(10/3, 5/3, 13/3)),
    delta = (1, 3 [densest: max distance], 2) -> rho*delta = (0.0357, 0.5666, 0.0263).
    Frame 0 attention puts 1.0 on position 3, so mean_t A (gamma 1) gives s = 1 at position 3 and s = 0
    at positions 2 and 4; mu_s = 0.01 leaves frame 1's salient set alone (.491, .393 vs .09)."""
    X = torch.tensor([[[9.0], [8.0], [1.0], [7.0], [3.0]], [[6.0], [5.0], [1.0], [2.0], [4.0]]])
    A = torch.tensor([[0.5, 0.4, 0.0, 1.0, 0.0], [0.5, 0.4, 0.05, 0.1, 0.05]])
    return X, A


@pytest.mark.parametrize("segments,c,anchors", [
    ("one-frame", 2, {"paper": [3], "release": [3]}),  # one anchor: 0.5666 - 0.3 = 0.2666 still wins
    ("two-frame", 1, {"paper": [2, 3], "release": [2, 4]}),  # two anchors: 0.5666 - 0.6 < 0.0263
])
def test_fastvid_release_penalises_anchor_scores_once_or_twice(segments, c, anchors):
    X, A = fastvid_sink_case()
    for variant in ("paper", "release"):
        prune = build_pruner("fastvid", 0.6, mu_s=0.01, gamma=1.0, c=c, tau_seg=-1.0, variant=variant)
        out = prune(X, A, grid=(1, 5), frame_features=torch.ones(2, 2))
        assert out.info["segments"] == ([1, 1] if segments == "one-frame" else [2])
        frame1 = [j - 5 for j in out.index.tolist() if j >= 5]
        assert frame1 == sorted([0, 1] + anchors[variant])
        tokens, index, _ = fastvid_ref(X, A, 0.6, mu_s=0.01, gamma=1.0, c=c, tau_seg=-1.0,
                                       frame_features=torch.ones(2, 2), release=variant == "release")
        assert_matches(out, tokens, index)


def test_fastvid_release_term_is_off_at_mu_zero():
    X, A = fastvid_sink_case()
    for c in (1, 2):
        paper = build_pruner("fastvid", 0.6, c=c, tau_seg=-1.0)(X, A, grid=(1, 5), frame_features=torch.ones(2, 2))
        release = build_pruner("fastvid", 0.6, c=c, tau_seg=-1.0, variant="release")(
            X, A, grid=(1, 5), frame_features=torch.ones(2, 2))
        assert torch.equal(paper.index, release.index) and torch.equal(paper.tokens, release.tokens)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("T,cuts,c,p", [(9, {4}, 3, 4), (12, {5}, 3, 3)])
def test_fastvid_release_matches_reference(seed, T, cuts, c, p):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(16, 6, generator=g)
    X = torch.stack([base + 0.3 * torch.randn(16, 6, generator=g) if t not in cuts else torch.randn(16, 6, generator=g)
                     for t in range(T)])
    A = torch.rand(T, 16, generator=g)
    A[:, [5, 6]] += 0.3  # sinks
    out = build_pruner("fastvid", 0.5, mu_s=0.2, c=c, p=p, variant="release")(X, A, grid=(4, 4))
    tokens, index, info = fastvid_ref(X, A, 0.5, mu_s=0.2, c=c, p=p, release=True)
    assert out.info["segments"] == info["segments"]
    assert_matches(out, tokens, index)


# ------------------------------------------------------------------------------------------ HoliTom
def test_holitom_release_centre_penalty_by_hand():
    """T = 2, n = 4, every position static and identical over time; r = 0.25 -> r' = 0.5 -> C = 2, k = 2.
    X0 = (0, .5), (.1, .5), (1, .5), (1.6, .5); distances |dx|/sqrt(2). rho = exp(-d_nn^2 / 2):
    .9975 (0, 1; 0 denser), .9139 (2, 3; 2 denser). delta: 0 -> max 1.131, 1 -> .0707, 2 -> .6364,
    3 -> .4243. rho*delta = (1.129, .0705, .5816, .3878) -> paper centres {0, 2}.
    A (gamma 1) = (.3, .3, .5, .1): s = (.5, .5, 1, 0); release: .5816 - .3 = .2816 < .3878 -> {0, 3}."""
    X0 = torch.tensor([[0.0, 0.5], [0.1, 0.5], [1.0, 0.5], [1.6, 0.5]])
    X = X0.unsqueeze(0).expand(2, 4, 2).clone()
    A = torch.tensor([[0.3, 0.3, 0.5, 0.1]] * 2)
    paper = build_pruner("holitom", 0.25, gamma=1.0)(X, A, grid=(2, 2))
    release = build_pruner("holitom", 0.25, gamma=1.0, variant="release")(X, A, grid=(2, 2))
    assert paper.index.tolist() == [0, 2] and release.index.tolist() == [0, 3]
    # members join the nearest centre; centre' = 0.6 centre + 0.4 mean(members)
    assert torch.allclose(paper.tokens, torch.tensor([[0.04, 0.5], [0.6 + 0.64, 0.5]]), atol=1e-6)
    assert torch.allclose(release.tokens, torch.tensor([[0.04, 0.5], [0.96 + 0.4, 0.5]]), atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio,mu_s,mu_t", [(0.25, 0.0, 0.0), (0.1, 0.04, 0.07)])
def test_holitom_release_matches_reference(seed, ratio, mu_s, mu_t):
    X, A, _ = random_inputs(5, 16, D=6, seed=seed, static_frac=0.6, noise=0.35)
    A[:, [2, 3]] += 0.2
    out = build_pruner("holitom", ratio, mu_s=mu_s, mu_t=mu_t, variant="release")(X, A, grid=(4, 4))
    tokens, index, info = holitom_ref(X, A, ratio, mu_s=mu_s, mu_t=mu_t, release=True)
    assert out.info["windows"] == info["windows"]
    assert_matches(out, tokens, index)
