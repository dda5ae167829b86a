"""Qwen2.5-VL text positions after a video: the released rule (max + 1) vs transformers 5.23's (max(h, w) / 2).

The expected ids are written out by hand from the grid, not computed by the code under test.
"""
from __future__ import annotations

import copy
import pathlib
import sys

import pytest
import torch

from sinktop_eval.backbones import load_backbone
from sinktop_eval.backbones.base import Prepared
from sinktop_eval.backbones.qwen25vl import continue_after_vision
from sinktop_eval.pruning import build_pruner

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from references import released_mrope  # noqa: E402

TEXT, VIDEO = 0, 2


@pytest.fixture(scope="module")
def qwen_rules(tiny_cache):
    """The tiny Qwen twin under each rule (same weights)."""
    return {rule: load_backbone("tiny_qwen25vl", device="cpu", rope_text_after_video=rule) for rule in ("official", "hf")}


def _hand_built(backbone, runs, grids, seconds):
    """Prepared inputs for a sequence of ("text", n) / ("video", None) runs; video token counts from the grids."""
    video_id = backbone.video_token_id
    ids, types, grid_iter = [], [], iter(grids)
    for kind, length in runs:
        if kind == "text":
            ids += [65] * length
            types += [TEXT] * length
        else:
            t, h, w = next(grid_iter)
            count = t * (h // 2) * (w // 2)
            ids += [video_id] * count
            types += [VIDEO] * count
    inputs = {"input_ids": torch.tensor([ids]), "mm_token_type_ids": torch.tensor([types]),
              "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
              "video_grid_thw": torch.tensor(grids), "second_per_grid_ts": torch.tensor(seconds)}
    return Prepared(video=None, prompt="", text="", inputs=inputs)


def test_one_video_hand_built_grid(qwen_rules):
    """3 text, a 3x4x6 video grid (3 slices of 2x3 tokens) 2 s per slice, 4 text; tokens_per_second = 2."""
    assert qwen_rules["official"].model.config.vision_config.tokens_per_second == 2
    prepared = _hand_built(qwen_rules["official"], [("text", 3), ("video", None), ("text", 4)], [[3, 4, 6]], [2.0])
    t = [3] * 6 + [7] * 6 + [11] * 6  # interval 2 * 2.0 = 4 ids per slice, from start 3
    h = [3, 3, 3, 4, 4, 4] * 3
    w = [3, 4, 5] * 6
    official = qwen_rules["official"].rope_index(prepared)[:, 0]  # (3, 25)
    assert official[:, :3].tolist() == [[0, 1, 2]] * 3
    assert official[:, 3:21].tolist() == [t, h, w]
    assert official[:, 21:].tolist() == [[12, 13, 14, 15]] * 3  # max (11) + 1
    hf = qwen_rules["hf"].rope_index(prepared)[:, 0]
    assert hf[:, 3:21].tolist() == [t, h, w]  # vision ids agree
    assert hf[:, 21:].tolist() == [[6, 7, 8, 9]] * 3  # 3 + max(4, 6) / 2: inside the video's time range
    # transformers itself, untouched, is what the hf rule returns
    inputs = prepared.inputs
    plain, _ = qwen_rules["hf"].model.model.get_rope_index(
        inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"], attention_mask=inputs["attention_mask"])
    assert torch.equal(hf, plain[:, 0])


def test_two_videos_each_run_continues_from_the_previous_max(qwen_rules):
    runs = [("text", 2), ("video", None), ("text", 1), ("video", None), ("text", 2)]
    prepared = _hand_built(qwen_rules["official"], runs, [[2, 2, 2], [1, 2, 4]], [2.0, 2.0])
    official = qwen_rules["official"].rope_index(prepared)[:, 0].tolist()
    # text 0 1 | video A: t 2, 6; h 2; w 2 | text 7 | video B: t 8; h 8; w 8, 9 | text 10 11
    assert official == [[0, 1, 2, 6, 7, 8, 8, 10, 11],
                        [0, 1, 2, 2, 7, 8, 8, 10, 11],
                        [0, 1, 2, 2, 7, 8, 9, 10, 11]]
    hf = qwen_rules["hf"].rope_index(prepared)[:, 0].tolist()
    assert hf[0] == [0, 1, 2, 6, 3, 4, 4, 6, 7]  # text after A at 2 + 1, overlapping A's time ids


def test_padding_is_left_alone():
    ids = torch.tensor([[[9, 0, 1, 5, 5, 6]]]).expand(3, 1, 6).clone()  # (3, 1, 6); column 0 is padding
    types = torch.tensor([[0, 0, 0, 2, 2, 0]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1]])
    out = continue_after_vision(ids, types, mask)
    assert out[0, 0].tolist() == [9, 0, 1, 5, 5, 6]  # 6 == max 5 + 1 already
    ids[:, 0, 5] = 3  # a text run that starts inside the video's range is moved up to max + 1
    assert continue_after_vision(ids, types, mask)[:, 0, 5].tolist() == [6, 6, 6]


def test_dense_splice_uses_the_released_positions(qwen_rules, long_clip):
    """On a clip whose time ids outrun its spatial extent, dense splice == HF forward with the released ids;
    the hf setting == the unpatched HF forward, and the two differ."""
    official, hf = qwen_rules["official"], qwen_rules["hf"]
    prepared = official.prepare(long_clip, "What moves?", frames=16)
    expected = released_mrope(official, prepared)
    start, end = official.video_span(prepared.inputs["input_ids"])
    assert int(expected[0, 0, end]) - start == 29 and int(hf.rope_index(prepared)[0, 0, end]) - start == 8
    vision = official.encode(prepared)
    dense = build_pruner("dense", 1.0)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
    L = prepared.inputs["input_ids"].shape[1]
    with torch.no_grad():
        got = official.model(**official.splice(prepared, vision, dense)).logits
        reference = official.model(**prepared.inputs, position_ids=torch.cat([torch.arange(L).view(1, 1, L),
                                                                              expected])).logits
        got_hf = hf.model(**hf.splice(prepared, vision, dense)).logits
        unpatched = hf.model(**prepared.inputs).logits
    assert torch.equal(got, reference)
    assert torch.equal(got_hf, unpatched)
    assert not torch.allclose(got[0, end:], got_hf[0, end:])  # the rule changes what the model computes


def test_rope_deltas_continue_the_spliced_positions(qwen_rules, long_clip):
    """A cached decode step without position_ids (placed by rope_deltas) == one with the +1 extension generate uses."""
    backbone = qwen_rules["official"]
    prepared = backbone.prepare(long_clip, "What moves?", frames=16)
    vision = backbone.encode(prepared)
    pruned = build_pruner("uniform", 0.25)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
    spliced = backbone.splice(prepared, vision, pruned)
    positions = spliced["position_ids"]  # (4, 1, L')
    L = positions.shape[-1]
    assert int(backbone.model.model.rope_deltas) == int(positions[1:].max()) + 1 - L
    assert torch.equal(positions[1:, :, -1], positions[1:].amax(dim=-1))  # the last text token holds the max
    model = backbone.model
    with torch.no_grad():
        prefill = model(**spliced, use_cache=True)
        token = prefill.logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
        cache = prefill.past_key_values
        explicit_ids = positions[..., -1:] + 1  # (4, 1, 1): what generate appends
        # no attention mask: with one new token and a cache, transformers then places it at L' + rope_deltas
        with_ids = model(input_ids=token, past_key_values=copy.deepcopy(cache), position_ids=explicit_ids).logits
        from_deltas = model(input_ids=token, past_key_values=copy.deepcopy(cache)).logits
    torch.testing.assert_close(from_deltas, with_ids, atol=1e-6, rtol=1e-6)


def test_invalid_rule_is_one_line(tiny_cache):
    with pytest.raises(ValueError, match=r"rope_text_after_video='qwen2' is invalid; allowed: official, hf"):
        load_backbone("tiny_qwen25vl", device="cpu", rope_text_after_video="qwen2")
    with pytest.raises(ValueError, match=r"backbone setting\(s\) \['rope_rule'\] unknown for qwen25vl"):
        load_backbone("tiny_qwen25vl", device="cpu", rope_rule="hf")


def test_window_attention_last_block_is_refused(qwen_rules, clip, monkeypatch):
    backbone = qwen_rules["official"]
    visual = backbone.model.model.visual
    monkeypatch.setattr(visual, "fullatt_block_indexes", [1])  # pretend the last block (3) were windowed
    prepared = backbone.prepare(clip, "What moves?", frames=4)
    with pytest.raises(ValueError, match=r"last ViT block \(3\) is a window-attention block"):
        backbone.encode(prepared)
