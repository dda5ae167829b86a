"""The vision feature cache: identical answers from cached features, keys that change with what changes the
encoder's output, corrupt entries recomputed, a size bound with LRU eviction, concurrent writers."""
from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
import torch

from sinktop_eval.backbones.feature_cache import MAGIC, SUFFIX, FeatureCache
from sinktop_eval.pruning import build_pruner

from .conftest import FRAMES, TWINS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "Is there a red square?"
ASK_FRAMES = 4  # few frames keep every generation here to a fraction of a second


class EncodeSpy:
    def __init__(self, backbone):
        self.real, self.calls = type(backbone).encode.__get__(backbone), 0

    def __call__(self, prepared):
        self.calls += 1
        return self.real(prepared)


def ask(backbone, clip, cache, prompt=PROMPT, frames=ASK_FRAMES, **kwargs):
    return backbone.generate(clip, prompt, pruner=build_pruner("holitom", 0.25, mu_s=0.04, mu_t=0.07), frames=frames,
                             max_new_tokens=4, feature_cache=cache, **kwargs)


def only_entry(cache):
    entries = cache.entries()
    assert len(entries) == 1, entries
    return entries[0][0]


@pytest.mark.parametrize("name", TWINS)
def test_cached_features_give_the_uncached_answer_with_one_encoder_pass(name, twins, clip, tmp_path, monkeypatch):
    backbone = twins[name]
    plain = ask(backbone, clip, None)
    spy = EncodeSpy(backbone)
    monkeypatch.setattr(backbone, "encode", spy)
    cache = FeatureCache(tmp_path / "fc")
    first = ask(backbone, clip, cache)
    second = ask(backbone, clip, cache)
    other_question = ask(backbone, clip, cache, prompt="What colour is the circle?")
    assert spy.calls == 1  # one encoder pass for three questions about one video
    assert [plain.stats["vision_cache"], first.stats["vision_cache"], second.stats["vision_cache"],
            other_question.stats["vision_cache"]] == ["off", "miss", "hit", "hit"]
    assert plain.token_ids == first.token_ids == second.token_ids and plain.text == second.text
    assert other_question.token_ids == ask(backbone, clip, None, prompt="What colour is the circle?").token_ids
    for key in ("kept_visual_tokens", "dense_visual_tokens", "prompt_tokens", "prefill_flops"):
        assert plain.stats[key] == second.stats[key], key
    assert cache.counts.hits == 2 and cache.counts.misses == 1


def test_stored_tensors_are_bitwise_the_encoders(twins, encoded, tmp_path):
    backbone = twins["tiny_llava_ov"]
    prepared, vision = encoded["tiny_llava_ov"]
    cache = FeatureCache(tmp_path / "fc")
    cache.fetch(backbone, prepared)
    loaded, state = cache.fetch(backbone, prepared)
    assert state == "hit"
    for field in ("features", "attn", "keys"):
        assert torch.equal(getattr(loaded, field), getattr(vision, field)), field
    assert loaded.grid == vision.grid and torch.equal(loaded.extra["newline"], vision.extra["newline"])
    # only the entry's own elements are stored (features are a view of the pooled output incl. the newline)
    assert only_entry(cache).stat().st_size < 1.5 * (vision.features.numel() + vision.extra["newline"].numel()) * 4 + \
        (vision.attn.numel() + vision.keys.numel()) * 4 + 100_000


def test_key_changes_with_frames_window_file_and_processor_settings(twins, clip, tmp_path, monkeypatch):
    backbone = twins["tiny_qwen25vl"]
    cache = FeatureCache(tmp_path / "fc")
    key = lambda **kw: cache.path_for(cache.key(backbone, backbone.prepare(kw.pop("video", clip), PROMPT, **kw)))  # noqa: E731
    base = key(frames=FRAMES)
    assert key(frames=FRAMES) == base  # the prompt and a re-decode do not matter
    assert key(frames=8) != base
    assert key(frames=FRAMES, start=0.5, end=3.0) != base
    copy = tmp_path / "copy.mp4"
    shutil.copy2(clip, copy)
    assert key(video=copy, frames=FRAMES) != base  # another file (path)
    before = key(video=copy, frames=FRAMES)
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 10**9))  # the same path, rewritten
    assert key(video=copy, frames=FRAMES) != before
    processor = backbone.processor.video_processor
    monkeypatch.setattr(processor, "image_mean", [0.5, 0.5, 0.5])  # normalisation changes the pixels
    assert key(frames=FRAMES) != base
    identity = cache.key(backbone, backbone.prepare(clip, PROMPT, frames=FRAMES))["backbone"]
    assert identity["checkpoint"] == backbone.checkpoint and identity["dtype"] == "torch.float32"
    assert identity["weights"]["files"] and identity["device"] == "cpu"


def corrupt_truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt_flipped(path):
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def corrupt_foreign(path):
    path.write_bytes(b"not a cache entry at all")


@pytest.mark.parametrize("damage", [corrupt_truncated, corrupt_flipped, corrupt_foreign])
def test_a_damaged_entry_is_recomputed_never_trusted(damage, twins, clip, tmp_path, monkeypatch):
    backbone = twins["tiny_qwen25vl"]
    cache = FeatureCache(tmp_path / "fc")
    expected = ask(backbone, clip, cache).token_ids
    damage(only_entry(cache))
    spy = EncodeSpy(backbone)
    monkeypatch.setattr(backbone, "encode", spy)
    again = ask(backbone, clip, cache)
    assert again.stats["vision_cache"] == "miss" and spy.calls == 1 and cache.counts.corrupt == 1
    assert again.token_ids == expected
    assert only_entry(cache).read_bytes().startswith(MAGIC)  # rewritten whole
    assert ask(backbone, clip, cache).stats["vision_cache"] == "hit"


def test_an_entry_under_the_wrong_name_is_not_used(twins, clip, wide_clip, tmp_path):
    backbone = twins["tiny_qwen25vl"]
    cache = FeatureCache(tmp_path / "fc")
    ask(backbone, clip, cache)
    ask(backbone, wide_clip, cache)
    first, second = sorted(cache.entries(), key=lambda e: e[2])
    shutil.copyfile(first[0], second[0])  # the wide clip's name now holds the other clip's features
    out = ask(backbone, wide_clip, cache)
    assert out.stats["vision_cache"] == "miss" and cache.counts.corrupt == 1


def test_size_bound_evicts_least_recently_used(twins, clip, tmp_path):
    backbone = twins["tiny_qwen25vl"]
    windows = {"A": (None, None), "B": (0.5, None), "C": (None, 3.0)}  # three entries of one size
    probe = FeatureCache(tmp_path / "probe")
    ask(backbone, clip, probe)
    entry_bytes = only_entry(probe).stat().st_size
    cache = FeatureCache(tmp_path / "fc", max_gb=2.5 * entry_bytes / 1024**3)  # room for two entries
    use = lambda name: ask(backbone, clip, cache, start=windows[name][0], end=windows[name][1]).stats["vision_cache"]  # noqa: E731
    assert [use("A"), use("B")] == ["miss", "miss"]
    time.sleep(0.02)
    assert use("A") == "hit"  # A used again: B is now the least recently used
    time.sleep(0.02)
    assert use("C") == "miss"  # over the bound
    assert cache.counts.evicted == 1 and cache.size_bytes() <= cache.max_bytes
    assert [use("A"), use("B")] == ["hit", "miss"]  # B was evicted, A kept


def test_concurrent_writers_leave_only_complete_entries(twins, encoded, clip, tmp_path):
    backbone = twins["tiny_llava_ov"]
    prepared = backbone.prepare(clip, PROMPT, frames=FRAMES)
    reference = encoded["tiny_llava_ov"][1].features
    results, errors = [], []

    def worker():
        try:  # a cache object each, as separate processes would have
            for _ in range(3):
                vision, state = FeatureCache(tmp_path / "fc").fetch(backbone, prepared)
                results.append((state, torch.equal(vision.features, reference)))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 12 and all(same for _, same in results)
    assert {state for state, _ in results} <= {"hit", "miss"}
    files = [p for p in (tmp_path / "fc").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == SUFFIX  # no temporary files left behind


def test_an_unwritable_cache_costs_the_speed_up_not_the_answer(twins, clip, tmp_path):
    backbone = twins["tiny_qwen25vl"]
    blocker = tmp_path / "fc"
    blocker.write_text("a file where the cache folder should be")
    cache = FeatureCache(blocker)
    out = ask(backbone, clip, cache)
    assert out.stats["vision_cache"] == "miss" and cache.counts.write_errors == 1
    assert out.token_ids == ask(backbone, clip, None).token_ids


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    cache = FeatureCache(tmp_path / "fc")
    stale = tmp_path / "fc" / "ab" / ".abcd.feat.xyz.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    fresh = stale.with_name(".efgh.feat.xyz.tmp")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert cache.entries() == []
    assert not stale.exists() and fresh.exists()


def test_a_bad_size_bound_is_one_line():
    with pytest.raises(ValueError, match=r"max_gb=0 is invalid; allowed: a number of GB > 0"):
        FeatureCache("x", max_gb=0)
