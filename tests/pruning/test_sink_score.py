"""The SToP sink score, worked by hand from algorithms.md (s_i = minmax((mean_t A)^gamma))."""
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sinktop_pruning_refs import sink_ref  # noqa: E402

from sinktop_eval.pruning import sink_score  # noqa: E402


def test_hand_case_gamma_one_is_plain_minmax_of_column_means():
    # column means: 0.1, 0.2, 0.4, 0.25  -> minmax: 0, 1/3, 1, 0.5
    attn = torch.tensor([[0.05, 0.3, 0.4, 0.25], [0.15, 0.1, 0.4, 0.25]])
    s = sink_score(attn, gamma=1.0)
    assert s.shape == (4,)
    assert torch.allclose(s, torch.tensor([0.0, 1 / 3, 1.0, 0.5]), atol=1e-6)


def test_hand_case_default_gamma_is_1_1():
    attn = torch.tensor([[0.05, 0.3, 0.4], [0.15, 0.1, 0.4]])  # means 0.1, 0.2, 0.4
    lo, mid, hi = 0.1 ** 1.1, 0.2 ** 1.1, 0.4 ** 1.1
    want = torch.tensor([0.0, (mid - lo) / (hi - lo), 1.0])
    assert torch.allclose(sink_score(attn), want, atol=1e-6)  # default gamma
    assert torch.allclose(sink_score(attn, gamma=1.1), want, atol=1e-6)


def test_gamma_changes_the_middle_values_only():
    attn = torch.tensor([[0.1, 0.2, 0.4]])
    s1, s2, s3 = sink_score(attn, 1.0), sink_score(attn, 2.0), sink_score(attn, 1.1)
    assert torch.allclose(s1, torch.tensor([0.0, 1 / 3, 1.0]), atol=1e-6)
    assert torch.allclose(s2, torch.tensor([0.0, 0.2, 1.0]), atol=1e-6)  # (.04-.01)/(.16-.01)
    assert s3[1] < s1[1] and s3[1] > s2[1]  # convex power pushes the middle down
    assert s1[0] == s2[0] == 0 and s1[2] == s2[2] == 1


def test_sum_or_mean_over_frames_is_the_same_after_minmax():
    g = torch.Generator().manual_seed(3)
    attn = torch.rand(5, 9, generator=g)
    assert torch.allclose(sink_score(attn), sink_score(attn * 5), atol=1e-6)


@pytest.mark.parametrize("attn", [
    torch.full((3, 6), 1 / 6),  # constant attention
    torch.tensor([[0.1, 0.3, 0.2, 0.4], [0.3, 0.1, 0.2, 0.0]]),  # frames differ, column means equal
    torch.tensor([[0.7], [0.2]]),  # a single position
])
def test_no_sink_evidence_gives_zeros(attn):
    s = sink_score(attn)
    assert s.shape == (attn.shape[1],)
    assert torch.equal(s, torch.zeros_like(s))
    assert not torch.isnan(s).any()


def test_sink_is_a_position_that_draws_attention_in_every_frame():
    # position 2 draws 0.3 in every frame; position 0 draws 0.9 in one frame only (an object)
    attn = torch.tensor([[0.9, 0.0, 0.3, 0.0], [0.0, 0.2, 0.3, 0.1], [0.0, 0.2, 0.3, 0.1], [0.0, 0.2, 0.3, 0.1]])
    s = sink_score(attn)
    assert int(s.argmax()) == 2 and s[2] == 1
    assert s[0] < s[2]


def test_random_matches_reference_and_is_in_unit_interval():
    g = torch.Generator().manual_seed(0)
    for trial in range(5):
        attn = torch.rand(4, 13, generator=g) ** 3
        s = sink_score(attn, gamma=1.1)
        want = torch.tensor(sink_ref(attn, 1.1), dtype=torch.float32)
        assert torch.allclose(s, want, atol=1e-6)
        assert float(s.min()) == 0.0 and float(s.max()) == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_and_device_are_kept(dtype):
    attn = torch.tensor([[0.05, 0.3, 0.4, 0.25], [0.15, 0.1, 0.4, 0.25]], dtype=dtype)
    s = sink_score(attn, gamma=1.0)
    assert s.dtype == dtype and s.device == attn.device
    tol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6
    assert torch.allclose(s.double(), torch.tensor([0.0, 1 / 3, 1.0, 0.5], dtype=torch.float64), atol=tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device_kept():
    attn = torch.rand(3, 7, device="cuda", dtype=torch.float16)
    s = sink_score(attn)
    assert s.device.type == "cuda" and s.dtype == torch.float16
    assert torch.allclose(s.float().cpu(), sink_score(attn.float().cpu()), atol=2e-3)
