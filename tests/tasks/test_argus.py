"""Argus: the cost maths by hand, the judge-reply parser, the official numbers, and the task over the smoke copy."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd
import pytest

from sinktop_eval.tasks.argus import scoring
from sinktop_eval.tasks.argus import utils as argus

GOLDEN = Path(__file__).parent / "argus_official_cases.json"


def node(type_: str, verdict: str, evidence: str = "", number: int = 1, text: str = "A claim about the video.") -> str:
    return (f"Line {number}: {text}\n    - Type: {type_}\n    - Evidence: {evidence}\n    - Reasoning: r\n"
            f"    - Verdict: {verdict}")


def reply(*blocks: tuple) -> str:
    return "\n\n".join(node(*b, number=k) for k, b in enumerate(blocks, 1))


# --------------------------------------------------------------------------- the cost, on paper

DOOR = "A man opens the front door of the house."
CAR = "He walks to the car and drives away."
SOURCE = f"{DOOR} {CAR}"  # two source lines, S0 = DOOR, S1 = CAR


def test_the_source_splits_into_the_two_lines():
    assert scoring.split_sentences(SOURCE) == [DOOR, CAR]


def test_actions_out_of_order_pay_the_order_penalty_by_hand():
    # N0: entailed action, evidence S1; N1: entailed action, evidence S0 (told in the wrong order);
    # N2: a made-up visual detail quoting nothing ('""'; base cost 1 everywhere, pays no order penalty).
    # dp1 = [c(0,0), c(0,1)] = [1, 0]
    # dp2[0] = min(dp1[0] + c(1,0) + 0, dp1[1] + c(1,0) + 0.1 (N0 sits at S1 > 0)) = min(1, 0.1) = 0.1
    # dp2[1] = min(1 + 1 + 0, 0 + 1 + 0) = 1
    # dp3[j] = min(dp2) + 1 = 1.1;  normaliser = (3 - 2) + 0.1 * 2 * 1 / 2 = 1.1  ->  cost 1.1 / 1.1 = 1
    text = reply(("dynamic-action", "entailment", CAR), ("dynamic-action", "entailment", DOOR),
                 ("visual-description", "underdetermined", '""'))
    cost = scoring.argus_cost(text, SOURCE)
    assert cost.evidence_lines == [1, 0, None]
    assert cost.cost == pytest.approx(1.1) and cost.max_cost == pytest.approx(1.1)
    assert cost.normalized == pytest.approx(1.0)
    assert cost.path == [1, 0, 0] and (cost.targets, cost.sources, cost.entailed_actions) == (3, 2, 2)


def test_actions_in_order_cost_only_the_made_up_line_by_hand():
    # the same nodes told in the source's order: dp1 = [0, 1]; dp2 = [min(0+1, 1+1+0.1), min(0+0, 1+0)] = [1, 0];
    # dp3 = [0 + 1, 0 + 1] -> cost 1 (first argmin, j = 0), normaliser 1.1
    text = reply(("dynamic-action", "entailment", DOOR), ("dynamic-action", "entailment", CAR),
                 ("visual-description", "underdetermined", '""'))
    cost = scoring.argus_cost(text, SOURCE)
    assert cost.cost == pytest.approx(1.0) and cost.normalized == pytest.approx(1 / 1.1)
    assert cost.path == [0, 1, 0]


def test_base_costs_by_type_and_verdict():
    # entailed summary / visual detail: 0 anywhere; contradiction / underdetermined: 1 whatever the type;
    # entailed action: 0 only at its evidence line
    text = reply(("summary", "entailment", ""), ("visual-description", "entailment", ""),
                 ("summary", "contradiction", DOOR), ("dynamic-action", "underdetermined", CAR))
    cost = scoring.argus_cost(text, SOURCE)
    assert cost.cost == 2.0 and cost.max_cost == 4.0 and cost.normalized == 0.5


def test_normaliser_counts_entailed_actions_and_their_pairs():
    nodes = scoring.parse_judgement(reply(*[("dynamic-action", "entailment", DOOR)] * 3,
                                          ("summary", "entailment", ""), ("dynamic-action", "contradiction", "")))
    assert scoring.normaliser(nodes) == pytest.approx((5 - 3) + 0.1 * 3)


def test_a_zero_normaliser_is_a_skip_not_a_division():
    with pytest.raises(scoring.JudgementError, match="normaliser is 0"):
        scoring.argus_cost(reply(("dynamic-action", "entailment", DOOR)), SOURCE)


def test_entailed_actions_without_evidence_can_exceed_one_as_in_the_official_code():
    # two entailed actions whose evidence matches nothing: each costs 1 anywhere, normaliser 0.1 -> 20
    text = (f"{node('dynamic-action', 'entailment', '!!!', 1)}\n\n{node('dynamic-action', 'entailment', '???', 2)}")
    cost = scoring.argus_cost(text, "Only one source sentence here.")
    assert cost.evidence_lines == [None, None] and cost.cost == 2.0 and cost.normalized == pytest.approx(20.0)


def test_boilerplate_lines_become_entailed_summaries_and_too_many_fail_the_clip():
    header = ("summary", "contradiction", "", )
    ok = "\n\n".join([node("visual-description", "underdetermined", "", 1),
                      node(*header, 2, text="**Overall Impression:**"),
                      node("visual-description", "underdetermined", "", 3)])
    cost = scoring.argus_cost(ok, SOURCE)
    assert cost.boilerplate == 1 and cost.cost == 2.0 and cost.max_cost == 3.0  # the header costs 0
    too_many = "\n\n".join([node("visual-description", "underdetermined", "", 1),
                            node(*header, 2, text="In summary:"), node(*header, 3, text="Here's a detailed description of the video:"),
                            node("visual-description", "underdetermined", "", 4)])
    with pytest.raises(scoring.JudgementError, match="2 of 4 target lines are boilerplate"):
        scoring.argus_cost(too_many, SOURCE)


@pytest.mark.parametrize("line, boilerplate", [
    ("Two words", True), ("**Setting:**", True), ("**The Main Event Unfolds:**", True), ("In summary:", True),
    ("Here is a detailed description of the video:", True), ("Overall impression", True),
    ("In summary, the man opens the door and walks to his car.", False), ("A man opens the door.", False),
])
def test_boilerplate_lines(line, boilerplate):
    assert scoring.is_boilerplate(line) is boilerplate


def test_sentence_splitter_rules():
    text = "A man walks in. He sits; she stands up slowly.\n- Bullet item here that is long\n1. Numbered item, long too"
    assert scoring.split_sentences(text) == [
        "A man walks in. He sits;",  # 15 characters: glued to the next line
        "she stands up slowly.", "Bullet item here that is long", "Numbered item, long too"]
    assert scoring.split_sentences("It rains, e.g. on the car. then it stops.") == ["It rains, e.g. on the car. then it stops."]
    assert scoring.split_sentences("  \n ") == []


def test_evidence_line_fuzzy_match():
    lines = [DOOR, CAR, "A dog barks at the postman."]
    assert scoring.evidence_line(CAR, lines) == 1
    assert scoring.evidence_line("opens the front door", lines) == 0
    assert scoring.evidence_line("the dog barked", lines) == 2
    assert scoring.evidence_line("", lines) is None and scoring.evidence_line('""', lines) is None
    assert scoring.evidence_line("%%%", lines) is None  # nothing in common
    # the character-level LCS term alone reaches the 0.3 threshold: one shared letter is "evidence" (as official)
    assert scoring.evidence_score("q z", "quiet") >= scoring.EVIDENCE_THRESHOLD


# --------------------------------------------------------------------------- the judge's reply


def test_parser_reads_the_official_layout():
    text = ("```\nLine 1: The video shows a kitchen.\n\t- Type: summary\n\t- Evidence: A kitchen.\n"
            "\t- Reasoning: Stated.\n\t- Verdict: entailment\n\nLine 2: He whisks eggs.\n\t- Type: dynamic-action\n"
            "\t- Evidence: whisks them\n\t- Reasoning: The source says so,\n\t  in other words.\n"
            "\t- Verdict: entailment\n```")
    nodes = scoring.parse_judgement(text)
    assert [(n.number, n.text, n.type, n.evidence, n.verdict) for n in nodes] == [
        (1, "The video shows a kitchen.", "summary", "A kitchen.", "entailment"),
        (2, "He whisks eggs.", "dynamic-action", "whisks them", "entailment")]
    assert nodes[1].reasoning == "The source says so, in other words."


def test_parser_tolerates_markdown_case_and_order():
    text = ("**Line 2:** A dog barks.\n- **Type:** Dynamic Action\n- **Evidence:** \"barks\"\n- **Reasoning:** ok\n"
            "- **Verdict:** **Contradiction.**\n\nLine 1: **A header:**\n   - Type: `summary`\n   - Verdict: Entailment\n\n"
            "That is all.")
    nodes = scoring.parse_judgement(text)
    assert [(n.number, n.text, n.type, n.verdict) for n in nodes] == [
        (1, "**A header:**", "summary", "entailment"), (2, "A dog barks.", "dynamic-action", "contradiction")]
    assert nodes[1].evidence == '"barks"' and nodes[0].evidence == ""


def test_an_empty_evidence_field_reads_the_next_line_as_the_official_parser_does():
    text = ("Line 1: He drives away.\n    - Type: dynamic-action\n    - Evidence: \n"
            "    - Reasoning: the car is mentioned\n    - Verdict: entailment")
    (only,) = scoring.parse_judgement(text)
    assert only.evidence == "- Reasoning: the car is mentioned" and only.reasoning == "the car is mentioned"
    # so the entailed action finds a (fuzzy) evidence line and costs 0 there, as in the official pipeline
    assert scoring.argus_cost(f"{text}\n\n{node('summary', 'entailment', '', 2)}", SOURCE).cost == 0.0


@pytest.mark.parametrize("text, message", [
    ("The captions agree.", "no 'Line N:' blocks"),
    ("Line 1: A man.\n - Type: summary\n - Evidence: x\n - Reasoning: y", "line 1: no verdict field"),
    ("Line 1: A man.\n - Evidence: x\n - Verdict: entailment", "line 1: no type field"),
    ("Line 1: A man.\n - Type: summary\n - Verdict: plausible", "line 1: verdict 'plausible' is not one of"),
    ("Line 1: A man.\n - Type: object\n - Verdict: entailment", "line 1: type 'object' is not one of"),
])
def test_parser_rejects_what_cannot_be_scored_with_one_line(text, message):
    with pytest.raises(scoring.JudgementError, match=message) as info:
        scoring.parse_judgement(text)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- the official numbers


def golden_cases():
    return json.loads(GOLDEN.read_text())["cases"]


@pytest.mark.parametrize("case", golden_cases(), ids=[f"case{i}" for i in range(len(golden_cases()))])
def test_costs_equal_the_official_codes(case):
    """Expected values computed once by the official parser + DPHallucinationMeasure (see the file's origin)."""
    if "error" in case:
        with pytest.raises(scoring.JudgementError, match=case["error"]):
            scoring.argus_cost(case["reply"], case["source"])
        return
    cost = scoring.argus_cost(case["reply"], case["source"])
    assert (cost.cost, cost.max_cost, cost.normalized, cost.path) == (
        case["cost"], case["max_cost"], case["normalized"], case["path"])


def test_the_golden_cases_cover_penalties_and_skips():
    cases = golden_cases()
    assert sum("error" in c for c in cases) >= 2
    assert any(not float(c.get("cost", 0)).is_integer() for c in cases)  # an order penalty was paid


# --------------------------------------------------------------------------- the task


def build(task_manager, name="sinktop_argus"):
    from lmms_eval.tasks import get_task_dict

    return get_task_dict([name], task_manager)[name]


def smoke_table(smoke_root) -> pd.DataFrame:
    return pd.read_parquet(smoke_root / "Argus" / "data" / "train-00000-of-00001.parquet")


def test_docs_prompt_and_videos_from_the_release_layout(task_manager, smoke_root):
    task = build(task_manager)
    docs = list(task.test_docs())
    table = smoke_table(smoke_root)
    assert [d["clip_name"] for d in docs] == list(table["clip_name"])
    for doc, caption in zip(docs, table["human_caption"]):
        assert task.doc_to_text(doc) == "Describe the video in great detail."
        assert task.doc_to_target(doc) == caption
        assert task.doc_to_visual(doc) == [str(smoke_root / "Argus" / "videos" / f"{doc['clip_name']}.mp4")]
    assert task.config.generation_kwargs["max_new_tokens"] == 4096 and task.config.generation_kwargs["until"] == []
    assert {m["metric"]: m["higher_is_better"] for m in task.config.metric_list} == {
        "hallucination_rate": False, "omission_rate": False, "skipped_clips": False, "judge_failures": False,
        "skipped": False}


def test_argus_dir_variable_and_the_official_clips_folder(task_manager, monkeypatch, tmp_path, smoke_root):
    import shutil

    root = tmp_path / "argus_release"
    shutil.copytree(smoke_root / "Argus" / "data", root / "data")
    shutil.copytree(smoke_root / "Argus" / "videos", root / "clips")  # the download script's rename
    monkeypatch.delenv("SINKTOP_DATA_ROOT")
    monkeypatch.setenv("SINKTOP_ARGUS_DIR", str(root))
    docs = list(build(task_manager).test_docs())
    assert len(docs) == 3 and all(d["video"].startswith(str(root / "clips")) for d in docs)


def test_missing_or_malformed_release_fails_with_one_line(task_manager, monkeypatch, tmp_path, smoke_root):
    monkeypatch.setenv("SINKTOP_DATA_ROOT", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as info:
        build(task_manager)
    message = str(info.value)
    assert "\n" not in message and "SINKTOP_ARGUS_DIR" in message and str(tmp_path / "empty" / "Argus" / "data") in message
    bad = tmp_path / "bad"
    (bad / "data").mkdir(parents=True)
    pd.DataFrame([{"clip_name": "x", "caption": "y"}]).to_parquet(bad / "data" / "train-0.parquet")
    monkeypatch.setenv("SINKTOP_ARGUS_DIR", str(bad))
    monkeypatch.delenv("SINKTOP_DATA_ROOT")
    with pytest.raises(SystemExit, match="lacks clip_name/human_caption") as info:
        build(task_manager)
    assert "\n" not in str(info.value)


def test_without_a_judge_every_metric_is_nan_with_one_warning(task_manager, caplog):
    task = build(task_manager)
    docs = list(task.test_docs())
    with caplog.at_level(logging.WARNING, logger="sinktop_eval.benchmarks.judge"):
        outs = [task.process_results(doc, ["A red square moves."]) for doc in docs]
    for out in outs:
        assert math.isnan(out["hallucination_rate"]["score"]) and math.isnan(out["omission_rate"]["score"])
        assert math.isnan(out["skipped_clips"]) and math.isnan(out["judge_failures"])
    assert math.isnan(argus.mean_scored([o["hallucination_rate"] for o in outs]))
    assert math.isnan(argus.total([o["skipped_clips"] for o in outs]))
    assert len([r for r in caplog.records if "no LLM judge configured" in r.getMessage()]) == 1


def first_sentence(caption: str) -> str:
    return caption.split(". ")[0] + "."


def test_judged_rates_by_hand_with_the_stub_judge(task_manager, stub_judge, use_judge):
    # the stub entails a target sentence found verbatim in the source, else calls it underdetermined (both
    # typed visual-description: cost = made-up sentences, normaliser = sentences).
    stub = stub_judge()
    use_judge(stub.url)
    task = build(task_manager)
    doc = next(iter(task.test_docs()))
    sentences = len(scoring.split_sentences(doc["human_caption"]))
    caption = f"{first_sentence(doc['human_caption'])} A green triangle jumps over it."
    out = task.process_results(doc, [caption])
    assert out["hallucination_rate"]["score"] == pytest.approx(100 * 1 / 2)  # 1 of the 2 caption sentences made up
    assert out["omission_rate"]["score"] == pytest.approx(100 * (sentences - 1) / sentences)  # all but one omitted
    assert out["skipped_clips"] == 0.0 and out["judge_failures"] == 0.0 and stub.count == 2
    hallucination, omission = stub.requests[0]["messages"][-1]["content"], stub.requests[1]["messages"][-1]["content"]
    assert hallucination.endswith(f'SOURCE CAPTION:\n"""\n{doc["human_caption"]}\n"""\n\nTARGET CAPTION:\n"""\n'
                                  f'{caption}\n"""')
    assert omission.endswith(f'SOURCE CAPTION:\n"""\n{caption}\n"""\n\nTARGET CAPTION:\n"""\n{doc["human_caption"]}\n"""')
    assert stub.requests[0]["max_tokens"] == argus.JUDGE_MAX_TOKENS and len(stub.requests[0]["messages"]) == 1
    # three fixed worked examples, the same for both judgements of a clip
    names = out["hallucination_rate"]["examples"]
    assert len(names) == 3 and names == out["omission_rate"]["examples"] == argus.examples_for(doc["clip_name"])
    assert hallucination.count("\nJUDGEMENT:\n") == 3
    # the raw replies are kept per sample
    assert out["hallucination_rate"]["judge_reply"].startswith("Line 1: ")
    assert out["omission_rate"]["judge_reply"].count("\nLine ") == sentences - 1
    # the same caption again: answered from the judge cache, same numbers
    again = task.process_results(doc, [caption])
    assert stub.count == 2 and again["hallucination_rate"]["cached"]
    assert again["omission_rate"]["score"] == out["omission_rate"]["score"]
    perfect = task.process_results(doc, [doc["human_caption"]])
    assert perfect["hallucination_rate"]["score"] == perfect["omission_rate"]["score"] == 0.0


def test_examples_are_a_fixed_draw_per_clip():
    draws = {argus.examples_for(f"clip{i}")[0] for i in range(40)}
    assert len(draws) > 1  # different clips see different examples
    assert argus.examples_for("clipX") == argus.examples_for("clipX") == argus.examples_for("clipX", seed=0)
    assert all(len(set(argus.examples_for(f"c{i}"))) == 3 for i in range(10))


def test_judge_failures_and_unreadable_replies_are_skipped_and_counted(task_manager, stub_judge, use_judge):
    task = build(task_manager)
    doc = next(iter(task.test_docs()))
    failing = stub_judge(always_fail=True)
    use_judge(failing.url, retries=1)
    out = task.process_results(doc, ["A red square moves."])
    assert out["judge_failures"] == 2.0 and out["skipped_clips"] == 1.0
    assert math.isnan(out["hallucination_rate"]["score"]) and "HTTP 500" in out["hallucination_rate"]["error"]

    chatty = stub_judge()
    chatty.reply_for = lambda body: "Both captions describe a moving shape, so they agree."
    use_judge(chatty.url)
    out = task.process_results(doc, ["A blue square moves."])
    # an unreadable reply is a failed judgement: counted, never cached, so a rescore asks again
    assert out["judge_failures"] == 2.0 and out["skipped_clips"] == 1.0
    assert out["omission_rate"]["error"].startswith("unusable judge reply: 'Both captions")
    before = chatty.count
    task.process_results(doc, ["A blue square moves."])
    assert chatty.count == before + 2


def test_an_empty_caption_is_skipped_without_asking_the_judge(task_manager, stub_judge, use_judge):
    stub = stub_judge()
    use_judge(stub.url)
    task = build(task_manager)
    out = task.process_results(next(iter(task.test_docs())), ["   "])
    assert stub.count == 0 and out["skipped_clips"] == 1.0 and out["judge_failures"] == 0.0
    assert out["hallucination_rate"]["error"] == "empty caption"


def test_rates_average_the_scored_clips_only():
    items = [{"score": 50.0}, {"score": float("nan")}, {"score": 0.0}]
    assert argus.mean_scored(items) == 25.0 and argus.total([0.0, 1.0, 0.0]) == 1.0
