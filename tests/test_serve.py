"""`codeplan serve` over real HTTP with the official openai client and a tiny model."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from codeplan.llm.base import GenerationParams
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
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], stream=True)


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
