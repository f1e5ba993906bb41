"""The OpenAI-compatible backend against a fault-injecting server: retries, Retry-After, timeouts,
dropped connections, garbage bodies, accounting. `FakeTeacher` is also used by test_distill*.py."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codeplan.llm.base import GenerationParams
from codeplan.llm.openai_compat import GenerationError, OpenAIGenerator, retry_after_seconds
from codeplan.prompts import VERIFY_SYSTEM

MARK = re.compile(r"ID=(\S+) SOL=(\d+)")

# What a fault does: see FakeTeacher._fault.
FAULTS = ("500", "429", "hang", "garbage", "empty_choices", "drop", "empty_content", "refuse", "401", "400")


def chatty_plan(pid: str, sol: int, index: int = 0) -> str:
    """A teacher answer in the shape real ones have: preamble, a fenced list in "Step k:" form, chatter.
    It names the problem and solution it was asked about, so a misfiled plan is visible."""
    return (f"Sure! Here is the plan for the code:\n```\nStep 1: Read the input of {pid}.\n"
            f"Step 2: Compute the answer (variant {index}).\nStep 3: Print ID={pid} SOL={sol}.\n```\n"
            "I hope this helps!")


class FakeTeacher:
    """A chat-completions server that answers with `chatty_plan` for the ID/SOL marker found in the
    last user message, after the faults `schedule(key, attempt)` names for that request."""

    def __init__(self, schedule: Callable[[tuple[str, int], int], str | None] = lambda key, attempt: None, *,
                 hang_seconds: float = 3.0, delay: float = 0.0,
                 coder: Callable[[tuple[str, int]], str] | None = None) -> None:
        self.schedule = schedule
        self.coder = coder  # answers code-from-plan requests (distill --verify) with this program
        self.hang_seconds = hang_seconds
        self.delay = delay
        self.attempts: Counter[tuple[str, int]] = Counter()
        self.log: list[tuple[tuple[str, int], str | None]] = []
        self.lock = threading.Lock()
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                teacher.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeTeacher":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler, body: dict) -> None:
        text = body["messages"][-1]["content"] if "messages" in body else body.get("prompt", "")
        found = MARK.search(text)
        key = (found.group(1), int(found.group(2))) if found else ("?", -1)
        with self.lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
            fault = self.schedule(key, attempt)
            self.log.append((key, fault))
        if self.delay:
            time.sleep(self.delay)
        if fault == "drop":  # close the socket without a word
            request.close_connection = True
            request.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "hang":
            time.sleep(self.hang_seconds)
        if fault in ("500", "429", "401", "400"):
            headers = {"Retry-After": "0.3"} if fault == "429" else {}
            return self._send(request, int(fault), {"error": {"message": f"injected {fault}", "type": "x"}}, headers)
        if fault == "garbage":
            return self._send(request, 200, None, raw=b"<html>not json{{")
        if fault == "empty_choices":
            return self._send(request, 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                             "choices": []})
        n = int(body.get("n") or 1)
        is_verify = "messages" in body and body["messages"][0]["content"] == VERIFY_SYSTEM
        if is_verify and self.coder is not None:
            answers = [f"Here you go:\n```python\n{self.coder(key)}\n```"] * n
        elif fault == "empty_content":
            answers = [""] * n
        elif fault == "refuse":
            answers = ["I'm sorry, but I can't help with that."] * n
        else:
            answers = [chatty_plan(key[0], key[1], i) for i in range(n)]
        choices = [{"index": i, "message": {"role": "assistant", "content": a}, "finish_reason": "stop"}
                   for i, a in enumerate(answers)]
        self._send(request, 200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                  "choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 5 * n,
                                                                "total_tokens": 10 + 5 * n}})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, obj: dict | None, headers: dict | None = None,
              raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(obj).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a hang it timed out on)
            pass


def _client(url: str, **options: object) -> OpenAIGenerator:
    settings = {"concurrency": 4, "timeout": 1.0, "max_retries": 4, "backoff_base": 0.01, "backoff_max": 0.05} | options
    return OpenAIGenerator(url, "teacher", **settings)  # type: ignore[arg-type]


def _conv(pid: str, sol: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"code:\nprint('ID={pid} SOL={sol}')\nWrite a plan:"}]


@pytest.mark.parametrize("fault", ["500", "429", "hang", "garbage", "empty_choices", "drop"])
def test_each_transient_fault_is_retried_then_answered(fault: str) -> None:
    with FakeTeacher(lambda key, attempt: fault if attempt == 0 else None, hang_seconds=2.0) as server:
        generator = _client(server.url, timeout=0.5)
        [completion] = generator.chat([_conv("p1", 3)], GenerationParams(max_tokens=50))
    assert "ID=p1 SOL=3" in completion.texts[0]
    stats = generator.stats.snapshot()
    assert stats["requests"] == 2 and stats["retries"] == 1 and stats["failures"] == 0
    expected_kind = {"500": "server_error", "429": "rate_limited", "hang": "timeout", "garbage": "bad_response",
                     "empty_choices": "bad_response", "drop": "connection"}[fault]
    assert stats["errors"] == {expected_kind: 1}
    assert stats["completion_tokens"] == 5  # only the answer that arrived is counted


def test_retry_after_is_honoured_over_the_short_backoff() -> None:
    with FakeTeacher(lambda key, attempt: "429" if attempt < 2 else None) as server:
        generator = _client(server.url, backoff_base=0.001)
        started = time.monotonic()
        generator.chat([_conv("p1", 0)], GenerationParams())
        elapsed = time.monotonic() - started
    assert elapsed >= 0.55  # two waits of Retry-After 0.3 s, not two waits of ~1 ms


def test_persistent_failure_raises_after_max_retries_with_its_kind() -> None:
    with FakeTeacher(lambda key, attempt: "500") as server:
        generator = _client(server.url, max_retries=2)
        with pytest.raises(GenerationError) as info:
            generator.chat([_conv("p1", 0)], GenerationParams())
    assert info.value.kind == "server_error" and info.value.attempts == 3 and not info.value.fatal
    assert len(server.log) == 3


def test_client_errors_are_not_retried_and_auth_errors_are_fatal() -> None:
    with FakeTeacher(lambda key, attempt: "400" if key[0] == "bad" else "401") as server:
        generator = _client(server.url)
        with pytest.raises(GenerationError) as bad:
            generator.chat([_conv("bad", 0)], GenerationParams())
        with pytest.raises(GenerationError) as auth:
            generator.chat([_conv("p1", 0)], GenerationParams())
    assert bad.value.kind == "http_400" and not bad.value.fatal
    assert auth.value.kind == "http_401" and auth.value.fatal
    assert len(server.log) == 2  # one request each, no retries


def test_concurrency_is_bounded_and_answers_stay_in_order() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def schedule(key: tuple[str, int], attempt: int) -> None:
        return None

    with FakeTeacher(schedule, delay=0.1) as server:
        original = server.handle

        def counting(request: BaseHTTPRequestHandler, body: dict) -> None:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            try:
                original(request, body)
            finally:
                with lock:
                    in_flight -= 1

        server.handle = counting  # type: ignore[method-assign]
        generator = _client(server.url, concurrency=3)
        completions = generator.chat([_conv(f"p{i}", i) for i in range(9)], GenerationParams(n=2))
    assert peak == 3
    for i, completion in enumerate(completions):
        assert len(completion.texts) == 2 and all(f"ID=p{i} SOL={i}" in t for t in completion.texts)


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds({"retry-after": future}) <= 31
    assert retry_after_seconds({}) is None and retry_after_seconds({"retry-after": "soon"}) is None


def test_sync_call_works_inside_a_running_event_loop() -> None:
    import asyncio

    async def inside() -> str:
        with FakeTeacher() as server:
            return _client(server.url).chat([_conv("p9", 1)], GenerationParams())[0].texts[0]

    assert "ID=p9 SOL=1" in asyncio.run(inside())


def test_each_prompt_request_carries_its_own_seed() -> None:
    seen: dict[str, object] = {}
    with FakeTeacher() as server:
        original = server.handle

        def recording(request: BaseHTTPRequestHandler, body: dict) -> None:
            found = MARK.search(body["messages"][-1]["content"])
            with server.lock:
                seen[found.group(1) if found else "?"] = body.get("seed", "none")
            original(request, body)

        server.handle = recording  # type: ignore[method-assign]
        generator = _client(server.url)
        conversations = [_conv(f"p{i}", i) for i in range(3)]
        generator.chat(conversations, GenerationParams(seed=5))
        assert seen == {"p0": 5, "p1": 6, "p2": 7}  # seed + i, as the local backends do
        generator.chat(conversations, GenerationParams(seed=5, seeds=(40, 9, 23)))
        assert seen == {"p0": 40, "p1": 9, "p2": 23}
        generator.chat(conversations, GenerationParams())
        assert seen == {"p0": "none", "p1": "none", "p2": "none"}
        with pytest.raises(ValueError, match="2 seeds for 3 prompts"):
            generator.chat(conversations, GenerationParams(seeds=(1, 2)))
