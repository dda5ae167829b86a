"""Every pruner x SToP on/off x ratio {0.1, 0.25} generates on every tiny twin and reports honest accounting."""
from __future__ import annotations

import pytest

from sinktop_eval.backbones.flops import prefill_flops
from sinktop_eval.pruning import build_pruner

TWINS = ("tiny_qwen25vl", "tiny_llava_ov", "tiny_llava_video")
STOP = {"visionzip": (0.03, 0.0), "fastvid": (0.03, 0.0), "holitom": (0.04, 0.07)}  # SToP on; off = (0, 0)
CASES = ([("dense", 1.0, False)]
         + [(name, ratio, False) for name in ("random", "uniform") for ratio in (0.1, 0.25)]
         + [(name, ratio, stop) for name in STOP for ratio in (0.1, 0.25) for stop in (False, True)])
STAT_KEYS = ("dense_visual_tokens", "kept_visual_tokens", "prefill_flops_dense", "prefill_flops", "vision_s",
             "pruning_s", "prefill_s", "decode_s", "peak_mem_gb", "peak_mem_kind", "pruner", "ratio", "mu_s",
             "mu_t", "gamma")


def _pruner(name, ratio, stop):
    mu_s, mu_t = STOP[name] if stop else (0.0, 0.0)
    return build_pruner(name, ratio, mu_s=mu_s, mu_t=mu_t)


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("pruner_name,ratio,stop", CASES,
                         ids=[f"{p}-r{r}-stop{'on' if s else 'off'}" for p, r, s in CASES])
def test_every_pruner_generates_with_exact_counts(name, pruner_name, ratio, stop, twins, encoded, clip):
    backbone = twins[name]
    _, vision = encoded[name]
    expected = _pruner(pruner_name, ratio, stop)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)

    out = backbone.generate(clip, "Is there a red square?", pruner=_pruner(pruner_name, ratio, stop), frames=16,
                            max_new_tokens=4)
    stats = out.stats
    assert isinstance(out.text, str) and 1 <= len(out.token_ids) <= 4 and stats["new_tokens"] == len(out.token_ids)
    assert all(key in stats for key in STAT_KEYS)
    assert stats["dense_visual_tokens"] == vision.num_tokens
    assert stats["kept_visual_tokens"] == len(expected)
    if backbone.family == "llava_video":  # grid newlines: one per frame row that keeps a token
        h, w = vision.grid
        newline, dense_newlines = len(set((expected.index // w).tolist())), vision.features.shape[0] * h
    else:
        newline = dense_newlines = 1 if backbone.family == "llava_ov" else 0
    assert stats["visual_placeholders"] == len(expected) + newline
    assert stats["visual_placeholders_dense"] == vision.num_tokens + dense_newlines
    assert (stats["newline_tokens"], stats["newline_tokens_dense"]) == (newline, dense_newlines)
    assert stats["prompt_tokens_dense"] - stats["prompt_tokens"] == vision.num_tokens + dense_newlines - len(expected) \
        - newline
    assert stats["prefill_flops"] == prefill_flops(backbone.text_config, stats["prompt_tokens"])
    assert stats["prefill_flops_dense"] == prefill_flops(backbone.text_config, stats["prompt_tokens_dense"])
    if pruner_name == "dense":
        assert stats["prefill_flops"] == stats["prefill_flops_dense"]
    else:
        assert stats["prefill_flops"] < stats["prefill_flops_dense"]
    settings = _pruner(pruner_name, ratio, stop).describe()
    assert {k: stats[k if k in STAT_KEYS else f"pruner_{k}"] for k in settings} == settings
    assert stats["pruner_seed"] == 0
    assert all(stats[k] >= 0 for k in ("vision_s", "pruning_s", "prefill_s", "decode_s"))
    assert stats["peak_mem_gb"] > 0 and stats["peak_mem_kind"].startswith(("process_rss_peak", "cuda"))


def test_stop_changes_the_kept_set_somewhere(encoded):
    """On the sink-patch clip SToP must matter for at least one (backbone, pruner); else the test is vacuous."""
    changed = []
    for _, vision in encoded.values():
        for pruner in STOP:
            off = _pruner(pruner, 0.1, False)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
            on = _pruner(pruner, 0.1, True)(vision.features, vision.attn, keys=vision.keys, grid=vision.grid)
            changed.append(len(off) != len(on) or not bool((off.index == on.index).all()))
    assert any(changed)
