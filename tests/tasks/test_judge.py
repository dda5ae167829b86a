"""The judge client (sinktop_eval.benchmarks.judge, OpenAI SDK) and the VCG transport
(sinktop_eval.benchmarks.vcg) against stub servers on 127.0.0.1."""
import json
import logging
import sys

import pytest

from sinktop_eval.benchmarks import judge, vcg
from sinktop_eval.benchmarks.judge import JudgeClient, JudgeConfig, parse_score, parse_verdict


def config(url, tmp_path, **kw):
    return JudgeConfig(url=url, key="k", model=kw.pop("model", "stub-judge"), cache_dir=tmp_path / "judge", **kw)


PROMPT = "Is the event consistent? Start with yes or no."


def test_reply_and_cache_hit_makes_no_second_request(stub_judge, tmp_path):
    stub = stub_judge()
    client = JudgeClient(config(stub.url, tmp_path))
    first = client.ask(PROMPT, parse=parse_verdict)
    assert first.ok and first.value is True and first.text.startswith("Yes") and not first.cached
    assert stub.count == 1 and stub.paths == ["/v1/chat/completions"]
    second = client.ask(PROMPT, parse=parse_verdict)
    assert second.ok and second.cached and second.value is True and stub.count == 1  # served from disk
    # a fresh client (another process, a rescore) reads the same cache
    assert JudgeClient(config(stub.url, tmp_path)).ask(PROMPT, parse=parse_verdict).cached and stub.count == 1
    # another model, prompt or max_tokens is another entry
    JudgeClient(config(stub.url, tmp_path, model="other")).ask(PROMPT)
    client.ask(PROMPT + " ")
    client.ask(PROMPT, max_tokens=7)
    assert stub.count == 4


def test_the_cache_key_includes_the_judge_url(stub_judge, tmp_path):
    """issue 11.2: the same model name at another endpoint is another judge."""
    one, other = stub_judge(), stub_judge()
    JudgeClient(config(one.url, tmp_path)).ask(PROMPT)
    reply = JudgeClient(config(other.url, tmp_path)).ask(PROMPT)
    assert not reply.cached and (one.count, other.count) == (1, 1)
    # ".../v1" and ".../v1/chat/completions" name the same endpoint
    assert JudgeClient(config(one.url + "/chat/completions", tmp_path)).ask(PROMPT).cached


def test_an_unusable_http_200_reply_is_a_failure_and_is_not_cached(stub_judge, tmp_path):
    """issue 11.2: a reply the parser rejects is not cached, so a rescore with a healthy judge repairs it."""
    answers = iter(["I cannot say yes or no.", "Yes, it matches."])
    stub = stub_judge(reply=lambda body: next(answers))
    client = JudgeClient(config(stub.url, tmp_path))
    bad = client.ask(PROMPT, parse=parse_verdict)
    assert not bad.ok and bad.value is None and "unusable judge reply" in bad.error and bad.text.startswith("I cannot")
    assert client.stats.failures == 1
    good = client.ask(PROMPT, parse=parse_verdict)  # asked again, not served from the cache
    assert good.ok and good.value is True and not good.cached and stub.count == 2
    assert client.ask(PROMPT, parse=parse_verdict).cached and stub.count == 2
    entry = json.loads(next((tmp_path / "judge").rglob("*.json")).read_text())
    assert entry["text"] == "Yes, it matches." and entry["value"] is True and entry["url"] == stub.url


def test_chat_models_get_temperature_and_max_tokens(stub_judge, tmp_path):
    stub = stub_judge()
    JudgeClient(config(stub.url, tmp_path, model="gpt-4o-2024-11-20")).ask(PROMPT, system="Be brief.", max_tokens=64)
    body = stub.requests[0]
    assert body["model"] == "gpt-4o-2024-11-20" and body["temperature"] == 0.0 and body["max_tokens"] == 64
    assert "max_completion_tokens" not in body
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "o1-mini", "o3", "o4-mini", "openai/gpt-5-nano"])
def test_reasoning_models_get_max_completion_tokens_and_no_temperature(stub_judge, tmp_path, model):
    """issue 15.4: they reject max_tokens and temperature=0 with HTTP 400."""
    stub = stub_judge()
    client = JudgeClient(config(stub.url, tmp_path, model=model, reasoning_tokens=1000))
    assert client.ask(PROMPT, max_tokens=64).ok
    body = stub.requests[0]
    assert body["max_completion_tokens"] == 64 + 1000
    assert "temperature" not in body and "max_tokens" not in body


def test_the_request_family_can_be_forced_and_is_part_of_the_cache_key(stub_judge, tmp_path):
    stub = stub_judge()
    JudgeClient(config(stub.url, tmp_path, model="my-local-r1", reasoning=True)).ask(PROMPT)
    JudgeClient(config(stub.url, tmp_path, model="my-local-r1")).ask(PROMPT)
    assert "max_completion_tokens" in stub.requests[0] and "temperature" in stub.requests[1]
    assert stub.count == 2


def test_retries_then_success(stub_judge, tmp_path):
    stub = stub_judge(fail_first=2)
    client = JudgeClient(config(stub.url, tmp_path, retries=3))
    reply = client.ask("score this", parse=parse_score)
    assert reply.ok and reply.value == 4.0 and stub.count == 3 and client.stats.failures == 0


def test_permanent_failure_is_reported_not_raised_and_not_cached(stub_judge, tmp_path):
    stub = stub_judge(always_fail=True)
    client = JudgeClient(config(stub.url, tmp_path, retries=2))
    reply = client.ask("score this")
    assert not reply.ok and reply.text is None and "HTTP 500" in reply.error
    assert stub.count == 3 and client.stats.failures == 1
    client.ask("score this")
    assert stub.count == 6  # the failure was not cached


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(stub_judge, tmp_path, status):
    """issue 11.3: a bad key (or request, or model) is not retried."""
    stub = stub_judge(always_fail=True, status=status)
    reply = JudgeClient(config(stub.url, tmp_path, retries=4)).ask("anything")
    assert not reply.ok and f"HTTP {status}" in reply.error and stub.count == 1


def test_rate_limits_are_retried(stub_judge, tmp_path):
    stub = stub_judge(fail_first=1, status=429)
    assert JudgeClient(config(stub.url, tmp_path, retries=2)).ask("anything").ok and stub.count == 2


def test_unreachable_endpoint_fails_cleanly(closed_port_url, tmp_path):
    reply = JudgeClient(config(closed_port_url, tmp_path, retries=0)).ask("anything")
    assert not reply.ok and "cannot reach" in reply.error


def test_the_configured_timeout_bounds_a_hanging_judge(stub_judge, tmp_path):
    """issue 11.3: SINKTOP_JUDGE_TIMEOUT is honoured (lmms-eval's loop waited 60 s per attempt)."""
    stub = stub_judge(delay=1.0)
    reply = JudgeClient(config(stub.url, tmp_path, retries=0, timeout_s=0.2)).ask("anything")
    assert not reply.ok and "cannot reach" in reply.error and "timed out" in reply.error.lower()


@pytest.mark.parametrize("text, score", [
    ("{'score': 4}", 4.0), ('{"score": 3}', 3.0), ("{'score': 4.8}", 4.8), ("Score: 2", 2.0), ("5", 5.0),
    ("{''score': 4}", 4.0), ("The answer deserves {'score': 1} because", 1.0),
    ("{'score': 9}", None), ("no score here", None), ("", None), (None, None),
    ("{'score': __import__('os').system('x')}", None),
])
def test_parse_score_without_eval(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize("text, verdict", [
    ("Yes, the description matches.", True), ("yes", True), ("**No**. It misses the event.", False),
    ("No, the tyre never falls off.", False), ("  **Yes** - consistent", True), ("yes—definitely", True),
    ("I cannot say yes or no", None),  # issue 11.9: a yes/no somewhere is no verdict
    ("The description is accurate: yes.", None), ("Maybe.", None), ("", None), (None, None),
])
def test_parse_verdict_is_the_official_starts_with_rule(text, verdict):
    assert parse_verdict(text) is verdict


def test_config_from_environment_and_url_normalisation(monkeypatch, tmp_path):
    monkeypatch.setenv("SINKTOP_JUDGE_URL", "https://example.invalid/v1/chat/completions/")
    monkeypatch.setenv("SINKTOP_JUDGE_MODEL", "gpt-x")
    monkeypatch.setenv("SINKTOP_JUDGE_RETRIES", "1")
    monkeypatch.setenv("SINKTOP_JUDGE_TIMEOUT", "7.5")
    monkeypatch.setenv("SINKTOP_CACHE", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-url")
    cfg = judge.active_config()
    assert cfg.configured and cfg.base_url == "https://example.invalid/v1"
    assert cfg.endpoint == "https://example.invalid/v1/chat/completions"
    assert (cfg.retries, cfg.timeout_s) == (1, 7.5) and cfg.cache_path == tmp_path / "judge"
    assert cfg.key is None  # OPENAI_API_KEY is never sent to our judge
    assert JudgeClient(cfg)._sdk.api_key == "none"
    # a programmatic config wins over the environment
    judge.configure(JudgeConfig(url="http://127.0.0.1:1/v1", model="m2"))
    assert judge.active_config().model == "m2"
    judge.configure(None)
    assert judge.active_config().model == "gpt-x"
    monkeypatch.setenv("SINKTOP_JUDGE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SINKTOP_JUDGE_TIMEOUT"):
        judge.active_config()
    monkeypatch.delenv("SINKTOP_JUDGE_TIMEOUT")
    monkeypatch.delenv("SINKTOP_JUDGE_URL")
    assert not judge.active_config().configured


def test_no_judge_warning_is_logged_once_per_run(caplog):
    with caplog.at_level(logging.WARNING, logger="sinktop_eval.benchmarks.judge"):
        assert judge.warn_no_judge() is True
        assert judge.warn_no_judge() is False
        judge.new_run()
        assert judge.warn_no_judge() is True
    assert len([r for r in caplog.records if "no LLM judge configured" in r.message]) == 2


# --------------------------------------------------------------------------- VideoChatGPT: lmms-eval's prompts, our transport


def test_vcg_judge_messages_are_what_lmms_eval_itself_sends(monkeypatch, stub_judge, tmp_path):
    """The prompts are lmms-eval's: its own get_eval_generic, posting to a stub, sends exactly our messages."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    module = vcg.lmms_vcg()
    stub = stub_judge()
    monkeypatch.setattr(module, "API_URL", stub.url + "/chat/completions")  # the test points lmms-eval at the stub
    for dimension in ("correctness", "detailed_orientation", "context", "temporal"):
        module.get_eval_generic("Q?", "A.", "P.", dimension, 64, retries=1)
        assert stub.requests[-1]["messages"] == vcg.generic_messages("Q?", "A.", "P.", dimension)
    module.get_eval_consistency("Q1?", "Q2?", "A.", "P1.", "P2.", 64, retries=1)
    assert stub.requests[-1]["messages"] == vcg.consistency_messages("Q1?", "Q2?", "A.", "P1.", "P2.")
    assert "temporal sequence" in vcg.generic_messages("Q?", "A.", "P.", "temporal")[0]["content"]


def test_building_vcg_messages_changes_nothing_in_lmms_eval(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    module = vcg.lmms_vcg()
    before = {name: getattr(module, name) for name in ("requests", "API_URL", "headers", "get_eval_generic")}
    vcg.generic_messages("Q?", "A.", "P.", "correctness")
    assert {name: getattr(module, name) for name in before} == before
    assert module.requests is sys.modules["requests"]


@pytest.mark.parametrize("reply, score", [
    ("{'score': 4}", 4.0), ("{'score': 0}", 0.0), ("{'score': 4.8}", 4.0),  # lmms-eval's int()
    ("{''score': 3}", None),                     # the prompt's own (broken) example form: lmms-eval scores it 0
    ("Score: 3", None), ("```python\n{'score': 2}\n```", None),           # lmms-eval cannot read these (it scores 0)
    ("no score", None), ("{'score': 7}", None),
])
def test_vcg_scores_are_lmms_eval_readings_or_unusable(monkeypatch, tmp_path, reply, score):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert vcg.read_score(reply) == score


def test_vcg_judging_through_our_client_with_a_reasoning_model(monkeypatch, stub_judge, use_judge, tmp_path):
    """issue 15.4 for the VideoChatGPT tasks: lmms-eval's messages, our request family."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    stub = stub_judge()
    use_judge(stub.url, model="gpt-5-mini")
    doc = {"video_name": "v1", "question": "What happens?", "answer": "A man runs."}
    out = vcg.process_results_temporal(doc, ["A man is running."])
    assert out["tu"]["score"] == 4.0 and out["tu"]["judge_model"] == "gpt-5-mini" and out["judge_failures"] == 0.0
    body = stub.requests[0]
    assert body["messages"] == vcg.generic_messages("What happens?", "A man runs.", "A man is running.", "temporal")
    assert body["max_completion_tokens"] == vcg.MAX_JUDGE_TOKENS + JudgeConfig().reasoning_tokens
    assert "temperature" not in body and "max_tokens" not in body
    use_judge(stub.url, model="gpt-4o-2024-11-20")
    vcg.process_results_temporal(doc, ["A man is running."])
    assert stub.requests[1]["temperature"] == 0.0 and stub.requests[1]["max_tokens"] == vcg.MAX_JUDGE_TOKENS
