"""Text generation behind one small interface (llm/base.py); one module per backend, and the factory.

    generator = load_generator("hf:path/or/id")            # local transformers model, batched
    generator = load_generator("openai:http://host:8000/v1", model="name")   # any OpenAI-compatible server
    texts = generator.generate(["prompt", ...], GenerationParams(n=4, temperature=0.6))

Spec schemes: `hf:MODEL` (also a bare hub id, folder, .gguf or packaged name), `openai:BASE_URL`,
`vllm:MODEL`, `llamacpp:FILE.gguf` (or a packaged name). The backends are imported inside `load_generator`, on purpose: each pulls in a heavy
library (torch, openai, vllm) that a user of another backend may not have or want to load.
"""

from __future__ import annotations

from typing import Any

from codeplan.config import BackendConfig
from codeplan.llm.base import Completion, GenerationParams, OnText, TextDelta, TextGenerator, UsageStats

__all__ = ["BackendConfig", "Completion", "GenerationParams", "OnText", "TextDelta", "TextGenerator", "UsageStats",
           "is_server_spec", "load_generator"]


def is_server_spec(spec: str) -> bool:
    """True for a model behind an OpenAI-compatible server (its settings are the server's business)."""
    return spec.startswith("openai:")


def load_generator(spec: str, backend: BackendConfig | None = None, engines: int = 1, **options: Any) -> TextGenerator:
    """Build the backend a spec names. `backend` (batch size, dtype, threads, device) applies to
    local models; `options` go to the backend's constructor and win over `backend` (e.g. `model=`
    and `logprobs=` for a server, `batch_size=` in a test). `engines`: how many models this process
    loads on the GPU (vLLM splits its memory between them)."""
    scheme, _, rest = spec.partition(":")
    if scheme == "openai" and rest:
        from codeplan.llm.openai_compat import OpenAIGenerator

        return OpenAIGenerator(base_url=rest, **options)
    backend = backend or BackendConfig()
    if backend.threads:
        import torch

        torch.set_num_threads(backend.threads)
    if scheme == "llamacpp" and rest:  # a GGUF file on llama.cpp (extra `cpu`)
        from codeplan.llm.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(rest, **({"batch_size": backend.batch_size, "n_threads": backend.threads,
                                           "dtype": backend.dtype, "device": backend.device} | options))
    if scheme == "vllm" and rest:
        from codeplan.llm.vllm import VLLMGenerator

        return VLLMGenerator(rest, **({"dtype": backend.dtype, "engines": engines} | options))
    from codeplan.llm.hf import HFGenerator

    local = {"batch_size": backend.batch_size, "dtype": backend.dtype, "device": backend.device} | options
    return HFGenerator(rest if scheme == "hf" and rest else spec, **local)
