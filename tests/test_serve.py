"""`codeplan serve` over real HTTP with the official openai client and a tiny model."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from codeplan.llm.base import Completion, GenerationParams, UsageStats
from codeplan.llm.hf import HFGenerator
from codeplan.serve import ServeConfig, background_server, create_app


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def served(tiny_causal_lm: Path) -> Iterator[tuple[str, HFGenerator, object]]:
    generator = HFGenerator(str(tiny_causal_lm), batch_size=16)
    app = create_app(generator, "tiny", default_max_tokens=8)
    with background_server(app) as url:
        yield url, generator, app


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)


def test_models_lists_the_served_name(served) -> None:
    url, _, _ = served
    assert [m.id for m in _client(url).models.list().data] == ["tiny"]


def test_chat_completion_returns_n_choices_usage_and_matches_the_backend(served) -> None:
    url, generator, _ = served
    messages = [{"role": "user", "content": "Read the input."}]
    response = _client(url).chat.completions.create(model="tiny", messages=messages, n=3, temperature=0.9,
                                                     max_tokens=6, seed=5, logprobs=True)
    texts = [choice.message.content for choice in response.choices]
    assert len(texts) == 3 and [c.index for c in response.choices] == [0, 1, 2]
    # The server adds nothing of its own: the same request to the backend gives the same texts.
    [direct] = generator.chat([messages], GenerationParams(n=3, temperature=0.9, max_tokens=6, seed=5))
    assert texts == direct.texts
    assert response.usage.prompt_tokens == direct.prompt_tokens
    assert response.usage.completion_tokens == direct.completion_tokens
    logprobs = response.choices[0].logprobs.content
    assert len(logprobs) >= 1 and sum(t.logprob for t in logprobs) == pytest.approx(direct.logprobs[0], abs=1e-4)


def test_completions_take_several_prompts_stop_and_the_default_max_tokens(served) -> None:
    url, generator, _ = served
    client = _client(url)
    response = client.completions.create(model="tiny", prompt=["def add(a, b):\n", "1. Read"], n=2, temperature=0)
    assert len(response.choices) == 4 and [c.index for c in response.choices] == [0, 1, 2, 3]
    assert response.usage.completion_tokens <= 4 * 8  # default_max_tokens of the app
    full = response.choices[0].text
    stop = full[1:3]
    stopped = client.completions.create(model="tiny", prompt="def add(a, b):\n", temperature=0, stop=[stop])
    assert stopped.choices[0].text == full[:full.find(stop)] and stopped.choices[0].finish_reason == "stop"


def test_unknown_model_is_404_and_bad_requests_are_400(served) -> None:
    url, _, _ = served
    client = _client(url)
    with pytest.raises(openai.NotFoundError, match="tiny"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], temperature=5)
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], stream=True,
                                       logprobs=True)


def test_concurrent_requests_are_batched_and_each_keeps_its_seed(served) -> None:
    url, generator, app = served
    state = app.state.codeplan
    client = _client(url)

    def ask(seed: int) -> list[str]:
        response = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Compute"}],
                                                  temperature=1.0, max_tokens=6, seed=seed)
        return [c.message.content for c in response.choices]

    before = state.batches
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(16)))
    assert state.batches - before < 16  # requests that arrived together were decoded together
    # ...and batching did not change what a seed gives.
    alone = [ask(seed) for seed in (0, 9)]
    assert alone == [answers[0], answers[9]]


def test_serve_config_defaults() -> None:
    cfg = ServeConfig(model="m")
    assert (cfg.host, cfg.port) == ("127.0.0.1", 8000)


def test_the_toolkits_openai_backend_reads_completions_and_logprobs_from_serve(served) -> None:
    from codeplan.llm import load_generator

    url, generator, _ = served
    remote = load_generator(f"openai:{url}", model="tiny", logprobs=True)
    params = GenerationParams(n=2, temperature=0.8, max_tokens=5, seed=3)
    [over_http] = remote.generate(["1. Read the input.\n"], params)
    [direct] = generator.generate(["1. Read the input.\n"], params)
    assert over_http.texts == direct.texts
    assert over_http.logprobs == pytest.approx(direct.logprobs, abs=1e-4)
    assert over_http.completion_tokens == direct.completion_tokens and remote.stats.requests == 1


# ---- stream=true ---------------------------------------------------------------------------------

def _by_choice(chunks: list, text_of) -> dict[int, list]:
    out: dict[int, list] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            out.setdefault(choice.index, []).append((text_of(choice), choice.finish_reason))
    return out


def test_chat_stream_adds_up_to_the_plain_answer_with_n_and_usage(served) -> None:
    url, _, _ = served
    client = _client(url)
    ask = dict(model="tiny", messages=[{"role": "user", "content": "Read the input."}], n=2, temperature=0.9,
               max_tokens=12, seed=5)
    plain = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    choices = _by_choice(chunks, lambda choice: choice.delta)
    assert sorted(choices) == [0, 1]
    for i, deltas in choices.items():
        assert deltas[0][0].role == "assistant"  # the role comes first
        assert "".join(d.content or "" for d, _ in deltas) == plain.choices[i].message.content
        assert sum(1 for d, _ in deltas if d.content) > 1  # several chunks, not one at the end
        assert [reason for _, reason in deltas] == [None] * (len(deltas) - 1) + [plain.choices[i].finish_reason]
    assert [c.usage for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage


def test_completion_stream_numbers_prompts_choices_and_respects_stop(served) -> None:
    url, _, _ = served
    client = _client(url)
    ask = dict(model="tiny", prompt=["def add(a, b):\n", "1. Read"], n=2, temperature=0, max_tokens=10)
    plain = client.completions.create(**ask)
    chunks = list(client.completions.create(**ask, stream=True))
    assert {c.object for c in chunks} == {"text_completion"} and all(c.usage is None for c in chunks)
    choices = _by_choice(chunks, lambda choice: choice.text)
    assert sorted(choices) == [0, 1, 2, 3]
    for i, pieces in choices.items():
        assert "".join(text for text, _ in pieces) == plain.choices[i].text
        assert [reason for _, reason in pieces][-1] == plain.choices[i].finish_reason
    full = plain.choices[0].text
    stop = full[2:5]
    stopped = list(client.completions.create(model="tiny", prompt="def add(a, b):\n", temperature=0, max_tokens=10,
                                             stop=[stop], stream=True))
    assert "".join(c.choices[0].text for c in stopped) == full[:full.find(stop)]
    assert stopped[-1].choices[0].finish_reason == "stop"


def test_raw_stream_is_server_sent_events_ending_in_done(served) -> None:
    url, _, _ = served
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Compute"}], "max_tokens": 4, "stream": True}
    response = httpx.post(f"{url}/chat/completions", json=body, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: ") for e in events[:-1])
    first = json.loads(events[0][len("data: "):])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}


class _PausedAfterTheFirstText(HFGenerator):
    """Holds its decode loop still once it has reported text, until the server cancels it (or 10 s
    pass): what the client sees meanwhile was sent while decoding, not after."""

    def generate_tokens(self, prompts, params, seeds=None, on_text=None):  # type: ignore[override]
        if on_text is None:
            return super().generate_tokens(prompts, params, seeds)
        paused = False

        def report(deltas):
            nonlocal paused
            cancelled = on_text(deltas)
            if paused or not any(d.text for d in deltas):
                return cancelled
            paused = True
            deadline = time.monotonic() + 10
            while not cancelled and time.monotonic() < deadline:
                time.sleep(0.01)
                cancelled = on_text([])
            return cancelled
        return super().generate_tokens(prompts, params, seeds, report)


def test_stream_goes_out_while_decoding_and_stops_when_the_client_leaves(served) -> None:
    _, generator, _ = served
    paused = _PausedAfterTheFirstText.from_model(generator.model, generator.tokenizer)
    body = {"model": "tiny", "prompt": "1. Read", "max_tokens": 150, "temperature": 0, "stream": True}
    with background_server(create_app(paused, "tiny")) as url:
        # The greedy answer to this prompt runs to max_tokens when nobody stops it.
        assert _client(url).completions.create(**{**body, "stream": False}).choices[0].finish_reason == "length"
        before = paused.stats.snapshot()
        with httpx.stream("POST", f"{url}/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["text"]:
                    break
            else:
                pytest.fail("no text arrived")
        # The client has hung up mid-stream: the server cancels, and the decode loop ends early.
        deadline = time.monotonic() + 30
        while paused.stats.snapshot()["requests"] == before["requests"] and time.monotonic() < deadline:
            time.sleep(0.02)
    after = paused.stats.snapshot()
    assert after["requests"] == before["requests"] + 1
    assert after["completion_tokens"] - before["completion_tokens"] < 20  # cut short, not decoded to 150


class _FailingAfterAFewSteps(HFGenerator):
    def generate_tokens(self, prompts, params, seeds=None, on_text=None):  # type: ignore[override]
        steps = 0

        def report(deltas):
            nonlocal steps
            steps += 1
            if steps > 3:
                raise RuntimeError("the accelerator fell over")
            return on_text(deltas) if on_text else None
        return super().generate_tokens(prompts, params, seeds, report)


def test_an_error_mid_stream_is_sent_as_an_error_event(served) -> None:
    _, generator, _ = served
    failing = _FailingAfterAFewSteps.from_model(generator.model, generator.tokenizer)
    with background_server(create_app(failing, "tiny")) as url:
        stream = _client(url).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Read"}],
                                                       max_tokens=20, temperature=0, stream=True)
        received = []
        with pytest.raises(openai.APIError, match="fell over"):
            for chunk in stream:
                received.append(chunk)
        assert received and received[0].choices[0].delta.role == "assistant"


class _Canned:
    """A backend that cannot stream (as the OpenAI-compatible proxy and vLLM backends)."""

    name = "canned"

    def __init__(self) -> None:
        self.stats = UsageStats()

    def generate(self, prompts, params):
        return [Completion(texts=[f"{p}!"] * params.n, prompt_tokens=1, completion_tokens=params.n,
                           finish_reasons=["stop"] * params.n) for p in prompts]

    def chat(self, conversations, params):
        return self.generate([c[-1]["content"] for c in conversations], params)


def test_a_backend_that_cannot_stream_sends_each_text_in_one_chunk() -> None:
    with background_server(create_app(_Canned(), "canned")) as url:
        chunks = list(_client(url).chat.completions.create(model="canned", messages=[{"role": "user", "content": "hi"}],
                                                           stream=True, n=2))
    choices = _by_choice(chunks, lambda choice: choice.delta.content)
    assert choices == {i: [("", None), ("hi!", None), (None, "stop")] for i in (0, 1)}
