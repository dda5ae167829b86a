"""The judge client (sinktop_eval.benchmarks.judge) against stub servers on 127.0.0.1."""
import logging
import os
import sys
import types

import pytest

from sinktop_eval.benchmarks import judge
from sinktop_eval.benchmarks.judge import JudgeClient, JudgeConfig, parse_score, parse_verdict


def config(url, tmp_path, **kw):
    return JudgeConfig(url=url, key="k", model="stub-judge", cache_dir=tmp_path / "judge", backoff_s=0.01, **kw)


def test_reply_and_cache_hit_makes_no_second_request(stub_judge, tmp_path):
    stub = stub_judge()
    client = JudgeClient(config(stub.url, tmp_path))
    first = client.ask("Is the event consistent? Start with yes or no.")
    assert first.ok and first.text.startswith("Yes") and not first.cached and stub.count == 1
    second = client.ask("Is the event consistent? Start with yes or no.")
    assert second.ok and second.cached and second.text == first.text
    assert stub.count == 1  # served from disk
    # a fresh client (another process, a re-score) reads the same cache
    again = JudgeClient(config(stub.url, tmp_path)).ask("Is the event consistent? Start with yes or no.")
    assert again.cached and stub.count == 1
    # another model or prompt is another entry
    JudgeClient(JudgeConfig(url=stub.url, model="other", cache_dir=tmp_path / "judge")).ask(
        "Is the event consistent? Start with yes or no.")
    assert stub.count == 2
    assert stub.requests[0]["model"] == "stub-judge" and stub.requests[0]["temperature"] == 0.0


def test_retries_with_backoff_then_success(stub_judge, tmp_path):
    stub = stub_judge(fail_first=2)
    waits = []
    client = JudgeClient(config(stub.url, tmp_path, retries=3), sleep=waits.append)
    reply = client.ask("score this")
    assert reply.ok and reply.text == "{'score': 4}" and reply.attempts == 3
    assert stub.count == 3
    assert waits == [0.01, 0.02]  # exponential: backoff * 2**retry
    assert client.stats.failures == 0


def test_permanent_failure_is_reported_not_raised_and_not_cached(stub_judge, tmp_path):
    stub = stub_judge(always_fail=True)
    client = JudgeClient(config(stub.url, tmp_path, retries=2))
    reply = client.ask("score this")
    assert not reply.ok and reply.text is None and "HTTP 500" in reply.error
    assert stub.count == 3 and reply.attempts == 3
    assert client.stats.failures == 1
    client.ask("score this")
    assert stub.count == 6  # the failure was not cached


def test_unreachable_endpoint_fails_cleanly(closed_port_url, tmp_path):
    reply = JudgeClient(config(closed_port_url, tmp_path, retries=1)).ask("anything")
    assert not reply.ok and "cannot reach" in reply.error and reply.attempts == 2


def test_bad_key_is_not_retried(stub_judge, tmp_path):
    stub = stub_judge(always_fail=True, status=401)
    reply = JudgeClient(config(stub.url, tmp_path, retries=4)).ask("anything")
    assert not reply.ok and "HTTP 401" in reply.error and stub.count == 1


def test_backoff_is_capped():
    client = JudgeClient(JudgeConfig(url="http://127.0.0.1:9/v1", model="m", backoff_s=2.0, max_backoff_s=5.0))
    assert [client.delay(i) for i in range(4)] == [2.0, 4.0, 5.0, 5.0]
    assert client.delay(0, retry_after=4.0) == 4.0


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
    ("No, the tyre never falls off.", False), ("The description is accurate: yes.", True), ("Maybe.", None),
    ("", None), (None, None),
])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict


def test_config_from_environment_and_url_normalisation(monkeypatch, tmp_path):
    monkeypatch.setenv("SINKTOP_JUDGE_URL", "https://example.invalid/v1/")
    monkeypatch.setenv("SINKTOP_JUDGE_MODEL", "gpt-x")
    monkeypatch.setenv("SINKTOP_JUDGE_RETRIES", "1")
    monkeypatch.setenv("SINKTOP_CACHE", str(tmp_path))
    cfg = judge.active_config()
    assert cfg.configured and cfg.endpoint == "https://example.invalid/v1/chat/completions"
    assert cfg.retries == 1 and cfg.cache_path == tmp_path / "judge" and cfg.key is None
    assert "key" in cfg.describe() and cfg.describe()["key"] is None
    # a programmatic config wins over the environment
    judge.configure(JudgeConfig(url="http://127.0.0.1:1/v1/chat/completions", model="m2"))
    assert judge.active_config().model == "m2"
    judge.configure(None)
    assert judge.active_config().model == "gpt-x"
    monkeypatch.delenv("SINKTOP_JUDGE_URL")
    assert not judge.active_config().configured


def test_lmms_eval_vcg_variables_configure_the_judge_when_ours_are_unset(monkeypatch):
    monkeypatch.setenv("OPENAI_API_URL", "http://127.0.0.1:1/v1/chat/completions")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-vcg")
    monkeypatch.setenv("MODEL_VERSION", "gpt-vcg")
    cfg = judge.active_config()
    assert cfg.configured and (cfg.key, cfg.model) == ("sk-vcg", "gpt-vcg")
    other = JudgeConfig.from_env(url="http://127.0.0.1:3/v1", model="m")  # an explicit URL: no OpenAI key for it
    assert other.key is None and other.endpoint == "http://127.0.0.1:3/v1/chat/completions"
    monkeypatch.setenv("SINKTOP_JUDGE_URL", "http://127.0.0.1:2/v1")  # ours win; the OpenAI key is not sent there
    monkeypatch.setenv("SINKTOP_JUDGE_MODEL", "ours")
    cfg = judge.active_config()
    assert (cfg.endpoint, cfg.key, cfg.model) == ("http://127.0.0.1:2/v1/chat/completions", None, "ours")


def test_no_judge_warning_is_logged_once_per_run(caplog):
    with caplog.at_level(logging.WARNING, logger="sinktop_eval.benchmarks.judge"):
        assert judge.warn_no_judge() is True
        assert judge.warn_no_judge() is False
        judge.new_run()
        assert judge.warn_no_judge() is True
    assert len([r for r in caplog.records if "no LLM judge configured" in r.message]) == 2


def test_export_vcg_env_sets_lmms_eval_variables_and_updates_a_loaded_module(monkeypatch, stub_judge):
    stub = stub_judge()
    fake = types.ModuleType(judge.VCG_MODULE)
    monkeypatch.setitem(sys.modules, judge.VCG_MODULE, fake)
    env = {}
    assert judge.export_vcg_env(environ=env) == {}  # nothing configured: nothing exported
    judge.configure(JudgeConfig(url=stub.url, key="sk-test", model="judge-model", backoff_s=0.5))
    values = judge.export_vcg_env(environ=env)
    assert env["OPENAI_API_URL"] == stub.url + "/chat/completions" == values["OPENAI_API_URL"]
    assert env["OPENAI_API_KEY"] == "sk-test" and env["MODEL_VERSION"] == "judge-model"
    assert fake.API_URL == env["OPENAI_API_URL"] and fake.GPT_EVAL_MODEL_NAME == "judge-model"
    assert fake.headers["Authorization"] == "Bearer sk-test" and fake.NUM_SECONDS_TO_SLEEP == 0.5
    assert "OPENAI_API_URL" not in os.environ  # only the mapping we passed


def test_lmms_eval_vcg_judge_reaches_the_stub_through_the_exported_env(monkeypatch, stub_judge, tmp_path):
    """The built-in videochatgpt judge code, configured only by export_vcg_env, talks to our endpoint."""
    stub = stub_judge()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delitem(sys.modules, judge.VCG_MODULE, raising=False)
    judge.configure(JudgeConfig(url=stub.url, key="sk", model="judge-model"))
    judge.export_vcg_env()
    import importlib

    vcg = importlib.import_module(judge.VCG_MODULE)  # reads OPENAI_API_URL / MODEL_VERSION at import
    review, model = vcg.get_eval_generic("Q?", "A.", "P.", "correctness", 64, retries=1)
    assert parse_score(review) == 4.0 and model == "judge-model" and stub.count == 1
    for name in ("OPENAI_API_URL", "OPENAI_API_KEY", "MODEL_VERSION", "API_TYPE"):
        monkeypatch.delenv(name, raising=False)
    sys.modules.pop(judge.VCG_MODULE, None)  # do not leak a module bound to this stub
