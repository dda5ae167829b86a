"""Decoding controls of `Backbone.generate`: stop strings end generation early with the same cut text, and
sampling is honoured, seeded per request, and leaves greedy (the default) untouched."""
from __future__ import annotations

import pytest
import torch

from sinktop_eval.backbones import Sampling
from sinktop_eval.pruning import build_pruner

from .conftest import TWINS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "Describe the video."


def ask(backbone, clip, **kwargs):
    return backbone.generate(clip, PROMPT, pruner=build_pruner("uniform", 0.25), frames=4, **kwargs)


@pytest.mark.parametrize("name", TWINS)
def test_a_stop_string_ends_generation_where_cutting_afterwards_would(name, twins, clip):
    backbone = twins[name]
    full = ask(backbone, clip, max_new_tokens=24)
    assert full.stats["new_tokens"] == 24  # random weights rarely emit EOS: the whole budget is used
    decoded = [backbone.processor.tokenizer.decode(full.token_ids[:i], skip_special_tokens=True) for i in range(25)]
    first_seen = lambda text: next(i for i in range(25) if text in decoded[i])  # noqa: E731
    # a stop string from the answer's own text (whole characters) that first shows up after a few tokens
    stop = next(tail for i in range(4, 24) for tail in (decoded[i][-2:], decoded[i][-1:])
                if tail and "\ufffd" not in tail and 4 <= first_seen(tail) < 24)
    stopped = ask(backbone, clip, max_new_tokens=24, stop_strings=["never appears \u2603", stop])
    assert stopped.token_ids == full.token_ids[:first_seen(stop)]  # right after the token completing it
    assert stopped.stats["new_tokens"] == first_seen(stop) < 24
    cut = full.text[:full.text.find(stop)]
    assert stopped.text[:stopped.text.find(stop)] == cut


@pytest.mark.parametrize("name", TWINS)
def test_sampling_is_honoured_seeded_and_greedy_stays_the_default(name, twins, clip):
    backbone = twins[name]
    greedy = ask(backbone, clip, max_new_tokens=12)
    assert greedy.stats["decoding"] == "greedy"
    state = torch.random.get_rng_state()
    hot = [ask(backbone, clip, max_new_tokens=12, sampling=Sampling(temperature=2.0, top_p=1.0, seed=s))
           for s in (1, 1, 2)]
    assert torch.equal(torch.random.get_rng_state(), state)  # the process's RNG is left as it was
    assert hot[0].token_ids == hot[1].token_ids  # same seed, same sample
    assert hot[0].token_ids != hot[2].token_ids and hot[0].token_ids != greedy.token_ids
    assert hot[0].stats["decoding"] == "sample(temperature=2, top_p=1, seed=1)"
    # a vanishing nucleus keeps only the most likely token: sampling that must equal greedy
    narrow = ask(backbone, clip, max_new_tokens=12, sampling=Sampling(temperature=1.0, top_p=1e-6, seed=3))
    assert narrow.token_ids == greedy.token_ids


def test_bad_sampling_settings_are_one_line():
    with pytest.raises(ValueError, match=r"temperature=0 is invalid for sampling"):
        Sampling(temperature=0)
    with pytest.raises(ValueError, match=r"top_p=1.5 is invalid; allowed: a number in \(0, 1\]"):
        Sampling(top_p=1.5)
