"""Local generation with a transformers model: batched, seeded, stop strings, log-probs.

The n continuations of a prompt share one prefill: the prompt is encoded once (decoder-only: its
KV cache; encoder-decoder: its encoder states) and the result is repeated n times before decoding.
Plan sampling asks for M programs per plan prompt, so this saves M-1 prefills of a long prompt.

The decode loop is written here rather than calling `model.generate`, because `generate` cannot
share one prefill between `num_return_sequences` rows of a decoder-only model, and because ranking
plans needs the raw log-probability of each chosen token, which it only gives by keeping every
step's full-vocabulary scores in memory.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from codeplan.llm.base import Completion, GenerationParams, OnText, TextDelta, UsageStats
from codeplan.sanitize import truncate_at_stop


@dataclass
class _Row:
    """One sequence being decoded: which prompt it continues and what it has produced."""

    prompt: int
    tokens: list[int]
    logprobs: list[float]
    finish: str | None = None


class HFGenerator:
    """Generate with a local Hugging Face model (hub id, folder, .gguf, or a packaged name).

    `batch_size` is the number of sequences decoded together (prompts x n); a prompt's n
    continuations always stay in one batch so they can share its prefill.
    """

    def __init__(self, model_spec: str, *, batch_size: int = 16, dtype: str = "auto", device: str | None = None,
                 max_prompt_tokens: int | None = None) -> None:
        from codeplan.modeling import load_model, load_tokenizer

        model = load_model(model_spec, dtype=dtype, device=device)
        tokenizer = load_tokenizer(model_spec)
        self._setup(model, tokenizer, name=model_spec, batch_size=batch_size, max_prompt_tokens=max_prompt_tokens)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, name: str = "in-memory", batch_size: int = 16,
                   max_prompt_tokens: int | None = None) -> "HFGenerator":
        """Wrap a model already in memory (training code, tests)."""
        self = cls.__new__(cls)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._setup(model, tokenizer, name=name, batch_size=batch_size, max_prompt_tokens=max_prompt_tokens)
        return self

    def _setup(self, model: Any, tokenizer: Any, *, name: str, batch_size: int, max_prompt_tokens: int | None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.stats = UsageStats()
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.max_positions = _max_positions(model.config)
        self.max_prompt_tokens = max_prompt_tokens
        # One model, one decode at a time: callers on several threads (the server) queue here.
        self.lock = threading.Lock()

    # ---- public interface ---------------------------------------------------------------------

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        """Complete raw prompts (tokenised as in training: the tokenizer's own special tokens)."""
        return self.generate_tokens(self.encode(prompts), params)

    def chat(self, conversations: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        """Complete conversations through the tokenizer's chat template (a plain transcript where
        the tokenizer has none)."""
        return self.generate_tokens([self.encode_chat(c) for c in conversations], params)

    def encode(self, prompts: list[str]) -> list[list[int]]:
        return [self.tokenizer(p)["input_ids"] for p in prompts]

    def encode_chat(self, conversation: list[dict[str, str]]) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        transcript = "".join(f"{m['role']}: {m['content']}\n" for m in conversation) + "assistant: "
        return self.tokenizer(transcript)["input_ids"]

    def generate_tokens(self, prompts: list[list[int]], params: GenerationParams,
                        seeds: list[int | None] | None = None, on_text: OnText | None = None) -> list[Completion]:
        """Complete tokenised prompts. Prompt i samples from its own random stream, seeded with
        `seeds[i]` (default `params.seeds[i]`, else `params.seed + i`), so its texts do not depend
        on how prompts are batched: the server batches unrelated requests and each keeps its own seed.

        `on_text` (streaming) is called after every decoding step with the new text of each
        sequence (`TextDelta`s, prompts numbered as in `prompts`); the prompts it returns stop
        decoding at once (finish reason `cancelled`). Without it nothing extra is decoded."""
        if params.n < 1:
            raise ValueError("n must be at least 1")
        if seeds is None:
            seeds = params.prompt_seeds(len(prompts))
        elif len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
        per_batch = max(1, self.batch_size // params.n)
        # Longest first: similar lengths share a batch, so little padding is computed.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Completion | None] = [None] * len(prompts)
        with self.lock:
            for start in range(0, len(order), per_batch):
                chunk = order[start:start + per_batch]
                done = self._generate_batch([prompts[i] for i in chunk], params, [seeds[i] for i in chunk],
                                            _renumbered(on_text, chunk) if on_text else None)
                for i, completion in zip(chunk, done):
                    results[i] = completion
        return [r for r in results if r is not None]

    # ---- decoding -----------------------------------------------------------------------------

    def _generate_batch(self, prompts: list[list[int]], params: GenerationParams,
                        seeds: list[int | None], on_text: OnText | None = None) -> list[Completion]:
        import torch

        prompts = [self._fit(p, params.max_tokens) for p in prompts]
        max_new = params.max_tokens
        if self.max_positions and not self.is_encoder_decoder:
            max_new = max(1, min(max_new, self.max_positions - max(len(p) for p in prompts)))
        generators = [_generator(seed, self.device) for seed in seeds]
        with torch.inference_mode():
            state = self._start(prompts, params.n, max_new)
            rows = [_Row(prompt=i, tokens=[], logprobs=[]) for i in range(len(prompts)) for _ in range(params.n)]
            active = list(range(len(rows)))
            streams = [_TextStream(self.tokenizer, params.stop) for _ in rows] if on_text else None
            logits = state.first_logits()
            for step in range(max_new):
                chosen, chosen_logprobs = _sample(logits, params, [rows[r].prompt for r in active], generators)
                finished: list[int] = []
                # One device-to-host copy per step (not one per row: each would sync a GPU).
                tokens_now, logprobs_now = chosen.tolist(), chosen_logprobs.tolist()
                for k, r in enumerate(active):
                    row = rows[r]
                    token = tokens_now[k]
                    if token in self.eos_ids:
                        row.finish = "stop"
                    else:
                        row.tokens.append(token)
                        row.logprobs.append(logprobs_now[k])
                        if params.stop and self._hit_stop(row.tokens, params.stop):
                            row.finish = "stop"
                        elif step == max_new - 1:
                            row.finish = "length"
                    if row.finish:
                        finished.append(k)
                if streams is not None and on_text is not None:
                    finished += self._report(rows, active, streams, params, on_text)
                if len(finished) == len(active):
                    break
                if finished:
                    gone = set(finished)
                    keep = [k for k in range(len(active)) if k not in gone]
                    state.select(keep)
                    chosen = chosen[torch.tensor(keep, device=chosen.device)]
                    active = [active[k] for k in keep]
                logits = state.step(chosen)
        return self._completions(prompts, rows, params)

    @property
    def device(self) -> Any:
        return self.model.device

    def _start(self, prompts: list[list[int]], n: int, max_new: int) -> Any:
        """The decoding state of one batch (n rows per prompt, at most `max_new` steps), its prefill
        done: `first_logits()`, then `step(tokens)` per step and `select(keep)` when rows finish.
        The seam another engine plugs into (llamacpp.py)."""
        if self.is_encoder_decoder:
            return _EncoderDecoder(self, prompts, n)
        return _DecoderOnly(self, prompts, n)

    def _completions(self, prompts: list[list[int]], rows: list[_Row], params: GenerationParams) -> list[Completion]:
        out: list[Completion] = []
        for i, prompt in enumerate(prompts):
            mine = [row for row in rows if row.prompt == i]
            texts, reasons, sums, per_token, token_text = [], [], [], [], []
            for row in mine:
                text, reason = self._final_text(row, params.stop)
                texts.append(text)
                reasons.append(reason)
                sums.append(float(sum(row.logprobs)))
                per_token.append(row.logprobs)
                token_text.append([self.tokenizer.decode([t]) for t in row.tokens])
            generated = sum(len(row.tokens) + (1 if row.finish == "stop" else 0) for row in mine)
            self.stats.add(requests=1, prompt_tokens=len(prompt), completion_tokens=generated)
            out.append(Completion(texts=texts, prompt_tokens=len(prompt), completion_tokens=generated,
                                  logprobs=sums, finish_reasons=reasons, token_logprobs=per_token,
                                  tokens=token_text, token_ids=[list(row.tokens) for row in mine]))
        return out

    def _final_text(self, row: _Row, stop: tuple[str, ...]) -> tuple[str, str]:
        """A sequence's text as returned (cut at its first stop string) and its finish reason."""
        text, stopped = truncate_at_stop(self.tokenizer.decode(row.tokens, skip_special_tokens=True), stop)
        return text, "stop" if stopped else (row.finish or "length")

    def _report(self, rows: list[_Row], active: list[int], streams: list["_TextStream"], params: GenerationParams,
                on_text: OnText) -> list[int]:
        """Hand this step's new text to `on_text`; returns the positions in `active` of the rows it
        cancelled (rows that finished this step are already on their way out)."""
        deltas: list[TextDelta] = []
        for r in active:
            row = rows[r]
            if row.finish:  # the last piece: whatever the returned text has beyond what went out
                text, reason = self._final_text(row, params.stop)
                deltas.append(TextDelta(row.prompt, r % params.n, streams[r].finish(text), reason))
            else:
                piece = streams[r].push(row.tokens)
                if piece:
                    deltas.append(TextDelta(row.prompt, r % params.n, piece))
        cancelled = set(on_text(deltas) or ())
        gone: list[int] = []
        for k, r in enumerate(active):
            if rows[r].finish is None and rows[r].prompt in cancelled:
                rows[r].finish = "cancelled"
                gone.append(k)
        return gone

    def _hit_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        # Only the tail can hold a stop string that was not there one token ago.
        window = 4 * max(len(s) for s in stop) + 4
        tail = self.tokenizer.decode(tokens[-window:], skip_special_tokens=True)
        return any(s and s in tail for s in stop)

    def _fit(self, prompt: list[int], max_tokens: int) -> list[int]:
        """Keep the end of a prompt that would not leave room for the answer: the instruction that
        ends every prompt of the toolkit matters more than the start of a long statement."""
        limit = self.max_prompt_tokens
        if self.max_positions and not self.is_encoder_decoder:
            room = self.max_positions - min(max_tokens, self.max_positions // 2)
            limit = room if limit is None else min(limit, room)
        if not prompt:
            prompt = [self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.pad_id]
        return prompt[-limit:] if limit and len(prompt) > limit else prompt


class _TextStream:
    """Incremental decoding of one sequence for streaming: each step decodes only the last few
    tokens (not the whole text again) and hands out text that can no longer change."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        # tokens[start:read] decode to the end of `text`; decoding from `start` (not `read`) keeps the
        # context a tokenizer needs to place spaces and join the bytes of one character.
        self.start = 0
        self.read = 0
        self.text = ""
        self.sent = 0  # characters of `text` handed out

    def push(self, tokens: list[int]) -> str:
        before = self.tokenizer.decode(tokens[self.start:self.read], skip_special_tokens=True)
        after = self.tokenizer.decode(tokens[self.start:], skip_special_tokens=True)
        # A trailing U+FFFD is a character whose bytes have not all arrived: wait for the rest.
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before):]
            self.start, self.read = self.read, len(tokens)
        text, _ = truncate_at_stop(self.text, self.stop)
        safe = len(text) - _stop_prefix(text, self.stop)
        if safe <= self.sent:
            return ""
        piece, self.sent = text[self.sent:safe], safe
        return piece

    def finish(self, final: str) -> str:
        """The rest of the sequence's returned text (`final`), once it is finished."""
        return final[self.sent:]


def _stop_prefix(text: str, stop: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that a stop string starts with: that text must wait,
    since the next token may complete the stop string and cut it off."""
    longest = 0
    for s in stop:
        for size in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:size]):
                longest = size
                break
    return longest


def _renumbered(on_text: OnText, chunk: list[int]) -> OnText:
    """`on_text` for one batch of prompts: its batch positions become the caller's prompt numbers."""
    def report(deltas: list[TextDelta]) -> set[int]:
        cancelled = on_text([TextDelta(chunk[d.prompt], d.index, d.text, d.finish_reason) for d in deltas]) or ()
        return {k for k, i in enumerate(chunk) if i in cancelled}
    return report


def _pad(prompts: list[list[int]], pad_id: int, *, left: bool, device):
    """Token ids and attention mask of a batch, padded on the left (decoder-only: every prompt ends
    where generation starts) or on the right (encoder input)."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        span = slice(width - len(p), width) if left else slice(0, len(p))
        ids[i, span] = torch.tensor(p)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)


class _DecoderOnly:
    """Left-padded prompts, one prefill, its cache repeated n times, then one token per step."""

    def __init__(self, gen: HFGenerator, prompts: list[list[int]], n: int) -> None:
        from transformers import DynamicCache

        self.model = gen.model
        ids, mask = _pad(prompts, gen.pad_id, left=True, device=gen.model.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        try:
            cache = DynamicCache(config=gen.model.config)
        except TypeError:
            cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        self.cache = out.past_key_values
        if n > 1:
            self.cache.batch_repeat_interleave(n)
        self.logits = out.logits[:, -1, :].repeat_interleave(n, dim=0)
        self.mask = mask.repeat_interleave(n, dim=0)
        self.next_pos = mask.sum(-1).repeat_interleave(n, dim=0)

    def first_logits(self):
        return self.logits

    def select(self, keep: list[int]) -> None:
        import torch

        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.next_pos = self.next_pos[index]

    def step(self, tokens):
        import torch

        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=-1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=self.next_pos[:, None],
                         past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.cache = out.past_key_values
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1, :]


class _EncoderDecoder:
    """Encode each prompt once, repeat its encoder states n times, decode from the start token."""

    def __init__(self, gen: HFGenerator, prompts: list[list[int]], n: int) -> None:
        import torch

        self.model = gen.model
        ids, mask = _pad(prompts, gen.pad_id, left=False, device=gen.model.device)
        encoded = self.model.get_encoder()(input_ids=ids, attention_mask=mask)
        self.hidden = encoded.last_hidden_state.repeat_interleave(n, dim=0)
        self.mask = mask.repeat_interleave(n, dim=0)
        self.cache = None
        start = self.model.config.decoder_start_token_id
        if start is None:
            start = gen.pad_id
        self.start = torch.full((self.hidden.shape[0],), start, dtype=torch.long, device=self.hidden.device)

    def first_logits(self):
        return self.step(self.start)

    def select(self, keep: list[int]) -> None:
        import torch

        index = torch.tensor(keep, device=self.mask.device)
        self.hidden = self.hidden[index]
        self.mask = self.mask[index]
        if self.cache is not None:
            self.cache.batch_select_indices(index)

    def step(self, tokens):
        from transformers.modeling_outputs import BaseModelOutput

        out = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=self.hidden), attention_mask=self.mask,
                         decoder_input_ids=tokens[:, None], past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return out.logits[:, -1, :]


def _sample(logits, params: GenerationParams, row_prompts: list[int], generators: list[Any]):
    """Pick one token per row: greedy at temperature 0, else top-p sampling from each prompt's own
    random stream. Returns (tokens, raw log-probability of each chosen token)."""
    import torch

    logits = logits.float()
    raw = torch.log_softmax(logits, dim=-1)
    if params.temperature <= 0:
        chosen = logits.argmax(dim=-1)
    else:
        probs = torch.softmax(logits / params.temperature, dim=-1)
        candidates = None  # the token ids behind probs' columns, once top-p has narrowed them
        if params.top_p < 1.0:
            probs, candidates = _nucleus(probs, params.top_p)
        chosen = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
        groups: dict[int, list[int]] = {}
        for k, prompt in enumerate(row_prompts):
            groups.setdefault(prompt, []).append(k)
        for prompt, ks in groups.items():
            index = torch.tensor(ks, device=probs.device)
            chosen[index] = _draw(probs[index], generators[prompt])
        if candidates is not None:
            chosen = candidates.gather(-1, chosen[:, None]).squeeze(-1)
    return chosen, raw.gather(-1, chosen[:, None]).squeeze(-1).cpu()


def _draw(probs, generator):
    """One token per row, by inverse CDF: one uniform number per row, so the draw depends only on
    the nonzero probabilities in token order (not on how many zero columns surround them, as
    torch.multinomial's does)."""
    import torch

    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device) * cdf[:, -1:]
    picked = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    # u < 1 but u * total may round up to the total: then the last token with any probability.
    last = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
    return torch.minimum(picked, last)


def _nucleus(probs, top_p: float):
    """Top-p per row: the most likely tokens' probabilities, those zeroed that come after the ones
    above them already reach `top_p` (the first always stays), and their token ids. Only the
    top k are sorted, k growing until every row's cut falls inside them: sorting a 150k vocabulary
    at every step cost as much as a llama.cpp decode step."""
    vocab = probs.shape[-1]
    k = min(64, vocab)
    while True:
        top, ids = probs.topk(k, dim=-1)  # sorted, most likely first
        drop = top.cumsum(dim=-1) - top > top_p
        # Once the k-th token is dropped in every row, every token after it would be too.
        if k == vocab or bool(drop[:, -1].all()):
            # Back in token-id order: the draw is then the one the whole vocabulary (zeros outside
            # the nucleus) gives, whatever k was, and near-ties cannot swap places between two runs.
            ids, order = ids.sort(dim=-1)
            return top.masked_fill(drop, 0.0).gather(-1, order), ids
        k = vocab if k >= 4096 else min(4 * k, vocab)  # a flat distribution: sort it all at once


def _generator(seed: int | None, device: Any):
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    return generator


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _max_positions(config: Any) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
