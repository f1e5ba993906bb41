"""Any OpenAI-compatible server (a hosted API, vLLM, SGLang, llama.cpp, `codeplan serve`).

Built on the official `openai` client (AsyncOpenAI), with its own retries switched off: the retry
loop here honours Retry-After, counts every attempt, and treats a 200 response without usable
choices as a failure to retry, which the client's retries would not do.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from codeplan.errors import SetupError
from codeplan.llm.base import Completion, GenerationParams, UsageStats
from codeplan.sanitize import truncate_at_stop

T = TypeVar("T")


class GenerationError(Exception):
    """A request that failed for good. `kind` names the last failure (timeout, rate_limited,
    server_error, connection, bad_response, http_4xx); `fatal` marks failures no other request
    will escape either (bad key, unknown model), so a caller should stop rather than go on."""

    def __init__(self, kind: str, message: str, *, attempts: int = 1, fatal: bool = False) -> None:
        self.kind = kind
        self.attempts = attempts
        self.fatal = fatal
        super().__init__(f"{kind}: {message}" + (f" (after {attempts} attempts)" if attempts > 1 else ""))


class BadResponse(Exception):
    """A 200 response that carries no usable completion (garbage body, no choices, no content)."""


class OpenAIGenerator:
    """Chat and text completions on an OpenAI-compatible server, `concurrency` requests at a time.

    Sync `generate` / `chat` serve the rest of the toolkit; `agenerate` / `achat` and the one-request
    `acomplete_one` / `achat_one` serve asyncio callers (distill).

    Seeds, as in the other backends: prompt i of a call is one request, sent with `params.seeds[i]`
    when the params carry per-prompt seeds, else `params.seed + i` (no seed when `seed` is None). A
    one-request call sends `params.seed`. How far a seed makes a server repeat itself is up to the server.
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout: float = 120.0, max_retries: int = 6, backoff_base: float = 1.0, backoff_max: float = 60.0,
                 retry_after_max: float = 300.0, logprobs: bool = False) -> None:
        try:
            import openai  # noqa: F401
        except ImportError:  # pragma: no cover - a dependency of the project
            raise SetupError("the openai package is missing: pip install openai") from None
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{self.base_url}#{model}"
        # Local servers need no key; the client insists on one, so give it a placeholder.
        self.api_key = os.environ.get(api_key_env) or "not-needed"
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.logprobs = logprobs
        self.stats = UsageStats()
        # An httpx async client belongs to the event loop it was first used on: one per loop.
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary())

    # ---- sync interface -----------------------------------------------------------------------

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        return _run_sync(lambda: self._closing(self.agenerate(prompts, params)))

    def chat(self, conversations: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        return _run_sync(lambda: self._closing(self.achat(conversations, params)))

    # ---- async interface ----------------------------------------------------------------------

    async def agenerate(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        return list(await asyncio.gather(*(self.acomplete_one(p, one)
                                           for p, one in zip(prompts, _per_prompt(params, len(prompts))))))

    async def achat(self, conversations: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        return list(await asyncio.gather(*(self.achat_one(c, one)
                                           for c, one in zip(conversations, _per_prompt(params, len(conversations))))))

    async def achat_one(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion:
        client, _ = self._client()
        kwargs = self._request(params) | {"messages": messages}
        if self.logprobs:
            kwargs["logprobs"] = True
        return await self._with_retries(lambda: client.chat.completions.create(**kwargs), params, chat=True)

    async def acomplete_one(self, prompt: str, params: GenerationParams) -> Completion:
        client, _ = self._client()
        kwargs = self._request(params) | {"prompt": prompt}
        if self.logprobs:
            kwargs["logprobs"] = 1
        return await self._with_retries(lambda: client.completions.create(**kwargs), params, chat=False)

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (open connections otherwise linger)."""
        entry = self._per_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].close()

    # ---- internals ----------------------------------------------------------------------------

    def _client(self) -> tuple[Any, asyncio.Semaphore]:
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        entry = self._per_loop.get(loop)
        if entry is None:
            import httpx

            # Enough pooled connections for every request in flight, so none waits for a socket.
            limits = httpx.Limits(max_connections=self.concurrency + 4, max_keepalive_connections=self.concurrency + 4)
            client = AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=self.timeout,
                                 http_client=httpx.AsyncClient(limits=limits, timeout=self.timeout))
            entry = (client, asyncio.Semaphore(self.concurrency))
            self._per_loop[loop] = entry
        return entry

    async def _closing(self, work: Awaitable[T]) -> T:
        try:
            return await work
        finally:
            await self.aclose()

    def _request(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "n": params.n, "temperature": params.temperature,
                                  "top_p": params.top_p, "max_tokens": params.max_tokens}
        if params.stop:
            kwargs["stop"] = list(params.stop)
        seed = params.prompt_seeds(1)[0]  # one request, one prompt: seeds (of length 1) or seed
        if seed is not None:
            kwargs["seed"] = seed
        return kwargs

    async def _with_retries(self, send: Callable[[], Awaitable[Any]], params: GenerationParams, *, chat: bool) -> Completion:
        _, semaphore = self._client()
        attempt = 0
        while True:
            async with semaphore:
                self.stats.add(requests=1, retries=1 if attempt else 0)
                try:
                    response = await send()
                    completion = _parse(response, params, chat=chat)
                    self.stats.add(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)
                    return completion
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # classified below; anything unknown is not retried
                    kind, retryable, wait_hint = classify(err)
                    self.stats.add(error=kind)
                    fatal = kind in ("http_401", "http_403", "http_404")
                    if not retryable or attempt >= self.max_retries:
                        self.stats.add(failures=1)
                        raise GenerationError(kind, _describe(err), attempts=attempt + 1, fatal=fatal) from err
            # Sleep outside the semaphore: a waiting retry does not hold a slot others could use.
            await asyncio.sleep(self._delay(attempt, wait_hint))
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** attempt)
        return ceiling * (0.5 + random.random() / 2)  # jitter: clients that failed together retry apart


def _per_prompt(params: GenerationParams, count: int) -> list[GenerationParams]:
    """The params of each of `count` requests of one call, each with its prompt's own seed."""
    return [replace(params, seed=seed, seeds=None) for seed in params.prompt_seeds(count)]


def classify(err: BaseException) -> tuple[str, bool, float | None]:
    """(kind, retry?, seconds the server asked us to wait) for one failed request."""
    import openai

    if isinstance(err, BadResponse):
        return "bad_response", True, None
    if isinstance(err, openai.APITimeoutError):  # a subclass of APIConnectionError: test it first
        return "timeout", True, None
    if isinstance(err, openai.APIConnectionError):
        return "connection", True, None
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        wait = retry_after_seconds(err.response.headers) if err.response is not None else None
        if status == 429:
            return "rate_limited", True, wait
        if status >= 500:
            return "server_error", True, wait
        return f"http_{status}", status in (408, 409), wait
    if isinstance(err, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, TypeError,
                        AttributeError, KeyError)):
        return "bad_response", True, None
    return type(err).__name__, False, None


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` given as seconds or as an HTTP date."""
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000.0
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            return max(0.0, parsed.timestamp() - time.time())
    except (TypeError, ValueError, AttributeError):
        return None


def _parse(response: Any, params: GenerationParams, *, chat: bool) -> Completion:
    """Turn a response into a Completion, or raise BadResponse when it carries no usable text."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise BadResponse("response has no choices")
    if len(choices) < params.n:
        raise BadResponse(f"asked for {params.n} choices, got {len(choices)}")
    texts: list[str] = []
    reasons: list[str] = []
    sums: list[float] = []
    have_logprobs = True
    for choice in sorted(choices, key=lambda c: getattr(c, "index", 0) or 0)[:params.n]:
        text = choice.message.content if chat else choice.text
        if not isinstance(text, str):
            raise BadResponse("a choice has no text")
        text, stopped = truncate_at_stop(text, params.stop)
        texts.append(text)
        reasons.append("stop" if stopped else str(choice.finish_reason or "stop"))
        total = _logprob_sum(getattr(choice, "logprobs", None), chat=chat)
        have_logprobs = have_logprobs and total is not None
        sums.append(total or 0.0)
    usage = getattr(response, "usage", None)
    return Completion(texts=texts, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                      completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                      logprobs=sums if have_logprobs else None, finish_reasons=reasons)


def _logprob_sum(logprobs: Any, *, chat: bool) -> float | None:
    if logprobs is None:
        return None
    if chat:
        content = getattr(logprobs, "content", None)
        return None if content is None else float(sum(item.logprob for item in content))
    values = getattr(logprobs, "token_logprobs", None)
    return None if values is None else float(sum(v for v in values if v is not None))


def _describe(err: BaseException) -> str:
    text = str(err).strip().replace("\n", " ")
    return (text[:300] + "...") if len(text) > 300 else (text or type(err).__name__)


def _run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, also when the caller already runs an event loop (then on a
    helper thread, since a loop cannot be re-entered)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
