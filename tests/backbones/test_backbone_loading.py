"""load_backbone: names, checkpoint directories, tiny twins built offline, and one-line failures."""
from __future__ import annotations

import time

import pytest
import torch

from sinktop_eval.backbones import (
    BACKBONES,
    CheckpointUnavailableError,
    LlavaOVBackbone,
    Qwen25VLBackbone,
    UnknownBackboneError,
    UnsupportedCheckpointError,
    load_backbone,
    registry,
)
from sinktop_eval.backbones.tiny import BUILDER_VERSION, build_tiny_llava_ov, tiny_checkpoint


def test_twins_are_the_real_classes_loaded_from_a_checkpoint_dir(twins, tiny_cache):
    from transformers import LlavaOnevisionForConditionalGeneration, Qwen2_5_VLForConditionalGeneration

    qwen, llava = twins["tiny_qwen25vl"], twins["tiny_llava_ov"]
    assert isinstance(qwen, Qwen25VLBackbone) and type(qwen.model) is Qwen2_5_VLForConditionalGeneration
    assert isinstance(llava, LlavaOVBackbone) and type(llava.model) is LlavaOnevisionForConditionalGeneration
    for name, backbone in twins.items():
        assert backbone.name == name and backbone.family == name.removeprefix("tiny_")
        assert backbone.checkpoint == str(tiny_cache / "tiny" / f"{name}-v{BUILDER_VERSION}-seed0")
        assert backbone.dtype == torch.float32 and backbone.device.type == "cpu"
    vision = qwen.model.config.vision_config  # the 7B's structure in miniature
    assert vision.spatial_merge_size == 2 and vision.temporal_patch_size == 2
    assert vision.depth - 1 in vision.fullatt_block_indexes and len(vision.fullatt_block_indexes) < vision.depth
    assert vision.window_size // (vision.patch_size * vision.spatial_merge_size) >= 2  # real windows
    assert llava.model.config.vision_feature_layer == -2
    assert list(llava.processor.video_processor.image_mean) == [0.5, 0.5, 0.5]


def test_twin_build_is_deterministic(twins, tmp_path):
    build_tiny_llava_ov(tmp_path, seed=0)
    again = load_backbone(str(tmp_path), device="cpu")  # a plain directory: architecture from config.json
    assert isinstance(again, LlavaOVBackbone) and again.name == "llava_ov"
    first = twins["tiny_llava_ov"].model.state_dict()
    second = again.model.state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_path_override_and_mismatch(tiny_cache):
    qwen_dir = tiny_checkpoint("tiny_qwen25vl")
    backbone = load_backbone("qwen25vl", path=qwen_dir, device="cpu")  # the 7B's name on a local checkpoint
    assert backbone.name == "qwen25vl" and backbone.checkpoint == str(qwen_dir)
    with pytest.raises(UnsupportedCheckpointError, match=r"holds a qwen2_5_vl checkpoint but backbone=llava_ov"):
        load_backbone("llava_ov", path=qwen_dir)


def test_unknown_backbone_is_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match=r"backbone='qwen3' is unknown; allowed: qwen25vl, llava_ov, llava_video, "
                                         r"tiny_qwen25vl, tiny_llava_ov, tiny_llava_video, real_shape_qwen25vl, ") as err:
        load_backbone("qwen3")
    assert isinstance(err.value, UnknownBackboneError) and "\n" not in str(err.value)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(UnsupportedCheckpointError, match=r"model_type='llama'; supported: qwen2_5_vl, llava_onevision "
                                                         r"\(Qwen2.5-VL, LLaVA-OneVision / LLaVA-Video\)"):
        load_backbone(str(tmp_path))


def test_unreachable_hub_id_fails_fast_with_the_fix(monkeypatch):
    """A 7B id that is not cached and cannot be downloaded (HF_HUB_OFFLINE=1 here): one line, quickly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(BACKBONES, "qwen25vl", registry.BackboneSpec(Qwen25VLBackbone, "sinktop-tests/not-a-model"))
    began = time.perf_counter()
    with pytest.raises(CheckpointUnavailableError) as err:
        load_backbone("qwen25vl")
    assert time.perf_counter() - began < 30
    message = str(err.value)
    assert "\n" not in message and "'sinktop-tests/not-a-model'" in message
    assert "pass the local checkpoint directory" in message and "path=" in message
