"""Suite-wide settings (never touch the network, never log W&B online) and shared fixtures: a session
copy of the smoke benchmark, stub judge servers on 127.0.0.1, and a clean judge configuration.

The stub judge is a threading http.server speaking just enough of the chat-completions protocol for
the OpenAI SDK: Argus prompts (SOURCE / TARGET CAPTION blocks) get its line-by-line format (`argus_reply`),
VCG-style prompts (they ask for a 'score') get "{'score': 4}", anything else gets a yes verdict; failures
carry ``retry-after-ms: 1`` so the SDK's retries take milliseconds.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402 - the environment above must be set before these imports
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sinktop_eval.benchmarks import judge
from sinktop_eval.benchmarks.common import BUILTIN_SMOKE, DATA_ROOT_ENV
from sinktop_eval.benchmarks.smoke_data import SMOKE_ENV, build_smoke_data
from sinktop_eval.resources import TASKS_DIR

JUDGE_ENV = ("SINKTOP_JUDGE_URL", "SINKTOP_JUDGE_KEY", "SINKTOP_JUDGE_MODEL", "SINKTOP_JUDGE_RETRIES",
             "SINKTOP_JUDGE_TIMEOUT", "OPENAI_API_URL", "OPENAI_API_KEY", "MODEL_VERSION")
DATA_ENV = ("SINKTOP_DATA_ROOT", "SINKTOP_EVENTHALLUSION_DIR", "SINKTOP_VIDEOCOMP_DIR", "SINKTOP_VIDEOCHATGPT_DIR",
            "SINKTOP_MVBENCH_DIR", "SINKTOP_ARGUS_DIR", "SINKTOP_SKIP_MISSING_VIDEOS")


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    """The smoke benchmark built once per session into a temporary folder (seed 0)."""
    root = tmp_path_factory.mktemp("smoke") / "smoke"
    build_smoke_data(root, seed=0)
    return root


@pytest.fixture
def clean_task_env(monkeypatch, tmp_path, smoke_root):
    """No judge unless a test sets one; judge cache in tmp; tasks read the session build of the smoke data."""
    for name in JUDGE_ENV + DATA_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SINKTOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(SMOKE_ENV, str(smoke_root))
    monkeypatch.setenv(DATA_ROOT_ENV, BUILTIN_SMOKE)
    judge.reset()
    yield
    judge.reset()


@pytest.fixture(scope="session")
def task_manager():
    """One TaskManager over built-ins + tasks/ (indexing ~2000 YAMLs takes seconds)."""
    from lmms_eval.tasks import TaskManager

    return TaskManager(include_path=[str(TASKS_DIR)])


# --------------------------------------------------------------------------- stub judge


@dataclass
class StubJudge:
    """A chat-completions stub. ``fail_first``: requests answered ``status`` (500) before it starts answering;
    ``always_fail``: every request gets ``status``; ``reply``: body -> reply text (default `reply_for`).
    ``requests`` holds every request body received, ``paths`` their paths."""

    fail_first: int = 0
    always_fail: bool = False
    status: int = 500
    reply: object = None
    delay: float = 0.0  # seconds before answering (a hanging judge)
    requests: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    @property
    def count(self) -> int:
        return len(self.requests)

    def reply_for(self, body: dict) -> str:
        if self.reply is not None:
            return self.reply(body)
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        argus = argus_reply(text)
        if argus is not None:
            return argus
        return "{'score': 4}" if "score" in text.lower() else "Yes, the description matches the event."


_ARGUS_CAPTION = re.compile(r'^(SOURCE|TARGET) CAPTION:\n"""\n(.*?)\n"""', re.DOTALL | re.MULTILINE)


def argus_reply(prompt: str) -> str | None:
    """The Argus judge's format for a prompt with SOURCE / TARGET CAPTION blocks (the last pair is the clip's,
    the earlier ones are worked examples), else None: one block per target sentence, typed visual-description,
    entailed (quoting itself) when the sentence occurs verbatim in the source, else underdetermined."""
    blocks = _ARGUS_CAPTION.findall(prompt)
    sources = [text for kind, text in blocks if kind == "SOURCE"]
    targets = [text for kind, text in blocks if kind == "TARGET"]
    if not sources or not targets:
        return None
    source = sources[-1]
    lines = []
    for k, sentence in enumerate((s for s in re.split(r"(?<=[.!?])\s+", targets[-1].strip()) if s), 1):
        found = sentence in source
        lines.append(f"Line {k}: {sentence}\n    - Type: visual-description\n    - Evidence: {sentence if found else ''}"
                     f"\n    - Reasoning: stub\n    - Verdict: {'entailment' if found else 'underdetermined'}")
    return "\n\n".join(lines)


def _handler(stub: StubJudge):
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if stub.delay:
                time.sleep(stub.delay)
            with lock:
                stub.requests.append(body)
                stub.paths.append(self.path)
                n = len(stub.requests)
            if stub.always_fail or n <= stub.fail_first:
                out = b'{"error": {"message": "stub failure"}}'
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("retry-after-ms", "1")
                self.end_headers()
                self.wfile.write(out)
                return
            out = json.dumps({"id": f"stub-{n}", "object": "chat.completion", "created": 0,
                              "model": body.get("model", "stub"),
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": stub.reply_for(body)}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):  # keep test output clean
            pass

    return Handler


@pytest.fixture
def stub_judge():
    """Factory: ``stub_judge(fail_first=2)`` starts a stub on 127.0.0.1 and returns it (stopped after the test)."""
    started = []

    def start(**kwargs) -> StubJudge:
        stub = StubJudge(**kwargs)
        stub.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
        threading.Thread(target=stub.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.server.shutdown()
        stub.server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def use_judge(monkeypatch):
    """``use_judge(url)`` configures the judge the way a user does: through SINKTOP_JUDGE_* variables."""

    def apply(url: str, retries: int = 2, model: str = "stub-judge") -> None:
        monkeypatch.setenv("SINKTOP_JUDGE_URL", url)
        monkeypatch.setenv("SINKTOP_JUDGE_MODEL", model)
        monkeypatch.setenv("SINKTOP_JUDGE_KEY", "test-key")
        monkeypatch.setenv("SINKTOP_JUDGE_RETRIES", str(retries))

    return apply


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny twins gain nothing from a second thread and, on a busy 2-core box, lose up to 5x to
    oversubscription: modules that run them ask for one thread (``pytest.mark.usefixtures``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
