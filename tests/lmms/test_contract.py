"""What lmms-eval expects of a model, beyond answering: model_args checked before any weights load,
``pretrained=``, until / sampling honoured, token counts for the usage summary, cost stats in the logged
samples, the resolved combination in the results JSON, and the data-parallel bookkeeping (per-rank records,
padding requests, repeats)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lmms_eval.api.instance import Instance

from sinktop_eval.backbones import Sampling
from sinktop_eval.lmms import SinktopModel, parallel
from sinktop_eval.lmms import model as model_module
from sinktop_eval.lmms.model import SinktopModelError, decoding_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def twin():
    from sinktop_eval.backbones import load_backbone

    return load_backbone("tiny_qwen25vl")


@pytest.fixture
def no_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the model_args were checked")

    monkeypatch.setattr(model_module, "load_backbone", refuse)


# --------------------------------------------------------------------------- model_args, before any load


@pytest.mark.parametrize("kwargs,named", [
    ({"ratio": 2}, "ratio=2 is invalid; allowed: a number in (0, 1]"),
    ({"frames": 0}, "frames=0 is invalid; allowed: an integer >= 1"),
    ({"frames": -1.0}, "frames=-1.0 is invalid"),  # lmms-eval parses "-1" as a float
    ({"frames": "many"}, "frames='many' is invalid"),
    ({"max_new_tokens": 0}, "max_new_tokens=0 is invalid; allowed: an integer >= 1"),
    ({"seed": 1.5}, "seed=1.5 is invalid"),
    ({"dtype": "fp8"}, "dtype='fp8' is unknown"),
    ({"device": "cuda:0"}, "no CUDA device is available"),
    ({"attn_implementation": "magic"}, "attn_implementation='magic' is unknown"),
    ({"feature_cache": "/tmp/x", "feature_cache_gb": 0}, "max_gb=0.0 is invalid"),
    ({"pretrained": "tiny_qwen25vl", "path": "/ckpt/other"}, "pretrained='tiny_qwen25vl' and path='/ckpt/other' disagree"),
    ({"pretrained": "tiny_llava_ov", "backbone": "tiny_qwen25vl"}, "pretrained='tiny_llava_ov' is backbone tiny_llava_ov"),
    ({"pruner_tau": "high"}, "pruner_tau='high' is invalid; allowed: a number (default 0.8)"),
    ({"pruner_tau": 2}, "tau=2 is invalid"),
    ({"pruner_colour": 1}, "unexpected keyword argument 'colour'"),
    ({"stop": "maybe"}, "stop"),
])
def test_every_model_arg_is_checked_before_weights_load(kwargs, named, no_loading):
    if kwargs.get("device", "").startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SinktopModelError) as err:
        SinktopModel(**kwargs)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_pretrained_is_path_by_another_name(tmp_path):
    from sinktop_eval.backbones import tiny_checkpoint

    directory = str(tiny_checkpoint("tiny_qwen25vl", 0))
    by_name = SinktopModel(pretrained="tiny_qwen25vl", pruner="uniform", frames=4)
    assert by_name.describe()["backbone"] == "tiny_qwen25vl" and by_name.describe()["weights"] == "random"
    by_dir = SinktopModel(pretrained=directory, pruner="uniform", frames=4)  # a checkpoint directory on its own
    assert by_dir.backbone.checkpoint == directory and by_dir.describe()["family"] == "qwen25vl"
    as_path = SinktopModel(backbone="tiny_qwen25vl", path=directory, pruner="uniform", frames=4)
    assert as_path.backbone.checkpoint == directory and as_path.describe()["checkpoint"] == directory


# --------------------------------------------------------------------------- decoding settings


def test_decoding_of_a_tasks_generation_kwargs():
    assert decoding_of({}, None, 0) == (128, [], None)
    assert decoding_of({"max_new_tokens": 512, "until": ["\n\n", ""], "do_sample": False, "temperature": 0.7},
                       16, 0) == (16, ["\n\n"], None)  # the cap wins; sampling only when asked for
    limit, until, sampling = decoding_of({"do_sample": True, "temperature": 0.7, "top_p": 0.9, "until": "Q:"}, None, 5)
    assert (limit, until, sampling) == (128, ["Q:"], Sampling(temperature=0.7, top_p=0.9, seed=5))
    assert decoding_of({"do_sample": "true"}, None, 0)[2] == Sampling(1.0, 1.0, 0)
    assert decoding_of({"do_sample": True, "temperature": 0}, None, 0)[2] is None  # temperature 0 is greedy
    with pytest.raises(ValueError, match="num_beams=4 is unsupported"):
        decoding_of({"num_beams": 4}, None, 0)


def fake_requests(video, n=1, gen_kwargs=None, task="t", **metadata):
    doc_to_visual = lambda doc: [doc["video"]]  # noqa: E731
    return [Instance("generate_until", ("Question?", dict(gen_kwargs or {"max_new_tokens": 4}), doc_to_visual, i,
                                        task, "test"), idx=0,
                     metadata={"task": task, "doc_id": i, "repeats": 1, **metadata}) for i in range(n)]


@pytest.fixture
def video(smoke_root):
    return str(next(Path(smoke_root).rglob("*.mp4")))


def with_docs(model, video, n=2, task="t"):
    model.task_dict = {task: {"test": [{"video": video} for _ in range(n)]}}
    return model


def test_until_and_sampling_reach_the_backbone(twin, video, monkeypatch):
    calls = []
    real = type(twin).generate.__get__(twin)
    monkeypatch.setattr(twin, "generate", lambda **kw: calls.append(kw) or real(**kw))
    model = with_docs(SinktopModel(backbone=twin, pruner="uniform", frames=4, seed=7), video)
    model.generate_until(fake_requests(video, gen_kwargs={"max_new_tokens": 6, "until": ["\n\n", "Question:"]}))
    model.generate_until(fake_requests(video, gen_kwargs={"max_new_tokens": 6, "do_sample": True, "temperature": 0.8,
                                                           "top_p": 0.95}))
    assert calls[0]["stop_strings"] == ["\n\n", "Question:"] and calls[0]["sampling"] is None
    assert calls[1]["sampling"].temperature == 0.8 and calls[1]["sampling"].top_p == 0.95
    assert [r["decoding"] for r in model.records] == ["greedy", calls[1]["sampling"].describe()]
    # sampling is seeded by the request, so any rank (or a rerun) draws the same answer
    again = with_docs(SinktopModel(backbone=twin, pruner="uniform", frames=4, seed=7), video)
    again.generate_until(fake_requests(video, gen_kwargs={"max_new_tokens": 6, "do_sample": True, "temperature": 0.8,
                                                           "top_p": 0.95}))
    assert calls[2]["sampling"] == calls[1]["sampling"]
    assert again.records[0]["prediction"] == model.records[1]["prediction"]


def test_answers_carry_token_counts_and_cost_stats(twin, video):
    model = with_docs(SinktopModel(backbone=twin, pruner="uniform", frames=4), video)
    answers = model.generate_until(fake_requests(video, n=2))
    for answer, record in zip(answers, model.records):
        counts = answer.token_counts.to_dict()
        assert counts["input_tokens"] == record["prompt_tokens"] and counts["output_tokens"] == record["new_tokens"] == 4
        assert counts["kept_visual_tokens"] == record["kept_visual_tokens"] < counts["dense_visual_tokens"]
        assert counts["vision_cache"] == "off" and counts["resumed"] is False and counts["prefill_flops"] > 0
        assert answer.text == record["prediction"]


def test_padding_requests_cost_nothing_and_repeats_are_answered_again(twin, video, monkeypatch):
    calls = []
    real = type(twin).generate.__get__(twin)
    monkeypatch.setattr(twin, "generate", lambda **kw: calls.append(kw) or real(**kw))
    model = with_docs(SinktopModel(backbone=twin, pruner="uniform", frames=4), video)
    [padding] = fake_requests(video, __padding_only__=True)
    assert model.generate_until([padding])[0].text == "" and not calls and not model.records
    request = fake_requests(video, gen_kwargs={"max_new_tokens": 4, "do_sample": True, "temperature": 5.0})[0]
    model.generate_until([request, request])  # lmms-eval's `repeats`: the same request twice
    assert len(calls) == 2 and len({r["key"] for r in model.records}) == 2
    assert calls[0]["sampling"].seed != calls[1]["sampling"].seed


# --------------------------------------------------------------------------- data parallel bookkeeping


def test_each_rank_appends_its_own_file_and_resumes_from_all(twin, video, tmp_path, monkeypatch):
    base = tmp_path / "generations.jsonl"
    first = with_docs(SinktopModel(backbone=twin, pruner="uniform", frames=4, records_path=str(base)), video, n=3)
    first.generate_until(fake_requests(video, n=1))  # doc 0, by a single-process run
    assert base.exists()

    monkeypatch.setattr(parallel, "world", lambda environ=None: parallel.World(rank=1, size=2, local_rank=1))
    monkeypatch.setattr(parallel, "accelerator", lambda: "accelerator")
    monkeypatch.setattr(parallel, "all_gather", lambda obj: [obj, []])  # rank 0 reported nothing
    rank1 = with_docs(SinktopModel(backbone=twin, pruner="uniform", frames=4, records_path=str(base)), video, n=3)
    assert rank1.rank == 1 and rank1.world_size == 2 and rank1.accelerator == "accelerator"
    assert rank1.device == twin.device
    assert rank1.records_path == tmp_path / "generations.rank1.jsonl"
    rank1.generate_until(fake_requests(video, n=2))  # doc 0 (done by the earlier run) and doc 1
    assert [r.get("resumed", False) for r in rank1.records] == [True, False]
    assert len(base.read_text().splitlines()) == 1 and len(rank1.records_path.read_text().splitlines()) == 1

    # a rank's half-written last line is dropped from its own file only; others' files are never rewritten
    own = rank1.records_path.read_text()
    rank1.records_path.write_text(own + own[: len(own) // 2])
    base.write_text(base.read_text() + '{"key": "cut sh')
    again = SinktopModel(backbone=twin, pruner="uniform", frames=4, records_path=str(base))
    assert rank1.records_path.read_text() == own and base.read_text().endswith('{"key": "cut sh')
    assert len(again._finished) == 2


def test_records_are_gathered_from_every_rank(twin, video, monkeypatch):
    model = with_docs(SinktopModel(backbone=twin, pruner="uniform", frames=4), video)
    model.generate_until(fake_requests(video, n=1))
    assert model.all_records() == model.records  # one process: its own
    monkeypatch.setattr(parallel, "all_gather", lambda obj: [obj, [{"doc_id": 1}]])
    assert model.all_records() == model.records + [{"doc_id": 1}]


# --------------------------------------------------------------------------- through simple_evaluate


def test_results_record_the_combination_usage_and_sample_costs(twin, task_manager, clean_task_env):
    from lmms_eval.evaluator import simple_evaluate

    model = SinktopModel(backbone=twin, pruner="holitom", stop="on", ratio=0.25, frames=4, max_new_tokens=3)
    results = simple_evaluate(model=model, tasks=["sinktop_mvbench_local"], task_manager=task_manager, limit=2,
                              bootstrap_iters=0, log_samples=True)
    recorded = results["config"]["model"]
    for part in ("backbone=tiny_qwen25vl", "pruner=holitom", "stop=on", "ratio=0.25", "mu_s=0.04", "mu_t=0.07",
                 "gamma=1.1", "pruner_tau=0.8", "frames=4", "max_new_tokens=3", "seed=0", "dtype=float32"):
        assert part in recorded, part
    total = results["usage"]["total"]
    assert total["output_tokens"] == sum(r["new_tokens"] for r in model.records) == 6
    assert total["input_tokens"] == sum(r["prompt_tokens"] for r in model.records) > 0
    assert total["n_api_calls"] == 2
    samples = results["samples"]["sinktop_mvbench_local"]
    costs = [s["token_counts"][0] for s in samples]
    assert [c["kept_visual_tokens"] for c in costs] == [r["kept_visual_tokens"] for r in model.records]
    assert all(c["output_tokens"] == 3 and c["prefill_flops"] < c["prefill_flops_dense"] for c in costs)
    assert json.dumps(results["samples"], default=str)  # the logged samples stay serialisable
