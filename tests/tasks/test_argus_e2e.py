"""Argus end to end through lmms-eval's real `simple_evaluate` over the smoke copy, with the stub judge on 127.0.0.1:
rates worked out by hand from the stub's rule (a target sentence found verbatim in the source is entailed)."""
import math

import pytest
from lmms_eval.api.model import lmms

pytestmark = pytest.mark.slow


class CaptionModel(lmms):
    """Clip 0: the human caption itself; clip 1: its first sentence plus an invented one; clip 2: nothing."""

    is_simple = True

    def generate_until(self, requests):
        out = []
        for request in requests:
            _context, _gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            assert doc_to_visual(doc)[0].endswith(f"videos/{doc['clip_name']}.mp4")
            caption = doc["human_caption"]
            out.append([caption, caption.split(". ")[0] + ". A green triangle jumps over it.", ""][doc_id])
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


def test_argus_rates_skips_and_judge_replies_end_to_end(task_manager, stub_judge, use_judge, smoke_root):
    import pandas as pd
    from lmms_eval.evaluator import simple_evaluate

    from sinktop_eval.results import results_rows

    stub = stub_judge()
    use_judge(stub.url)
    results = simple_evaluate(model=CaptionModel(), tasks=["sinktop_argus"], task_manager=task_manager,
                              log_samples=True, bootstrap_iters=0, random_seed=0, numpy_random_seed=0,
                              torch_random_seed=0, fewshot_random_seed=0)
    metrics = {k.split(",")[0]: v for k, v in results["results"]["sinktop_argus"].items() if k.endswith(",none")}
    human = pd.read_parquet(smoke_root / "Argus" / "data" / "train-00000-of-00001.parquet")["human_caption"]
    sentences = len(human[1].split(". "))  # the stub's sentences of clip 1's human caption
    # clip 0: nothing made up, nothing left out; clip 1: 1 of 2 sentences made up, all but 1 human sentence
    # left out; clip 2: empty caption, in neither rate
    assert metrics["hallucination_rate"] == pytest.approx((0 + 50) / 2)
    assert metrics["omission_rate"] == pytest.approx((0 + 100 * (sentences - 1) / sentences) / 2)
    assert metrics["skipped_clips"] == 1 and metrics["judge_failures"] == 0
    # two judgements per captioned clip; clip 0's are the same prompt (caption = human caption): one from the cache
    assert stub.count == 3
    samples = sorted(results["samples"]["sinktop_argus"], key=lambda s: s["doc_id"])
    assert [s["hallucination_rate"]["error"] for s in samples] == [None, None, "empty caption"]
    assert all(s["omission_rate"]["judge_reply"].startswith("Line 1: ") for s in samples[:2])
    rows = results_rows({"run_id": "t"}, results, [])
    rows = rows[~rows["metric"].str.contains("_stderr")].set_index("metric")["value"]
    assert rows["hallucination_rate"] == metrics["hallucination_rate"] and not math.isnan(rows["omission_rate"])
