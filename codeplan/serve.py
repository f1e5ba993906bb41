"""`codeplan serve`: an OpenAI-compatible HTTP server for a local model (FastAPI + uvicorn).

Routes: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`, `GET /health`.
Requests are queued to one generation thread that batches whatever is waiting (requests with the
same sampling settings decode together, each keeping its own seed), so throughput grows with the
number of clients instead of serialising them one by one. To add a route (e.g. a plan-sampling
mode), write one more `_add_..._routes(app, state)` function and call it in `create_app`; it can
use `state.submit(...)` to reach the model through the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codeplan.config import StageConfig
from codeplan.llm.base import Completion, GenerationParams


class ServeConfig(StageConfig):
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    served_name: str | None = None  # the model id clients send; default: the --model value
    batch_size: int = 16  # sequences decoded together (requests x n)
    dtype: str = "auto"
    device: str | None = None
    default_max_tokens: int = 512  # used when a request gives no max_tokens
    threads: int | None = None  # CPU threads for torch (None: its default); 1 is fastest on a busy CPU
    log_level: str = "info"


# ---- request bodies (unknown OpenAI fields such as `user` or `presence_penalty` are ignored) ------

class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    n: int = Field(1, ge=1, le=128)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False

    def params(self, default_max_tokens: int) -> GenerationParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationParams(n=self.n, temperature=self.temperature, top_p=self.top_p,
                                max_tokens=self.max_completion_tokens or self.max_tokens or default_max_tokens,
                                stop=tuple(s for s in stop if s), seed=self.seed)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = ""

    def text(self) -> str:
        if isinstance(self.content, list):  # the newer "content parts" form: keep its text parts
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool = False


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = None

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt list is empty")
        return value


# ---- the generation queue -----------------------------------------------------------------------

@dataclass
class _Job:
    kind: Literal["chat", "completion"]
    payload: Any  # token ids (HF backend) or the prompt / conversation (any other backend)
    params: GenerationParams
    done: Any  # callable(result: Completion | BaseException)
    enqueued: float = field(default_factory=time.monotonic)


class ServerState:
    """The model behind the routes: a queue and one thread that runs batched generation."""

    def __init__(self, generator: Any, model_name: str, *, default_max_tokens: int = 512) -> None:
        self.generator = generator
        self.model_name = model_name
        self.default_max_tokens = default_max_tokens
        self.created = int(time.time())
        self.batches = 0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        # The HF backend takes token ids and a seed per prompt, so unrelated requests can share a batch.
        self._tokens = all(hasattr(generator, a) for a in ("encode", "encode_chat", "generate_tokens"))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="codeplan-generate", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def submit(self, kind: Literal["chat", "completion"], payload: Any, params: GenerationParams) -> Completion:
        """Queue one prompt or conversation; resolves when its batch is done."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completion] = loop.create_future()

        def done(result: Completion | BaseException) -> None:
            def settle() -> None:
                if future.done():  # the client went away
                    return
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            loop.call_soon_threadsafe(settle)

        if self._tokens:  # tokenise here, off the generation thread
            payload = await asyncio.to_thread(
                self.generator.encode_chat if kind == "chat" else lambda p: self.generator.encode([p])[0], payload)
        self._queue.put(_Job(kind, payload, params, done))
        return await future

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            # Take everything that queued up while the last batch ran: batching adds no waiting.
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                jobs.append(more)
            for group in _groups(jobs, by_seed=not self._tokens):
                self._run(group)

    def _run(self, jobs: list[_Job]) -> None:
        params = jobs[0].params
        try:
            if self._tokens:
                seeds = [j.params.seed for j in jobs]
                results = self.generator.generate_tokens([j.payload for j in jobs], params, seeds=seeds)
            elif jobs[0].kind == "chat":
                results = self.generator.chat([j.payload for j in jobs], params)
            else:
                results = self.generator.generate([j.payload for j in jobs], params)
            self.batches += 1
        except Exception as err:  # reported to each waiting request as a 500
            for j in jobs:
                j.done(err)
            return
        for j, result in zip(jobs, results):
            j.done(result)


def _groups(jobs: list[_Job], *, by_seed: bool) -> list[list[_Job]]:
    """Jobs that can run as one call: same kind (non-token backends) and same sampling settings."""
    groups: dict[tuple[Any, ...], list[_Job]] = {}
    for j in jobs:
        p = j.params
        key = (p.n, p.temperature, p.top_p, p.max_tokens, p.stop, p.seed if by_seed else None,
               j.kind if by_seed else None)
        groups.setdefault(key, []).append(j)
    return list(groups.values())


# ---- the app ------------------------------------------------------------------------------------

def create_app(generator: Any, model_name: str, *, default_max_tokens: int = 512) -> Any:
    """An OpenAI-compatible FastAPI app serving `generator` (any TextGenerator) as `model_name`."""
    from fastapi import FastAPI

    state = ServerState(generator, model_name, default_max_tokens=default_max_tokens)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="codeplan serve", lifespan=lifespan)
    app.state.codeplan = state
    _add_error_handlers(app)
    _add_openai_routes(app, state)
    from codeplan.sampling import add_solve_route  # plan sampling as a service: POST /v1/codeplan/solve
    add_solve_route(app, state)
    return app


class _APIError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> None:
        self.status, self.message, self.kind, self.code = status, message, kind, code
        super().__init__(message)


def _add_error_handlers(app: Any) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    def body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    @app.exception_handler(_APIError)
    async def api_error(_: Request, err: _APIError) -> JSONResponse:
        return JSONResponse(body(err.message, err.kind, err.code), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return JSONResponse(body(f"{where}: {first.get('msg')}", "invalid_request_error"), status_code=400)


def _check(state: ServerState, request: _Sampling) -> GenerationParams:
    if request.model != state.model_name:
        raise _APIError(404, f"model '{request.model}' is not served here; this server has '{state.model_name}'",
                        code="model_not_found")
    if request.stream:
        raise _APIError(400, "stream=true is not supported by codeplan serve; send stream=false")
    return request.params(state.default_max_tokens)


async def _generate(state: ServerState, kind: Literal["chat", "completion"], payload: Any,
                    params: GenerationParams) -> Completion:
    try:
        return await state.submit(kind, payload, params)
    except ValueError as err:
        raise _APIError(400, str(err)) from None
    except Exception as err:
        raise _APIError(500, f"generation failed: {err}", kind="server_error") from None


def _usage(completions: list[Completion]) -> dict[str, int]:
    prompt = sum(c.prompt_tokens for c in completions)
    generated = sum(c.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}


def _add_openai_routes(app: Any, state: ServerState) -> None:
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": state.model_name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": state.model_name, "object": "model", "created": state.created,
                                            "owned_by": "codeplan"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatRequest) -> dict[str, Any]:
        params = _check(state, request)
        conversation = [{"role": m.role, "content": m.text()} for m in request.messages]
        completion = await _generate(state, "chat", conversation, params)
        choices = []
        for i, text in enumerate(completion.texts):
            choice: dict[str, Any] = {"index": i, "message": {"role": "assistant", "content": text},
                                      "finish_reason": completion.finish_reasons[i], "logprobs": None}
            if request.logprobs and completion.token_logprobs is not None:
                tokens = completion.tokens[i] if completion.tokens else [""] * len(completion.token_logprobs[i])
                choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "bytes": None, "top_logprobs": []}
                                                  for t, lp in zip(tokens, completion.token_logprobs[i])]}
            choices.append(choice)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": state.model_name, "choices": choices, "usage": _usage([completion])}

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest) -> dict[str, Any]:
        params = _check(state, request)
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        done = await asyncio.gather(*(_generate(state, "completion", p, params) for p in prompts))
        choices = []
        for completion in done:  # OpenAI numbers the choices of prompt i as i*n .. i*n+n-1
            for i, text in enumerate(completion.texts):
                choice: dict[str, Any] = {"index": len(choices), "text": text,
                                          "finish_reason": completion.finish_reasons[i], "logprobs": None}
                if request.logprobs is not None and completion.token_logprobs is not None:
                    tokens = completion.tokens[i] if completion.tokens else None
                    choice["logprobs"] = {"tokens": tokens, "token_logprobs": completion.token_logprobs[i],
                                          "top_logprobs": None, "text_offset": None}
                choices.append(choice)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": state.model_name, "choices": choices, "usage": _usage(list(done))}


# ---- running it ---------------------------------------------------------------------------------

def serve(cfg: ServeConfig) -> None:
    """Load the model and serve it until interrupted."""
    import uvicorn

    from codeplan.llm.hf import HFGenerator

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    generator = HFGenerator(cfg.model, batch_size=cfg.batch_size, dtype=cfg.dtype, device=cfg.device)
    app = create_app(generator, cfg.served_name or cfg.model, default_max_tokens=cfg.default_max_tokens)
    print(f"serving {cfg.served_name or cfg.model} at http://{cfg.host}:{cfg.port}/v1", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)


@contextlib.contextmanager
def background_server(app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Iterator[str]:
    """Run `app` with uvicorn on a thread; yields its base URL (`http://host:port/v1`). Port 0 picks
    a free port. For tests, benchmarks and notebooks."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on"))
    thread = threading.Thread(target=server.run, name="codeplan-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
