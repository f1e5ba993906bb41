"""The one interface every generation backend implements."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings of one call.

    Prompt i of a call samples from its own random stream, seeded with `seed + i` (unseeded when
    `seed` is None). `seeds`, when set, gives each prompt its own seed instead: prompt i samples with
    `seeds[i]`, so a caller can make a prompt's texts independent of its position in the call
    (generate derives them from the problem). Its length must match the number of prompts.
    """

    n: int = 1
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.seeds is not None:
            # A list would make the params unhashable (the server groups jobs by them): store a tuple.
            object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    def prompt_seeds(self, count: int) -> list[int | None]:
        """The seed of each of `count` prompts of a call: `seeds`, else `seed + i`."""
        if self.seeds is not None:
            if len(self.seeds) != count:
                raise ValueError(f"GenerationParams.seeds has {len(self.seeds)} seeds for {count} prompts; "
                                 "give one seed per prompt")
            return list(self.seeds)
        return [None if self.seed is None else self.seed + i for i in range(count)]


@dataclass
class Completion:
    """The `n` continuations of one prompt, with token usage and (where the backend has them)
    the summed log-probability of each continuation.

    `logprobs[i]` is the sum over the tokens of `texts[i]` of the model's log-probability of each
    chosen token (the raw distribution, before temperature / top-p), so continuations of different
    prompts can be ranked by likelihood. `token_logprobs` holds the per-token values where known.
    `prompt_tokens` counts the prompt once (as OpenAI's usage does), `completion_tokens` all n texts.
    """

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[float] | None = None
    finish_reasons: list[str] = field(default_factory=list)
    token_logprobs: list[list[float]] | None = None
    tokens: list[list[str]] | None = None  # the token strings behind token_logprobs, where known
    token_ids: list[list[int]] | None = None  # the generated token ids (end-of-sequence excluded), where known


@dataclass(frozen=True)
class TextDelta:
    """New text of one sequence, reported while it is decoded (streaming).

    The deltas of a sequence, concatenated, give its `Completion.texts` entry: text is held back
    while it ends in an incomplete character or could still be the start of a stop string, so
    nothing that a stop string later cuts off is ever reported. The last delta of a sequence
    carries its `finish_reason`.
    """

    prompt: int  # index of the prompt in the call
    index: int  # which of that prompt's n continuations
    text: str
    finish_reason: str | None = None


# Called once per decoding step with that step's deltas (possibly none); may return the indices of
# prompts whose sequences should stop now (their client went away), or None.
OnText = Callable[[list[TextDelta]], Collection[int] | None]


@dataclass
class UsageStats:
    """Running totals a backend keeps over its lifetime (thread-safe): what distill reports."""

    requests: int = 0  # requests sent, retries included
    retries: int = 0
    failures: int = 0  # requests that failed for good (after their retries)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # kind of failure -> count
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, requests: int = 0, retries: int = 0, failures: int = 0, prompt_tokens: int = 0,
            completion_tokens: int = 0, error: str | None = None) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.failures += failures
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            if error:
                self.errors[error] = self.errors.get(error, 0) + 1

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {"requests": self.requests, "retries": self.retries, "failures": self.failures,
                    "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                    "errors": dict(self.errors)}


class TextGenerator(Protocol):
    name: str
    stats: UsageStats

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        """Complete raw prompts; one Completion per prompt, in order."""
        ...

    def chat(self, conversations: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        """Complete chat conversations (lists of {role, content}); one Completion per conversation."""
        ...


def truncate_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string (the stop string itself excluded, as OpenAI does)."""
    cut = min((pos for pos in (text.find(s) for s in stop if s) if pos >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def load_generator(spec: str, **options: object) -> TextGenerator:
    """Build a backend from a spec: `hf:MODEL` (or a bare path / hub id / .gguf / packaged name),
    `openai:BASE_URL` (with `model=`), `vllm:MODEL`, `llamacpp:FILE.gguf` (or a packaged name)."""
    scheme, _, rest = spec.partition(":")
    if scheme == "llamacpp" and rest:
        from codeplan.llm.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(rest, **options)  # type: ignore[arg-type]
    if scheme == "openai" and rest:
        from codeplan.llm.openai_compat import OpenAIGenerator

        return OpenAIGenerator(base_url=rest, **options)  # type: ignore[arg-type]
    if scheme == "vllm" and rest:
        from codeplan.llm.vllm import VLLMGenerator

        return VLLMGenerator(rest, **options)  # type: ignore[arg-type]
    from codeplan.llm.hf import HFGenerator

    return HFGenerator(rest if scheme == "hf" and rest else spec, **options)  # type: ignore[arg-type]
