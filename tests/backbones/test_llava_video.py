"""LLaVA-Video on the HF LLaVA-OneVision class: layout read from the config, exactness like the other backbones.

The tiny twin carries average pooling (stride 2) and grid newlines: 6x6 tokens + 6 newlines per frame on
its 13x13 patch grid, where the HF class would give 7x7 + one newline per video. References are built
from the vision tower's hidden states by ``references.py`` (reshape pooling, loop layout), never through
the adapter; with the layout set to HF's own (bilinear, one_token) the adapter must reproduce the
unpatched HF forward bit for bit.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import sys

import pytest
import torch

from sinktop_eval.backbones import LlavaVideoBackbone, UnsupportedCheckpointError, load_backbone
from sinktop_eval.backbones.llava_ov import feature_layer_index
from sinktop_eval.backbones.llava_video import VideoLayout
from sinktop_eval.backbones.tiny import tiny_checkpoint
from sinktop_eval.pruning import build_pruner

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from references import _pool_by_reshape, llava_video_dense, llava_video_masked_logits  # noqa: E402

PROMPT = "Is there a red square?"


@pytest.fixture(scope="module")
def video_twin(tiny_cache):
    return load_backbone("tiny_llava_video", device="cpu")


@pytest.fixture(scope="module")
def video_encoded(video_twin, clip):
    prepared = video_twin.prepare(clip, PROMPT, frames=16)
    return prepared, video_twin.encode(prepared)


def _logits(model, **inputs):
    with torch.no_grad():
        return model(**inputs).logits[0]


def test_layout_comes_from_the_checkpoint_config(video_twin, video_encoded):
    config = json.loads((pathlib.Path(video_twin.checkpoint) / "config.json").read_text())
    assert config["model_type"] == "llava_onevision"  # the HF class, no LLaVA-Video class
    assert (config["mm_spatial_pool_mode"], config["mm_spatial_pool_stride"], config["mm_newline_position"]) == \
        ("average", 2, "grid")
    assert type(video_twin.model).__name__ == "LlavaOnevisionForConditionalGeneration"
    assert video_twin.layout == VideoLayout("average", 2, "grid", "config.json")
    prepared, vision = video_encoded
    assert vision.grid == (6, 6) and vision.features.shape[:2] == (16, 36)  # floor(13 / 2) = 6, not 7
    start, end = video_twin.video_span(prepared.inputs["input_ids"])
    assert end - start == 16 * (36 + 6)  # 6 grid newlines per frame
    described = video_twin.describe()
    assert described["mm_spatial_pool_mode"] == "average" and described["layout_source"] == "config.json"
    assert described["family"] == "llava_video" and described["mu_family"] == "llava_ov"
    assert video_twin.stop_family == "llava_ov" and LlavaVideoBackbone.mu_family == "llava_ov"


def test_results_record_the_layout_and_newlines(video_twin, clip):
    stats = video_twin.generate(clip, PROMPT, pruner=build_pruner("uniform", 0.25), frames=8, max_new_tokens=1).stats
    assert (stats["backbone_mm_spatial_pool_mode"], stats["backbone_mm_spatial_pool_stride"],
            stats["backbone_mm_newline_position"], stats["backbone_layout_source"]) == ("average", 2, "grid", "config.json")
    assert stats["dense_visual_tokens"] == 8 * 36 and stats["newline_tokens_dense"] == 8 * 6
    assert stats["visual_placeholders"] == stats["kept_visual_tokens"] + stats["newline_tokens"]


def test_missing_layout_keys_fail_with_the_fix(tmp_path, tiny_cache):
    """A converted checkpoint has none of the keys: refuse, naming them and where they come from."""
    source = tiny_checkpoint("tiny_llava_video")
    target = tmp_path / "converted"
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    for key in ("mm_spatial_pool_mode", "mm_spatial_pool_stride", "mm_newline_position"):
        config.pop(key)
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedCheckpointError, match=r"has no mm_spatial_pool_mode in its config.json") as err:
        load_backbone("llava_video", path=target, device="cpu")
    assert "lmms-lab/LLaVA-Video-7B-Qwen2" in str(err.value) and "\n" not in str(err.value)
    # explicit settings are the other way; they are recorded as such
    backbone = load_backbone("llava_video", path=target, device="cpu", mm_spatial_pool_mode="bilinear",
                             mm_spatial_pool_stride=2, mm_newline_position="frame")
    assert backbone.layout == VideoLayout("bilinear", 2, "frame", "setting")
    assert load_backbone(str(target), device="cpu").family == "llava_ov"  # a bare dir without the keys: HF's layout
    assert load_backbone(str(source), device="cpu").family == "llava_video"  # with them: LLaVA-Video
    with pytest.raises(ValueError, match=r"mm_spatial_pool_mode='mean' is unsupported; allowed: average, max, bilinear"):
        load_backbone("llava_video", path=source, device="cpu", mm_spatial_pool_mode="mean")


def test_dense_splice_with_hf_layout_reproduces_unpatched_logits_exactly(tiny_cache, clip, wide_clip):
    """bilinear / stride 2 / one_token is what LlavaOnevisionForConditionalGeneration does by itself."""
    backbone = load_backbone("tiny_llava_video", device="cpu", mm_spatial_pool_mode="bilinear",
                             mm_spatial_pool_stride=2, mm_newline_position="one_token")
    for video in (clip, wide_clip):
        prepared = backbone.prepare(video, PROMPT, frames=16)
        vision = backbone.encode(prepared)
        assert vision.grid == (7, 7)
        dense = build_pruner("dense", 1.0)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
        spliced = backbone.splice(prepared, vision, dense)
        assert torch.equal(spliced["input_ids"], prepared.inputs["input_ids"])
        assert torch.equal(_logits(backbone.model, **spliced), _logits(backbone.model, **prepared.inputs))


def test_dense_splice_equals_the_reference_layout(video_twin, video_encoded):
    """average / grid: the spliced dense sequence == the loop-built layout of the reshape-pooled features."""
    prepared, vision = video_encoded
    dense = build_pruner("dense", 1.0)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
    spliced = video_twin.splice(prepared, vision, dense)
    assert torch.equal(spliced["input_ids"], prepared.inputs["input_ids"])
    sequence, kinds, _, _ = llava_video_dense(video_twin, prepared)
    got = spliced["mm_encoder_outputs"]["video"].pooler_output[0]
    assert got.shape == sequence.shape and int(kinds.sum()) == 16 * 6
    torch.testing.assert_close(got, sequence, atol=1e-6, rtol=1e-6)
    want = llava_video_masked_logits(video_twin, prepared, dense)  # nothing masked: the dense reference
    torch.testing.assert_close(_logits(video_twin.model, **spliced), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pruner", ["random", "uniform", "fastvid"])
def test_pruned_logits_equal_masked_reference(pruner, video_twin, video_encoded):
    prepared, vision = video_encoded
    pruned = build_pruner(pruner, 0.25, seed=1)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
    assert torch.all(pruned.index[1:] > pruned.index[:-1]), "the reference needs tokens in index order"
    spliced = video_twin.splice(prepared, vision, pruned)
    got = _logits(video_twin.model, **spliced)
    want = llava_video_masked_logits(video_twin, prepared, pruned)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    rows = set((pruned.index // 6).tolist())  # frame rows with a kept token each keep their newline
    assert int((spliced["input_ids"] == video_twin.video_token_id).sum()) == len(pruned) + len(rows)


def test_captured_attention_equals_eager_attention(tiny_cache, clip):
    backbone = load_backbone("tiny_llava_video", device="cpu", attn_implementation="eager")
    config = backbone.model.config
    tower = backbone.model.model.vision_tower
    layer = feature_layer_index(config.vision_feature_layer, len(tower.encoder.layers))
    prepared = backbone.prepare(clip, PROMPT, frames=16)
    vision = backbone.encode(prepared)
    with torch.no_grad():
        out = tower(prepared.inputs["pixel_values_videos"][0], output_attentions=True, output_hidden_states=True)
        eager = out.attentions[layer].mean(dim=(1, 2))  # (F, P) column mean from the eager kernel
        side = config.vision_config.image_size // config.vision_config.patch_size
        want = _pool_by_reshape(eager.unsqueeze(-1), side, "average", 2).squeeze(-1)  # (F, 36)
    torch.testing.assert_close(vision.attn, want, atol=1e-7, rtol=1e-5)


def test_layout_arrange_keeps_llm_order_with_one_newline_per_row():
    """A pruner that lists a frame's tokens out of index order (e.g. dominant then contextual ones):
    1 row-0 and 3 row-1 tokens of a 2x2 frame, given as 3, 0, 2 -> row 1, row 0, row 1."""
    layout = VideoLayout("average", 2, "grid", "test")
    tokens = torch.tensor([[3.0], [0.0], [2.0]])
    sequence, _ = layout.arrange(tokens, torch.tensor([3, 0, 2]), (2, 2), torch.tensor([-1.0]))
    assert sequence.flatten().tolist() == [3, 0, -1, 2, -1]  # row 0 closes after 0, row 1 after 2


@pytest.mark.parametrize("newline", ["grid", "frame", "one_token", "no_token"])
def test_layout_arrange_by_hand(newline):
    """2 frames of a 2x2 grid; kept flat positions 0, 1, 3, 6 (frame 0: rows 0 and 1; frame 1: row 1)."""
    layout = VideoLayout("average", 2, newline, "test")
    tokens = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    sequence, flags = layout.arrange(tokens, torch.tensor([0, 1, 3, 6]), (2, 2), torch.tensor([-1.0]))
    expected = {"grid": [0, 1, -1, 3, -1, 6, -1], "frame": [0, 1, 3, -1, 6, -1],
                "one_token": [0, 1, 3, 6, -1], "no_token": [0, 1, 3, 6]}[newline]
    assert sequence.flatten().tolist() == expected
    assert flags.tolist() == [v == -1 for v in expected]
    dense = {"grid": 2 * 2 * 3, "frame": 2 * 5, "one_token": 9, "no_token": 8}[newline]
    assert layout.sequence_length(2, 2, 2) == dense


def test_pooled_sides_for_the_7b_grid():
    """27x27 SigLIP patches: 13x13 = 169 tokens by average / max, 14x14 = 196 by bilinear."""
    assert VideoLayout("average", 2, "grid", "").pooled_side(27) == 13
    assert VideoLayout("max", 2, "grid", "").pooled_side(27) == 13
    assert VideoLayout("bilinear", 2, "grid", "").pooled_side(27) == 14
    assert VideoLayout("average", 2, "grid", "").sequence_length(32, 13, 13) == 32 * (169 + 13)
