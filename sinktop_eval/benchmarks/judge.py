"""The LLM judge: one OpenAI-compatible chat-completions client for every judged metric.

Configuration (a `JudgeConfig`, or the environment when none was given with `configure`):

    SINKTOP_JUDGE_URL     endpoint: a base URL (".../v1") or the full ".../v1/chat/completions"
    SINKTOP_JUDGE_KEY     bearer token (optional for local servers)
    SINKTOP_JUDGE_MODEL   model name sent to the endpoint
                          (with SINKTOP_JUDGE_URL unset, lmms-eval's OPENAI_API_URL / OPENAI_API_KEY /
                          MODEL_VERSION are used when OPENAI_API_URL is set)
    SINKTOP_CACHE         cache root (default ~/.cache/sinktop_eval); replies live under <root>/judge/
    SINKTOP_JUDGE_RETRIES retries after the first attempt (default 4)
    SINKTOP_JUDGE_BACKOFF first retry delay in seconds, doubled each retry (default 2, capped at 60)
    SINKTOP_JUDGE_TIMEOUT seconds per HTTP request (default 60)

The judge counts as configured when it has a URL and a model. Replies are cached on disk by
(model, messages), so re-scoring the same predictions makes no HTTP call. A call that still fails
after its retries returns ``JudgeReply(ok=False)``: tasks score it 0 and count it in their
``judge_failures`` metric (it is never dropped). Without a configured judge, tasks report judge
metrics as NaN and `warn_no_judge` logs one warning per run.

lmms-eval's built-in VideoChatGPT tasks talk to their judge through ``OPENAI_API_URL``,
``OPENAI_API_KEY`` and ``MODEL_VERSION``, read when their module is imported: call `export_vcg_env`
before those tasks are loaded so they use the same endpoint.

Judge replies are parsed with regular expressions only (`parse_score`, `parse_verdict`): no
``eval``, no ``ast.literal_eval``. Standard library only.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..files import CACHE_ENV as ENV_CACHE
from ..files import cache_root

log = logging.getLogger(__name__)

ENV_URL, ENV_KEY, ENV_MODEL = "SINKTOP_JUDGE_URL", "SINKTOP_JUDGE_KEY", "SINKTOP_JUDGE_MODEL"
ENV_RETRIES, ENV_BACKOFF, ENV_TIMEOUT = "SINKTOP_JUDGE_RETRIES", "SINKTOP_JUDGE_BACKOFF", "SINKTOP_JUDGE_TIMEOUT"
CHAT_PATH = "/chat/completions"
# statuses a retry cannot fix (bad request, bad key, no such model/endpoint)
NON_RETRYABLE = frozenset({400, 401, 403, 404, 422})
MISSING = float("nan")  # how a judge metric reads when there is no judge


class JudgeError(RuntimeError):
    """One failed attempt (HTTP error, unreachable endpoint, malformed response)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class JudgeConfig:
    url: str | None = None
    key: str | None = None
    model: str | None = None
    cache_dir: Path | None = None  # None: <SINKTOP_CACHE>/judge; use_cache=False disables it
    retries: int = 4
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0
    timeout_s: float = 60.0
    max_tokens: int = 256
    temperature: float = 0.0
    use_cache: bool = True

    @property
    def configured(self) -> bool:
        return bool(self.url and self.model)

    @property
    def endpoint(self) -> str | None:
        """The full chat-completions URL (".../v1" gets "/chat/completions" appended)."""
        if not self.url:
            return None
        url = self.url.strip().rstrip("/")
        return url if url.endswith(CHAT_PATH) else url + CHAT_PATH

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else cache_root() / "judge"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> JudgeConfig:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {"url": environ.get(ENV_URL) or None, "key": environ.get(ENV_KEY) or None,
                                  "model": environ.get(ENV_MODEL) or None}
        for env, name, cast in ((ENV_RETRIES, "retries", int), (ENV_BACKOFF, "backoff_s", float),
                                (ENV_TIMEOUT, "timeout_s", float)):
            if environ.get(env):
                try:
                    values[name] = cast(environ[env])
                except ValueError as err:
                    raise ValueError(f"{env}={environ[env]!r} is not a number") from err
        if environ.get(ENV_CACHE):
            values["cache_dir"] = Path(environ[ENV_CACHE]).expanduser() / "judge"
        explicit = {k: v for k, v in overrides.items() if v is not None}
        if not (explicit.get("url") or values["url"]) and environ.get("OPENAI_API_URL"):
            # only lmms-eval's VCG variables are set: use that judge everywhere (its key goes to its URL only)
            values.update(url=environ["OPENAI_API_URL"], key=values["key"] or environ.get("OPENAI_API_KEY") or None,
                          model=values["model"] or environ.get("MODEL_VERSION") or None)
        values.update(explicit)
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        """For logs and run records: everything but the key."""
        return {"url": self.endpoint, "model": self.model, "key": "***" if self.key else None,
                "retries": self.retries, "cache": str(self.cache_path) if self.use_cache else None}


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


JUDGED_METRICS = "judge metrics (EventHallusion desc_acc/overall_acc, VideoChatGPT ci/do/cu/tu/co, judge_failures)"


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
    text: str | None
    ok: bool
    cached: bool = False
    attempts: int = 0
    error: str | None = None


@dataclass
class JudgeStats:
    calls: int = 0
    http_requests: int = 0
    cache_hits: int = 0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def cache_key(model: str, messages: list[dict]) -> str:
    blob = json.dumps([model, messages], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _message_text(content: Any) -> str:
    """A message's content as text (plain string, or a list of {"type": "text", "text": ...} parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class JudgeClient:
    """Chat completions with an on-disk cache, retries with exponential backoff, and failure accounting."""

    def __init__(self, config: JudgeConfig, sleep=time.sleep) -> None:
        if not config.configured:
            raise ValueError(f"the judge needs a URL and a model (set {ENV_URL} and {ENV_MODEL})")
        self.config = config
        self.stats = JudgeStats()
        self._sleep = sleep

    # cache -------------------------------------------------------------------------------
    def _cache_file(self, key: str) -> Path:
        return self.config.cache_path / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> str | None:
        if not self.config.use_cache:
            return None
        path = self._cache_file(key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return record["text"] if isinstance(record.get("text"), str) else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, AttributeError):
            log.warning("ignoring unreadable judge cache entry %s", path)
            return None

    def _cache_put(self, key: str, messages: list[dict], text: str) -> None:
        if not self.config.use_cache:
            return
        path = self._cache_file(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            record = {"model": self.config.model, "messages": messages, "text": text, "time": time.time()}
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except OSError as err:  # a cache that cannot be written costs money later, not correctness now
            log.warning("could not write judge cache %s: %s", path, err)

    # HTTP --------------------------------------------------------------------------------
    def _post(self, messages: list[dict], max_tokens: int) -> str:
        payload = {"model": self.config.model, "messages": messages, "temperature": self.config.temperature,
                   "max_tokens": max_tokens}
        headers = {"Content-Type": "application/json"}
        if self.config.key:
            headers["Authorization"] = f"Bearer {self.config.key}"
        request = urllib.request.Request(self.config.endpoint, data=json.dumps(payload).encode("utf-8"),
                                         headers=headers, method="POST")
        self.stats.add(http_requests=1)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            retry_after = None
            if err.headers and err.headers.get("Retry-After", "").strip().replace(".", "", 1).isdigit():
                retry_after = float(err.headers["Retry-After"])
            raise JudgeError(f"HTTP {err.code} from {self.config.endpoint}", status=err.code,
                             retry_after=retry_after) from None
        except (urllib.error.URLError, OSError) as err:  # refused, unreachable, timeout
            reason = getattr(err, "reason", err)
            raise JudgeError(f"cannot reach {self.config.endpoint}: {reason}") from None
        try:
            data = json.loads(body)
            text = _message_text(data["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeError(f"malformed response from {self.config.endpoint}: {body[:200]!r}") from None
        if not text.strip():
            raise JudgeError(f"empty reply from {self.config.endpoint}")
        return text.strip()

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): backoff * 2**retry, capped."""
        wait = min(self.config.backoff_s * (2**retry), self.config.max_backoff_s)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.config.max_backoff_s))
        return wait

    def chat(self, messages: list[dict], max_tokens: int | None = None) -> JudgeReply:
        """One judgement. Never raises for endpoint trouble: a final failure is ``ok=False`` with its error."""
        self.stats.add(calls=1)
        key = cache_key(self.config.model, messages)
        cached = self._cache_get(key)
        if cached is not None:
            self.stats.add(cache_hits=1)
            return JudgeReply(text=cached, ok=True, cached=True)
        error = None
        attempts = 0
        for attempt in range(self.config.retries + 1):
            attempts = attempt + 1
            try:
                text = self._post(messages, max_tokens or self.config.max_tokens)
            except JudgeError as err:
                error = str(err)
                if err.status in NON_RETRYABLE or attempt == self.config.retries:
                    break
                wait = self.delay(attempt, err.retry_after)
                log.info("judge attempt %d/%d failed (%s); retrying in %.2fs", attempts, self.config.retries + 1,
                         err, wait)
                self._sleep(wait)
                continue
            self._cache_put(key, messages, text)
            return JudgeReply(text=text, ok=True, attempts=attempts)
        self.stats.add(failures=1)
        log.error("judge failed after %d attempt(s): %s", attempts, error)
        return JudgeReply(text=None, ok=False, attempts=attempts, error=error)

    def ask(self, prompt: str, system: str | None = None, max_tokens: int | None = None) -> JudgeReply:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return self.chat(messages, max_tokens=max_tokens)


# --------------------------------------------------------------------------- parsing replies

_SCORE = re.compile(r"""["']?\bscore\b["']?\s*[:=]\s*["']?(-?\d+(?:\.\d+)?)""", re.IGNORECASE)
_NUMBER_ONLY = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[.!]?\s*$")
_VERDICT = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


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
    """A referee's yes/no: True for "Yes, ...", False for "**No**. ...", None when neither is said.

    The first word decides (Markdown and punctuation removed); a reply that does not start with
    yes/no is read by its first stand-alone "yes" or "no".
    """
    if not text:
        return None
    cleaned = re.sub(r"[*_`#>]+", " ", text).strip().lower()
    first = cleaned.split(maxsplit=1)[0].strip(".,:;!?\"'()[]") if cleaned else ""
    if first in ("yes", "no"):
        return first == "yes"
    match = _VERDICT.search(cleaned)
    return None if match is None else match.group(1).lower() == "yes"


# --------------------------------------------------------------------------- lmms-eval's VCG judge

VCG_MODULE = "lmms_eval.tasks.videochatgpt.utils"


def vcg_env(config: JudgeConfig | None = None) -> dict[str, str]:
    """The variables lmms-eval's VideoChatGPT judge reads, for a configured judge ({} otherwise)."""
    config = config or active_config()
    if not config.configured:
        return {}
    return {"API_TYPE": "openai", "OPENAI_API_URL": config.endpoint, "OPENAI_API_KEY": config.key or "EMPTY",
            "MODEL_VERSION": config.model}


def sync_vcg_module(module: Any, config: JudgeConfig | None = None) -> bool:
    """Point an imported lmms-eval VideoChatGPT utils module at our judge (it reads its env at import)."""
    config = config or active_config()
    if not config.configured:
        return False
    module.API_URL = config.endpoint
    module.API_KEY = config.key or "EMPTY"
    module.headers = {"Authorization": f"Bearer {module.API_KEY}", "Content-Type": "application/json"}
    module.GPT_EVAL_MODEL_NAME = config.model
    module.NUM_SECONDS_TO_SLEEP = config.backoff_s
    return True


def export_vcg_env(config: JudgeConfig | None = None, environ: dict | None = None) -> dict[str, str]:
    """Export our judge as OPENAI_API_URL / OPENAI_API_KEY / MODEL_VERSION for lmms-eval's VCG tasks.

    Call before the tasks load (lmms-eval reads these when it imports the task module); an already
    imported ``lmms_eval.tasks.videochatgpt.utils`` is updated too. Returns what was exported ({} when
    no judge is configured: the built-in tasks would then call OpenAI with a placeholder key, retry
    5 x 5 s per call and score 0, so skip them or use the sinktop_vcg_* tasks).
    """
    environ = os.environ if environ is None else environ
    config = config or active_config()
    values = vcg_env(config)
    if not values:
        log.info("export_vcg_env: no judge configured (%s, %s); nothing exported", ENV_URL, ENV_MODEL)
        return {}
    environ.update(values)
    if VCG_MODULE in sys.modules:
        sync_vcg_module(sys.modules[VCG_MODULE], config)
    return values
