"""`codeplan serve`: an OpenAI-compatible HTTP server for a local model (FastAPI + uvicorn).

Routes: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`, `GET /health`, and
`POST /v1/codeplan/solve` (a problem in, a program out: direct, direct-rerank or plan sampling, its
programs judged on the given public tests in the sandbox).
Both completion routes stream (`stream: true`, server-sent events in OpenAI's chunk format) as the
tokens are decoded. Requests are queued to one generation thread that batches whatever is waiting
(requests with the same sampling settings decode together, each keeping its own seed), so
throughput grows with the number of clients instead of serialising them one by one. To add a
route (e.g. a plan-sampling mode), write one more `_add_..._routes(app, state)` function and call
it in `create_app`; it can use `state.submit(...)` to reach the model through the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.background import BackgroundTask

from codeplan.config import BackendConfig, StageConfig
from codeplan.errors import InputError
from codeplan.judge import Judge, JudgeConfig
from codeplan.llm import Completion, GenerationParams, TextDelta, is_server_spec, load_generator
from codeplan.modeling import recorded_prompt_format
from codeplan.problems import Problem, TestCase
from codeplan.selection import SelectionRule
from codeplan.strategies import SamplingConfig, Strategy, solve_problem


class ServeConfig(StageConfig):
    renamed = {"batch_size": "backend.batch_size", "dtype": "backend.dtype", "threads": "backend.threads",
               "device": "backend.device"}

    model: str = Field(description="Model to serve: folder, hub id, .gguf file or packaged name.")
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on.")
    served_name: str | None = Field(None, description="Model id clients send (default: --model).")
    default_max_tokens: int = Field(512, ge=1, description="Used when a request gives no max_tokens.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="uvicorn's log level.")
    backend: BackendConfig = Field(default_factory=BackendConfig)


# ---- request bodies (unknown OpenAI fields such as `user` or `presence_penalty` are ignored) ------

class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


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
    stream_options: StreamOptions | None = None

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
    on_text: Callable[[list[TextDelta]], None] | None = None  # streaming: new text as it is decoded
    cancel: threading.Event = field(default_factory=threading.Event)  # set: its client went away, stop
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
            _call_soon(loop, settle)

        self._queue.put(_Job(kind, await self._encode(kind, payload), params, done))
        return await future

    async def stream(self, kind: Literal["chat", "completion"], payloads: list[Any], params: GenerationParams,
                     cancel: threading.Event | None = None) -> AsyncIterator[tuple[int, list[TextDelta] | Completion]]:
        """Queue prompts (or conversations) and yield `(which payload, event)` while they decode:
        lists of new text as the backend reports it (only the HF backend does), then each one's
        Completion. A generation error is raised. Setting `cancel`, or closing the iterator early,
        stops the decoding of their sequences (the client went away)."""
        cancel = cancel or threading.Event()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, list[TextDelta] | Completion | BaseException]] = asyncio.Queue()
        jobs: list[_Job] = []
        for source, payload in enumerate(payloads):
            def post(item: Any, source: int = source) -> None:
                _call_soon(loop, events.put_nowait, (source, item))
            jobs.append(_Job(kind, await self._encode(kind, payload), params, done=post, on_text=post, cancel=cancel))
        for job in jobs:
            self._queue.put(job)
        try:
            left = len(jobs)
            while left:
                source, item = await events.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Completion):
                    left -= 1
                yield source, item
        finally:
            cancel.set()  # harmless once they are done; stops them when the client has gone

    async def _encode(self, kind: Literal["chat", "completion"], payload: Any) -> Any:
        if not self._tokens:
            return payload
        # Tokenise here, off the generation thread.
        return await asyncio.to_thread(
            self.generator.encode_chat if kind == "chat" else lambda p: self.generator.encode([p])[0], payload)

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
        jobs = [j for j in jobs if not j.cancel.is_set()]  # streams whose client left while they queued
        if not jobs:
            return
        params = jobs[0].params
        try:
            if self._tokens:
                seeds = [j.params.seed for j in jobs]
                # Only a batch with a streaming request pays for decoding text at every step.
                streaming = {"on_text": _fan_out(jobs)} if any(j.on_text for j in jobs) else {}
                results = self.generator.generate_tokens([j.payload for j in jobs], params, seeds=seeds, **streaming)
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


def _fan_out(jobs: list[_Job]) -> Callable[[list[TextDelta]], set[int]]:
    """The generator's `on_text` for one batch: each job gets its own deltas; cancelled jobs stop."""
    def on_text(deltas: list[TextDelta]) -> set[int]:
        mine: dict[int, list[TextDelta]] = {}
        for delta in deltas:
            mine.setdefault(delta.prompt, []).append(delta)
        for prompt, some in mine.items():
            report = jobs[prompt].on_text
            if report is not None:
                report(some)
        return {prompt for prompt, job in enumerate(jobs) if job.cancel.is_set()}
    return on_text


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Hand a result to the request's event loop from the generation thread; a loop that has closed
    (server shutting down) must not take the generation thread down with it."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


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

def create_app(generator: Any, model_name: str, *, default_max_tokens: int = 512, chat_template: bool = False) -> Any:
    """An OpenAI-compatible FastAPI app serving `generator` (any TextGenerator) as `model_name`.
    `chat_template`: the solve route sends its prompts as chat turns (a student trained that way)."""
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
    _add_solve_route(app, state, chat_template)
    return app


class _APIError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> None:
        self.status, self.message, self.kind, self.code = status, message, kind, code
        super().__init__(message)


def _add_error_handlers(app: Any) -> None:

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
    return request.params(state.default_max_tokens)


async def _generate(state: ServerState, kind: Literal["chat", "completion"], payload: Any,
                    params: GenerationParams) -> Completion:
    try:
        return await state.submit(kind, payload, params)
    except ValueError as err:
        raise _APIError(400, str(err)) from None
    except Exception as err:
        raise _APIError(500, f"generation failed: {err}", kind="server_error") from None


async def _stream(state: ServerState, kind: Literal["chat", "completion"], payloads: list[Any],
                  params: GenerationParams, request: _Sampling) -> Any:
    """A `text/event-stream` response that sends the text of each choice as it is decoded."""

    cancel = threading.Event()
    events = state.stream(kind, payloads, params, cancel)
    try:  # wait for the first event, so a request the model cannot take still gets a plain 400 / 500
        first = await anext(events)
    except ValueError as err:
        raise _APIError(400, str(err)) from None
    except Exception as err:
        raise _APIError(500, f"generation failed: {err}", kind="server_error") from None
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    chunks = _Chunks(kind, state.model_name, params.n, include_usage=include_usage)
    # The background task runs once the response ends, also when the client hung up mid-stream.
    return StreamingResponse(chunks.sse(first, events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"}, background=BackgroundTask(cancel.set))


class _Chunks:
    """One streamed response in OpenAI's chunk format (`data: {json}` events, then `data: [DONE]`).

    Each chunk carries one choice, as OpenAI's do; choice `i` of payload `s` is numbered `s*n + i`.
    Chat opens every choice with a `role` delta; a choice's last chunk has an empty delta (text) and
    its `finish_reason`. With `include_usage`, every chunk has `usage: null` and one more chunk with
    no choices carries the usage of the whole request."""

    def __init__(self, kind: Literal["chat", "completion"], model: str, n: int, *, include_usage: bool) -> None:
        self.chat = kind == "chat"
        self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.object = "chat.completion.chunk" if self.chat else "text_completion"
        self.created = int(time.time())
        self.model, self.n, self.include_usage = model, n, include_usage
        self.sent: dict[int, int] = {}  # choice -> characters sent
        self.finished: set[int] = set()
        self.completions: list[Completion] = []

    async def sse(self, first: tuple[int, list[TextDelta] | Completion],
                  events: AsyncIterator[tuple[int, list[TextDelta] | Completion]]) -> AsyncIterator[str]:
        if self.chat:
            for i in range(self.n):
                yield self._chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                    "finish_reason": None}])
        try:
            for text in self._handle(*first):
                yield text
            async for source, item in events:
                for text in self._handle(source, item):
                    yield text
        except Exception as err:  # the response has started: the error goes out as an event
            message = str(err) if isinstance(err, ValueError) else f"generation failed: {err}"
            kind = "invalid_request_error" if isinstance(err, ValueError) else "server_error"
            yield f"data: {json.dumps({'error': {'message': message, 'type': kind, 'param': None, 'code': None}})}\n\n"
        else:
            if self.include_usage:
                yield self._chunk([], usage=_usage(self.completions))
        yield "data: [DONE]\n\n"

    def _handle(self, source: int, item: list[TextDelta] | Completion) -> list[str]:
        if isinstance(item, Completion):  # whatever was not streamed yet (all of it for other backends)
            self.completions.append(item)
            pieces = [(j, text[self.sent.get(source * self.n + j, 0):], reason)
                      for j, (text, reason) in enumerate(zip(item.texts, item.finish_reasons))]
        else:
            pieces = [(d.index, d.text, d.finish_reason) for d in item]
        out: list[str] = []
        for j, text, reason in pieces:
            i = source * self.n + j
            if i in self.finished:
                continue
            if text:
                out.append(self._chunk([self._choice(i, text, None)]))
                self.sent[i] = self.sent.get(i, 0) + len(text)
            if reason:
                out.append(self._chunk([self._choice(i, "", reason)]))
                self.finished.add(i)
        return out

    def _choice(self, index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
        if self.chat:
            return {"index": index, "delta": {"content": text} if text else {}, "logprobs": None,
                    "finish_reason": finish_reason}
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        body: dict[str, Any] = {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                                "choices": choices}
        if self.include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"


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
    async def chat_completions(request: ChatRequest) -> Any:
        params = _check(state, request)
        conversation = [{"role": m.role, "content": m.text()} for m in request.messages]
        if request.stream:
            if request.logprobs:
                raise _APIError(400, "logprobs are not available with stream=true; send one or the other")
            return await _stream(state, "chat", [conversation], params, request)
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
    async def completions(request: CompletionRequest) -> Any:
        params = _check(state, request)
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        if request.stream:
            if request.logprobs is not None:
                raise _APIError(400, "logprobs are not available with stream=true; send one or the other")
            return await _stream(state, "completion", prompts, params, request)
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


# ---- plan sampling as a service: POST /v1/codeplan/solve --------------------------------------


class _QueuedGenerator:
    """Sends a solve request's prompts through the server's batching queue (the model has one
    owner thread), each prompt as its own job so that concurrent requests batch together."""

    def __init__(self, state: Any, loop: Any, chat_template: bool) -> None:
        self.state, self.loop, self.name, self.chat_template = state, loop, state.model_name, chat_template

    def generate(self, prompts: list[str], params: Any) -> list[Any]:
        # Each job carries its prompt's own seed (params.seeds[i], else seed + i): the queue may batch
        # it with other requests' prompts, and a job's seed is what decides its texts there. A student
        # trained with its chat template gets each prompt as one user turn, as generate sends it.
        kind = "chat" if self.chat_template else "completion"
        futures = [asyncio.run_coroutine_threadsafe(
            self.state.submit(kind, [{"role": "user", "content": prompt}] if self.chat_template else prompt,
                              replace(params, seed=seed, seeds=None)), self.loop)
            for prompt, seed in zip(prompts, params.prompt_seeds(len(prompts)))]
        return [future.result() for future in futures]


class SolveRequest(BaseModel):
    """Body of POST /v1/codeplan/solve."""

    model_config = ConfigDict(extra="forbid")

    statement: str = Field(min_length=1)
    starter_code: str = ""
    kind: Literal["stdin", "call", "assert"] | None = None  # default: call with starter code, else stdin
    entry_point: str | None = None
    public_tests: list[TestCase] = Field(default_factory=list)
    strategy: Strategy = "plan-sampling"
    num_plans: int = Field(4, ge=1, le=64)
    codes_per_plan: int = Field(4, ge=1, le=64)
    num_samples: int = Field(1, ge=1, le=64)
    selection: SelectionRule = "pass-share"
    final: Literal["rewrite", "best-judged"] = "rewrite"
    budget: int | None = Field(None, ge=1, le=1024)  # programs per problem; direct-rerank needs it
    plan_max_tokens: int = Field(256, ge=1)
    code_max_tokens: int = Field(512, ge=1)
    seed: int = 0
    return_plan: bool = False


def _add_solve_route(app: Any, state: Any, chat_template: bool) -> None:
    """Register POST /v1/codeplan/solve: a problem statement (+ starter code, + public example
    tests) in, the final program out, and the chosen plan with its scores when asked."""
    class _RequestJudge:
        """A sandboxed judge pool for one request's programs (started only when there are some)."""

        def run(self, tasks: list[Any]) -> list[Any]:
            with Judge(JudgeConfig(workers=min(4, max(1, len(tasks))))) as judge:
                return judge.run(tasks)

    @app.post("/v1/codeplan/solve")
    async def solve(request: SolveRequest) -> dict[str, Any]:
        kind = request.kind or ("call" if request.starter_code.strip() else "stdin")
        try:
            problem = Problem(id="request", statement=request.statement, starter_code=request.starter_code, kind=kind,
                              entry_point=request.entry_point, public_tests=request.public_tests)
        except ValueError as err:
            raise HTTPException(status_code=400, detail=str(err)) from None
        try:
            cfg = SamplingConfig(strategy=request.strategy, num_plans=request.num_plans,
                                 codes_per_plan=request.codes_per_plan, num_samples=request.num_samples,
                                 selection=request.selection, final=request.final, budget=request.budget,
                                 plan_max_tokens=request.plan_max_tokens, code_max_tokens=request.code_max_tokens,
                                 seed=request.seed)
        except ValidationError as err:  # e.g. a budget the strategy's numbers do not add up to
            raise HTTPException(status_code=400, detail=err.errors()[0]["msg"].removeprefix("Value error, ")) from None
        generator = _QueuedGenerator(state, asyncio.get_running_loop(), chat_template)
        answer = await asyncio.to_thread(solve_problem, problem, cfg, generator, _RequestJudge())
        answer["model"] = state.model_name
        if not request.return_plan:
            for key in ("plan", "plans", "selection"):
                answer.pop(key, None)
        return answer


# ---- running it ---------------------------------------------------------------------------------

def serve(cfg: ServeConfig) -> None:
    """Load the model and serve it until interrupted."""
    if is_server_spec(cfg.model):
        raise InputError("serve a local model (folder, hub id, .gguf): an openai:URL model is a server already",
                         path="command line", field="model")
    generator = load_generator(cfg.model, cfg.backend)
    # The solve route asks the student as it was trained (train_summary.json, or an exported GGUF's record).
    chat_template = bool((recorded_prompt_format(cfg.model) or {}).get("chat_template", False))
    app = create_app(generator, cfg.served_name or cfg.model, default_max_tokens=cfg.default_max_tokens,
                     chat_template=chat_template)
    print(f"serving {cfg.served_name or cfg.model} at http://{cfg.host}:{cfg.port}/v1", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)


@contextlib.contextmanager
def background_server(app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Iterator[str]:
    """Run `app` with uvicorn on a thread; yields its base URL (`http://host:port/v1`). Port 0 picks
    a free port. For tests, benchmarks and notebooks."""
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
