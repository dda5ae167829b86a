"""The LLM judge: one OpenAI-SDK client for every judged metric, and a disk cache of usable judgements.

Configuration (a `JudgeConfig`, or the environment when none was given with `configure`):

    SINKTOP_JUDGE_URL      an OpenAI-compatible API: its base URL (".../v1"; ".../v1/chat/completions" is accepted)
    SINKTOP_JUDGE_KEY      API key (optional for local servers; OPENAI_API_KEY is never read, so a key only
                           goes to the URL it was given for)
    SINKTOP_JUDGE_MODEL    model name sent to the endpoint
    SINKTOP_JUDGE_RETRIES  retries after the first attempt (default 4)
    SINKTOP_JUDGE_TIMEOUT  seconds per request (default 60)
    SINKTOP_CACHE          cache root (default ~/.cache/sinktop_eval); judgements live under <root>/judge/

The judge counts as configured when it has a URL and a model.

Transport, retries, backoff and timeouts are the OpenAI SDK's: it retries connection errors, timeouts,
408, 409, 429 and 5xx with exponential backoff (honouring Retry-After); any other 4xx (bad request, bad
key, unknown model) fails at once.

Request parameters: chat models get ``temperature=0`` and ``max_tokens``. Reasoning models (gpt-5*, o1*,
o3*, o4*; or ``JudgeConfig(reasoning=True)``) reject both with HTTP 400, so they get
``max_completion_tokens = max_tokens + reasoning_tokens`` (their hidden reasoning counts against that cap)
and no temperature.

The cache is keyed by (base URL, model, messages, request parameters) and holds only replies the caller's
``parse`` accepted: a reply it rejects (None) is a failure like an HTTP error (``JudgeReply(ok=False)``),
is not cached, and is asked again by the next scoring (``rescore=true``); a cached one costs no request.
Tasks score a failed judgement 0 and count it in ``judge_failures``; a judged metric whose every
judgement failed is NaN. Without a configured judge, judged metrics are NaN and `warn_no_judge` logs
one warning per run.

Replies are read with regular expressions only (`parse_score`, `parse_verdict`): nothing is evaluated.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..files import CACHE_ENV as ENV_CACHE
from ..files import atomic_write_text, cache_root

log = logging.getLogger(__name__)

ENV_URL, ENV_KEY, ENV_MODEL = "SINKTOP_JUDGE_URL", "SINKTOP_JUDGE_KEY", "SINKTOP_JUDGE_MODEL"
ENV_RETRIES, ENV_TIMEOUT = "SINKTOP_JUDGE_RETRIES", "SINKTOP_JUDGE_TIMEOUT"
CHAT_PATH = "/chat/completions"
REASONING_PREFIXES = ("gpt-5", "o1", "o3", "o4")  # model families that take max_completion_tokens, no temperature


def is_reasoning_model(model: str | None) -> bool:
    """gpt-5*, o1*, o3*, o4* (a "provider/" prefix is ignored)."""
    return bool(model) and model.rsplit("/", 1)[-1].lower().startswith(REASONING_PREFIXES)


@dataclass(frozen=True)
class JudgeConfig:
    url: str | None = None
    key: str | None = None
    model: str | None = None
    cache_dir: Path | None = None  # None: <SINKTOP_CACHE>/judge; use_cache=False disables the cache
    use_cache: bool = True
    retries: int = 4
    timeout_s: float = 60.0
    max_tokens: int = 256  # per reply, when the caller gives none
    reasoning: bool | None = None  # None: decided by the model name (is_reasoning_model)
    reasoning_tokens: int = 4096  # extra completion budget of a reasoning model

    @property
    def configured(self) -> bool:
        return bool(self.url and self.model)

    @property
    def base_url(self) -> str | None:
        """The API root the SDK wants (".../v1"); a full chat-completions URL loses its suffix."""
        if not self.url:
            return None
        url = self.url.strip().rstrip("/")
        return url[: -len(CHAT_PATH)] if url.endswith(CHAT_PATH) else url

    @property
    def endpoint(self) -> str | None:
        """The chat-completions URL requests go to (for messages and logs)."""
        return self.base_url + CHAT_PATH if self.url else None

    @property
    def is_reasoning(self) -> bool:
        return is_reasoning_model(self.model) if self.reasoning is None else self.reasoning

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else cache_root() / "judge"

    def request_params(self, max_tokens: int | None = None) -> dict[str, Any]:
        """The sampling parameters of one request, in the family the model accepts."""
        tokens = max_tokens or self.max_tokens
        if self.is_reasoning:
            return {"max_completion_tokens": tokens + self.reasoning_tokens}
        return {"temperature": 0.0, "max_tokens": tokens}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> JudgeConfig:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {"url": environ.get(ENV_URL) or None, "key": environ.get(ENV_KEY) or None,
                                  "model": environ.get(ENV_MODEL) or None}
        for env, name, cast in ((ENV_RETRIES, "retries", int), (ENV_TIMEOUT, "timeout_s", float)):
            if environ.get(env):
                try:
                    values[name] = cast(environ[env])
                except ValueError as err:
                    raise ValueError(f"{env}={environ[env]!r} is not a number") from err
        if environ.get(ENV_CACHE):
            values["cache_dir"] = Path(environ[ENV_CACHE]).expanduser() / "judge"
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


_state_lock = threading.Lock()
_override: JudgeConfig | None = None
_clients: dict[JudgeConfig, JudgeClient] = {}
_warned_no_judge = False


def configure(config: JudgeConfig | None = None, **fields: Any) -> JudgeConfig | None:
    """Set the process-wide judge (a config, or fields over the environment's); ``configure(None)`` clears it."""
    global _override
    with _state_lock:
        if config is None and not fields:
            _override = None
        else:
            base = config if config is not None else JudgeConfig.from_env()
            _override = replace(base, **fields) if fields else base
        return _override


def active_config() -> JudgeConfig:
    """The judge in force: the one given to `configure`, else the environment's (read now)."""
    return _override if _override is not None else JudgeConfig.from_env()


def get_client(config: JudgeConfig | None = None) -> JudgeClient:
    config = config or active_config()
    with _state_lock:
        client = _clients.get(config)
        if client is None:
            client = _clients[config] = JudgeClient(config)
        return client


def new_run() -> None:
    """Start of a run (called when our judged tasks are built): the missing-judge warning may show again."""
    global _warned_no_judge
    with _state_lock:
        _warned_no_judge = False


def reset() -> None:
    """Forget the configured judge, the clients and the warning state (tests)."""
    global _override, _warned_no_judge
    with _state_lock:
        _override = None
        _clients.clear()
        _warned_no_judge = False


JUDGED_METRICS = (
    "judge metrics (EventHallusion desc/overall, VideoChatGPT ci/do/cu/tu/co, Argus hallucination/omission rates, "
    "judge_failures)")


def warn_no_judge(what: str = JUDGED_METRICS) -> bool:
    """Log the missing-judge warning once per run; True when this call logged it."""
    global _warned_no_judge
    with _state_lock:
        if _warned_no_judge:
            return False
        _warned_no_judge = True
    log.warning("no LLM judge configured (set %s and %s, optionally %s; or judge.url= judge.model= with "
                "python -m sinktop_eval): %s are reported as missing (NaN); everything else is scored as usual",
                ENV_URL, ENV_MODEL, ENV_KEY, what)
    return True


# --------------------------------------------------------------------------- the client


@dataclass
class JudgeReply:
    text: str | None  # the reply as sent (None when no reply came)
    ok: bool  # a reply came and ``parse`` accepted it
    error: str | None = None
    cached: bool = False
    value: Any = None  # what ``parse`` read from the reply


@dataclass
class JudgeStats:
    calls: int = 0
    requests: int = 0  # SDK calls (each may retry internally)
    cache_hits: int = 0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def _any_text(text: str) -> str | None:
    return text if text.strip() else None


def cache_key(config: JudgeConfig, messages: list[dict], params: Mapping[str, Any]) -> str:
    blob = json.dumps([config.base_url, config.model, messages, dict(params)], sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _error_text(err: Exception, where: str | None) -> str:
    import openai

    if isinstance(err, openai.APIStatusError):
        return f"HTTP {err.status_code} from {where}"
    if isinstance(err, openai.APIConnectionError):  # refused, unreachable, timed out (after the SDK's retries)
        return f"cannot reach {where}: {err}"
    return f"malformed response from {where}: {type(err).__name__}: {err}"


class JudgeClient:
    """Chat completions through the OpenAI SDK, with the cache of usable judgements and failure accounting."""

    def __init__(self, config: JudgeConfig) -> None:
        if not config.configured:
            raise ValueError(f"the judge needs a URL and a model (set {ENV_URL} and {ENV_MODEL})")
        from openai import OpenAI

        self.config = config
        self.stats = JudgeStats()
        # a placeholder key for servers that need none (the SDK would otherwise read OPENAI_API_KEY)
        self._sdk = OpenAI(base_url=config.base_url, api_key=config.key or "none", timeout=config.timeout_s,
                           max_retries=config.retries)

    def _cache_file(self, key: str) -> Path:
        return self.config.cache_path / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> str | None:
        if not self.config.use_cache:
            return None
        path = self._cache_file(key)
        try:
            text = json.loads(path.read_text(encoding="utf-8"))["text"]
            return text if isinstance(text, str) else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable judge cache entry %s", path)
            return None

    def _cache_put(self, key: str, record: dict) -> None:
        if not self.config.use_cache:
            return
        try:
            atomic_write_text(self._cache_file(key), json.dumps(record, ensure_ascii=False, default=str))
        except OSError as err:  # a cache that cannot be written costs money later, not correctness now
            log.warning("could not write judge cache %s: %s", self._cache_file(key), err)

    def chat(self, messages: list[dict], max_tokens: int | None = None,
             parse: Callable[[str], Any] | None = None) -> JudgeReply:
        """One judgement; never raises for endpoint trouble. ``parse(text)`` reads the reply: None means the
        reply is unusable (a failure, not cached). Default: any non-empty text is usable."""
        parse = parse or _any_text
        self.stats.add(calls=1)
        params = self.config.request_params(max_tokens)
        key = cache_key(self.config, messages, params)
        cached = self._cache_get(key)
        if cached is not None:
            value = parse(cached)
            if value is not None:  # re-read: a parser that got stricter ignores what it no longer accepts
                self.stats.add(cache_hits=1)
                return JudgeReply(text=cached, ok=True, cached=True, value=value)
        self.stats.add(requests=1)
        text = None
        try:
            completion = self._sdk.chat.completions.create(model=self.config.model, messages=messages, **params)
            text = (completion.choices[0].message.content or "").strip()
            value = parse(text) if text else None
            error = None if value is not None else f"unusable judge reply: {text[:200]!r}"
        except Exception as err:  # noqa: BLE001 - SDK errors and malformed bodies alike are a failed judgement
            value, error = None, _error_text(err, self.config.endpoint)
        if error is not None:
            self.stats.add(failures=1)
            log.error("judge failed: %s", error)
            return JudgeReply(text=text, ok=False, error=error)
        self._cache_put(key, {"url": self.config.base_url, "model": self.config.model, "messages": messages,
                              "params": params, "text": text, "value": value, "time": time.time()})
        return JudgeReply(text=text, ok=True, value=value)

    def ask(self, prompt: str, system: str | None = None, max_tokens: int | None = None,
            parse: Callable[[str], Any] | None = None) -> JudgeReply:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return self.chat(messages, max_tokens=max_tokens, parse=parse)


# --------------------------------------------------------------------------- reading replies

_SCORE = re.compile(r"""["']?\bscore\b["']?\s*[:=]\s*["']?(-?\d+(?:\.\d+)?)""", re.IGNORECASE)
_NUMBER_ONLY = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[.!]?\s*$")
_MARKDOWN = re.compile(r"[*_`#>]+")


def parse_score(text: str | None, low: float = 0.0, high: float = 5.0) -> float | None:
    """The score in "{'score': 4}", '{"score": 4.5}', "Score: 3" or "4"; None when absent or out of range."""
    if not text:
        return None
    match = _SCORE.search(text) or _NUMBER_ONLY.match(text)
    if not match:
        return None
    value = float(match.group(1))
    return value if low <= value <= high and math.isfinite(value) else None


def parse_verdict(text: str | None) -> bool | None:
    """A referee's verdict by EventHallusion's rule: Markdown removed, lower-cased, then the reply *starts*
    with "yes" (True) or "no" (False); anything else is no verdict (None).

    "**Yes**, ..." and "yes—definitely" are yes; "I cannot say yes or no" and "The answer: yes" are None.
    """
    if not text:
        return None
    cleaned = _MARKDOWN.sub("", text).strip().lower()
    if cleaned.startswith("yes"):
        return True
    if cleaned.startswith("no"):
        return False
    return None
