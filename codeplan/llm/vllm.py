"""vLLM in-process (optional extra `pip install codeplan[vllm]`, needs a GPU): the fastest local
backend where it is installed. The same interface as the others.

GPU memory: each vLLM engine pre-allocates `gpu_memory_utilization` of the GPU's memory (weights
plus KV cache). Engines in one process share the GPU, so `engines` = how many this process will
hold (generate's separate plan model makes two) splits vLLM's default 0.9 between them; the engines
alive in the process may together claim at most `MEMORY_BUDGET`, and one more is refused with a
SetupError before vLLM fails on a full GPU.
"""

from __future__ import annotations

import weakref
from typing import Any

from codeplan.errors import SetupError
from codeplan.llm.base import Completion, GenerationParams, UsageStats
from codeplan.sanitize import truncate_at_stop


MEMORY_BUDGET = 0.9  # vLLM's default gpu_memory_utilization for one engine: all engines of a process share it
_claimed: dict[int, float] = {}  # id(generator) -> its share, while the generator lives


def claimed() -> float:
    """The share of GPU memory the live engines of this process have claimed."""
    return sum(_claimed.values())


class VLLMGenerator:
    def __init__(self, model_spec: str, *, dtype: str = "auto", gpu_memory_utilization: float | None = None,
                 engines: int = 1, max_model_len: int | None = None, **engine_options: Any) -> None:
        share = gpu_memory_utilization or round(MEMORY_BUDGET / max(1, engines), 4)
        if claimed() + share > MEMORY_BUDGET + 1e-9:
            raise SetupError(f"a vLLM engine for {model_spec} would claim {share:.0%} of GPU memory, and the engines "
                             f"already in this process hold {claimed():.0%} (at most {MEMORY_BUDGET:.0%} in all): "
                             "load them with engines=N, or set gpu_memory_utilization for each")
        try:
            from vllm import LLM
        except ImportError:
            raise SetupError("the vllm backend needs the optional extra: pip install 'codeplan[vllm]' "
                             "(or use hf:MODEL, or serve the model with vLLM and use openai:URL)") from None
        from codeplan.modeling import resolve_model_source

        source, _ = resolve_model_source(model_spec)  # a .gguf or packaged name becomes its HF folder
        self.name = model_spec
        self.stats = UsageStats()
        self.gpu_memory_utilization = share
        self.llm = LLM(model=source, dtype=dtype, gpu_memory_utilization=share,
                       max_model_len=max_model_len, **engine_options)
        _claimed[id(self)] = share
        weakref.finalize(self, _claimed.pop, id(self), None)

    def _sampling(self, params: GenerationParams, seed: int | None) -> Any:
        from vllm import SamplingParams

        return SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                              max_tokens=params.max_tokens, stop=list(params.stop) or None, seed=seed, logprobs=0)

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        # Each prompt its own seed (params.seeds[i], else seed + i), as in the HF backend, so its
        # samples do not depend on its neighbours.
        sampling = [self._sampling(params, seed) for seed in params.prompt_seeds(len(prompts))]
        return [self._completion(out, params) for out in self.llm.generate(prompts, sampling, use_tqdm=False)]

    def chat(self, conversations: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        tokenizer = self.llm.get_tokenizer()
        prompts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
        return self.generate(prompts, params)

    def _completion(self, out: Any, params: GenerationParams) -> Completion:
        texts, reasons, sums = [], [], []
        for sample in out.outputs:
            text, stopped = truncate_at_stop(sample.text, params.stop)
            texts.append(text)
            reasons.append("stop" if stopped or sample.finish_reason == "stop" else "length")
            sums.append(float(sample.cumulative_logprob or 0.0))
        prompt_tokens = len(out.prompt_token_ids or [])
        completion_tokens = sum(len(sample.token_ids) for sample in out.outputs)
        self.stats.add(requests=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return Completion(texts=texts, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          logprobs=sums, finish_reasons=reasons)
