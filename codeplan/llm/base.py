"""The one interface every generation backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class GenerationParams:
    n: int = 1
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Completion:
    """The `n` continuations of one prompt, with token usage and (where the backend has them)
    the summed log-probability of each continuation."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[float] | None = None
    finish_reasons: list[str] = field(default_factory=list)


class TextGenerator(Protocol):
    name: str

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        """Complete raw prompts; one Completion per prompt, in order."""
        ...

    def chat(self, conversations: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        """Complete chat conversations (lists of {role, content}); one Completion per conversation."""
        ...


def load_generator(spec: str, **options: object) -> TextGenerator:
    """Build a backend from a spec: `hf:MODEL` (or a bare path / hub id / .gguf), `openai:BASE_URL`
    (with `model=`), `vllm:MODEL`."""
    scheme, _, rest = spec.partition(":")
    if scheme == "openai" and rest:
        from codeplan.llm.openai_compat import OpenAIGenerator

        return OpenAIGenerator(base_url=rest, **options)  # type: ignore[arg-type]
    if scheme == "vllm" and rest:
        from codeplan.llm.vllm import VLLMGenerator

        return VLLMGenerator(rest, **options)  # type: ignore[arg-type]
    from codeplan.llm.hf import HFGenerator

    return HFGenerator(rest if scheme == "hf" and rest else spec, **options)  # type: ignore[arg-type]
