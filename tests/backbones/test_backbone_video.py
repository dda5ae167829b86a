"""Video decoding: uniform frames, time windows, real timing for Qwen's temporal positions, clear errors."""
from __future__ import annotations

import pytest
import torch

from sinktop_eval.backbones import VideoDecodeError, VideoNotFoundError
from sinktop_eval.backbones.video import decode_video, sample_indices


def test_uniform_frames_over_the_whole_clip(clip):
    video = decode_video(clip, 16)
    assert video.frames.shape == (16, 112, 112, 3) and video.frames.dtype.name == "uint8"
    assert video.fps == pytest.approx(8.0) and video.total_frames == 32
    assert video.indices[0] == 0 and video.indices[-1] == 31 and len(set(video.indices)) == 16
    assert video.sampled_fps == pytest.approx(4.0)
    meta = video.processor_metadata()
    assert meta["total_num_frames"] == 32 and meta["fps"] == pytest.approx(8.0) and len(meta["frames_indices"]) == 16


def test_time_window_is_honoured(clip):
    video = decode_video(clip, 8, start=1.0, end=2.5)  # frames 8..20 at 8 fps
    assert video.window == (8, 20)
    assert all(1.0 <= i / video.fps <= 2.5 for i in video.indices)
    assert video.indices[0] == 8 and video.indices[-1] == 20
    assert video.processor_metadata()["frames_indices"][0] == 0  # relative to the window start
    assert video.sampled_fps == pytest.approx(8 / 13 * 8.0)
    short = decode_video(clip, 32, start=0.0, end=1.0)  # 9 frames in the window: each once, no duplicates
    assert short.indices == tuple(range(9))


def test_sample_indices_spread():
    assert sample_indices(0, 9, 4) == [0, 3, 6, 9]
    assert sample_indices(5, 7, 10) == [5, 6, 7]


def test_missing_video_names_the_file(twins, tmp_path):
    missing = tmp_path / "nope.mp4"
    for backbone in twins.values():
        with pytest.raises(FileNotFoundError, match=r"video not found: .*nope\.mp4") as err:
            backbone.generate(missing, "Is there a dog?", frames=8, max_new_tokens=2)
        assert isinstance(err.value, VideoNotFoundError)


def test_corrupt_video_names_the_file(twins, corrupt_video):
    for backbone in twins.values():
        with pytest.raises(ValueError, match=r"cannot decode video .*corrupt\.mp4") as err:
            backbone.generate(corrupt_video, "Is there a dog?", frames=8, max_new_tokens=2)
        assert isinstance(err.value, VideoDecodeError)
        assert "\n" not in str(err.value)


def test_bad_windows(clip):
    with pytest.raises(VideoDecodeError, match=r"contains no frame"):
        decode_video(clip, 8, start=10.0, end=12.0)
    with pytest.raises(VideoDecodeError, match=r"bad time window"):
        decode_video(clip, 8, start=2.0, end=1.0)
    with pytest.raises(ValueError, match=r"frames=0 is invalid"):
        decode_video(clip, 0)


def test_generate_with_window_reports_it(twins, clip):
    out = twins["tiny_llava_ov"].generate(clip, "What moves?", frames=6, max_new_tokens=2, start=1.0, end=2.5)
    assert out.stats["frames_sampled"] == 6 and out.stats["temporal_slices"] == 6
    assert out.stats["window_s"] == [1.0, 2.5]


def test_qwen_temporal_positions_use_real_fps(twins, clip):
    """second_per_grid_ts comes from the sampled fps, so the temporal ids spread over the clip's real time."""
    backbone = twins["tiny_qwen25vl"]
    prepared = backbone.prepare(clip, "What moves?", frames=10)  # 10 frames over 4 s: 2.5 fps, 5 slices
    sampled_fps = prepared.video.sampled_fps
    assert sampled_fps == pytest.approx(2.5)
    assert prepared.inputs["second_per_grid_ts"].tolist() == pytest.approx([2 / sampled_fps])
    t, h, w = prepared.inputs["video_grid_thw"][0].tolist()
    mrope = backbone.rope_index(prepared)[0, 0]  # temporal row
    start, end = backbone.video_span(prepared.inputs["input_ids"])
    temporal = mrope[start:end].view(t, h * w // 4)
    per_slice = backbone.model.config.vision_config.tokens_per_second * 2 / sampled_fps  # 1.6 ids per slice
    expected = (torch.arange(t) * per_slice).long() + start  # 0, 1, 3, 4, 6 after the text before the video
    assert torch.equal(temporal[:, 0], expected) and bool((temporal == temporal[:, :1]).all())
    assert temporal[-1, 0] - start == 6  # the 24 fps default would collapse these to {0}
