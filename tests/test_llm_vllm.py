"""The vLLM backend's calls, against a stand-in `vllm` module with vLLM's `LLM` / `SamplingParams`
interface (keyword names as vLLM spells them, so a misspelt or missing argument fails here), and the
GPU memory split between the two engines of plan sampling with a separate plan model.

vLLM itself needs a GPU and is not installed here; docs/generate.md says what has and has not run."""

from __future__ import annotations

import json
import shutil
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codeplan.errors import SetupError
from codeplan.generate import GenerateConfig, generate
from codeplan.llm import GenerationParams, load_generator
from codeplan.llm import vllm as vllm_backend


class SamplingParams:
    """vLLM's SamplingParams, keyword arguments only, the ones codeplan uses and their vLLM names."""

    def __init__(self, *, n: int = 1, temperature: float = 1.0, top_p: float = 1.0, max_tokens: int | None = 16,
                 stop: list[str] | None = None, seed: int | None = None, logprobs: int | None = None) -> None:
        assert stop is None or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
        self.n, self.temperature, self.top_p, self.max_tokens = n, temperature, top_p, max_tokens
        self.stop, self.seed, self.logprobs = stop, seed, logprobs


@dataclass
class CompletionOutput:  # vLLM's, the fields codeplan reads
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    finish_reason: str | None
    index: int = 0


@dataclass
class RequestOutput:
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)


class Tokenizer:
    def apply_chat_template(self, conversation, *, add_generation_prompt: bool, tokenize: bool) -> str:
        assert add_generation_prompt and not tokenize
        return "".join(f"<{m['role']}>{m['content']}" for m in conversation) + "<assistant>"


class LLM:
    """vLLM's offline engine: `LLM(model=..., **engine_args)`, `generate(prompts, sampling_params, use_tqdm=)`."""

    engines: list["LLM"] = []

    def __init__(self, model: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, **engine_args) -> None:
        assert 0 < gpu_memory_utilization <= 1
        self.model, self.dtype, self.gpu_memory_utilization, self.max_model_len = model, dtype, gpu_memory_utilization, max_model_len
        self.calls: list[tuple[list[str], list[SamplingParams]]] = []
        LLM.engines.append(self)

    def get_tokenizer(self) -> Tokenizer:
        return Tokenizer()

    def generate(self, prompts, sampling_params=None, *, use_tqdm: bool = True, lora_request=None) -> list[RequestOutput]:
        assert isinstance(prompts, list) and all(isinstance(p, str) for p in prompts)
        if isinstance(sampling_params, list):  # vLLM: one per prompt, same length
            assert len(sampling_params) == len(prompts) and all(isinstance(s, SamplingParams) for s in sampling_params)
        self.calls.append((prompts, sampling_params))
        outputs = []
        for prompt, params in zip(prompts, sampling_params):
            samples = [CompletionOutput(text=f"print({i})\nEND more", token_ids=[1, 2, 3], cumulative_logprob=-1.5 * (i + 1),
                                        finish_reason="length", index=i) for i in range(params.n)]
            outputs.append(RequestOutput(prompt=prompt, prompt_token_ids=list(range(len(prompt.split()))), outputs=samples))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    LLM.engines = []
    yield module
    LLM.engines = []


def test_engine_and_sampling_calls_have_vllms_shape(fake_vllm, tiny_causal_lm):
    generator = load_generator(f"vllm:{tiny_causal_lm}")
    engine = LLM.engines[-1]
    assert (engine.model, engine.dtype, engine.gpu_memory_utilization) == (str(tiny_causal_lm), "auto", 0.9)
    params = GenerationParams(n=2, temperature=0.6, top_p=0.95, max_tokens=64, stop=("END",), seed=10)
    completions = generator.generate(["a b c", "d e"], params)
    prompts, sampling = engine.calls[-1]
    assert prompts == ["a b c", "d e"]
    assert [(s.n, s.temperature, s.top_p, s.max_tokens, s.stop, s.seed, s.logprobs) for s in sampling] == [
        (2, 0.6, 0.95, 64, ["END"], 10, 0), (2, 0.6, 0.95, 64, ["END"], 11, 0)]  # a seed per prompt
    first = completions[0]
    assert first.texts == ["print(0)\n", "print(1)\n"]  # cut at the stop string
    assert first.finish_reasons == ["stop", "stop"] and first.logprobs == [-1.5, -3.0]
    assert (first.prompt_tokens, first.completion_tokens) == (3, 6)
    assert generator.stats.completion_tokens == 12
    generator.chat([[{"role": "user", "content": "hi"}]], GenerationParams(max_tokens=8))
    assert engine.calls[-1][0] == ["<user>hi<assistant>"] and engine.calls[-1][1][0].stop is None


def test_engines_of_one_process_share_the_gpu(fake_vllm, tiny_causal_lm):
    first = load_generator(f"vllm:{tiny_causal_lm}", engines=2)
    second = load_generator(f"vllm:{tiny_causal_lm}", engines=2)
    assert [e.gpu_memory_utilization for e in LLM.engines] == [0.45, 0.45]
    # A third engine would push the process past vLLM's 90%: refused before vLLM runs out of memory.
    with pytest.raises(SetupError, match="GPU memory"):
        load_generator(f"vllm:{tiny_causal_lm}")
    assert len(LLM.engines) == 2
    del first, second  # their shares are given back with them
    assert vllm_backend.claimed() == 0
    load_generator(f"vllm:{tiny_causal_lm}")
    assert LLM.engines[-1].gpu_memory_utilization == 0.9


def test_plan_sampling_with_a_separate_plan_model_loads_two_half_size_engines(fake_vllm, tiny_causal_lm, tmp_path):
    model = tmp_path / "student"
    shutil.copytree(tiny_causal_lm, model)
    shutil.copytree(tiny_causal_lm, model / "plan_model")  # as `codeplan train --plan-head` exports it
    out = tmp_path / "samples.jsonl"
    cfg = GenerateConfig(data={"path": "sample", "split": "test", "limit": 2}, model=f"vllm:{model}", out=str(out),
                         strategy="plan-sampling", num_plans=2, codes_per_plan=1, num_samples=1, judge={"timeout": 2.0},
                         progress=False)
    generate(cfg)
    assert sorted(Path(e.model).name for e in LLM.engines) == ["plan_model", "student"]
    assert [e.gpu_memory_utilization for e in LLM.engines] == [0.45, 0.45]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(row["code"] for row in rows)
