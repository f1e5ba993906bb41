"""`codeplan export`: a trained student (a Hugging Face folder) as one GGUF file for llama.cpp.

Written with the `gguf` package's writer and tensor-name maps. Supported: the llama family
(SmolLM2, Llama, Mistral-shaped) and Qwen2 (Qwen2.5-Coder), causal LMs only. Weights are stored as
f32, f16, bf16 or Q8_0 (`gguf.quants`); norms and biases always stay f32, as llama.cpp's own
converter leaves them, and a matrix whose rows do not split into Q8_0 blocks falls back to f16.

Tokenizer metadata: where the student was fine-tuned from a GGUF (train_summary.json or
train_config.yaml names it as `student`, or `tokenizer_gguf` is given), every `tokenizer.*` key of
that file is copied unchanged, so llama.cpp tokenises exactly as it did for the base model.
Otherwise it is built from the folder's byte-level BPE tokenizer (vocabulary, merges, token types,
special ids, chat template). The training's prompt format (train_summary.json's `prompt_format`)
goes under `codeplan.prompt_format`, so generate and serve ask the GGUF as the folder was trained.

Invariants: llama-family q/k projections are permuted into llama.cpp's rotary layout (Qwen2's are
not: llama.cpp runs it with NEOX rotary); the file is written to a temporary name and renamed, so
an interrupted export never leaves a half-written OUT, and re-running simply writes it again.
Tensors are read and written one at a time, so memory stays near one tensor's size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import gguf
import numpy as np
import yaml
from pydantic import Field

from codeplan.config import StageConfig
from codeplan.errors import InputError
from codeplan.modeling import PROMPT_FORMAT_KEY, recorded_prompt_format

# HF architecture name -> llama.cpp architecture, and whether q/k need llama's rotary permutation.
ARCHITECTURES: dict[str, tuple[gguf.MODEL_ARCH, bool]] = {
    "LlamaForCausalLM": (gguf.MODEL_ARCH.LLAMA, True),
    "MistralForCausalLM": (gguf.MODEL_ARCH.LLAMA, True),
    "Qwen2ForCausalLM": (gguf.MODEL_ARCH.QWEN2, False),
}

QTYPES = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
          "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
              "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}


class ExportConfig(StageConfig):
    """Settings of `codeplan export`."""

    model: str = Field(description="Trained student folder (codeplan train's OUT: full weights, LoRA merged, or an adapter).")
    out: str = Field(description="The .gguf file to write.")
    dtype: Literal["f32", "f16", "bf16", "q8_0"] = Field("f16", description="Weight type of the GGUF file.")
    tokenizer_gguf: str | None = Field(None, description=(
        "GGUF (path or packaged name) whose tokenizer to copy (default: the student's base model when it was a GGUF)."))


def export_gguf(cfg: ExportConfig) -> dict[str, Any]:
    """Write cfg.out; returns a summary (architecture, tensor count, types, bytes, tokenizer source)."""
    folder = Path(cfg.model).expanduser()
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        raise InputError("not a trained model folder (no config.json)", path=folder)
    if not cfg.out.endswith(".gguf"):
        raise InputError("the output file must end in .gguf", field="out")
    weights = _open_weights(folder)
    config = weights.config
    arch_name = (config.get("architectures") or ["?"])[0]
    if arch_name not in ARCHITECTURES:
        raise InputError(f"architecture {arch_name} cannot be exported to GGUF here; supported: "
                         f"{', '.join(ARCHITECTURES)}", path=folder / "config.json", field="architectures")
    arch, permute_qk = ARCHITECTURES[arch_name]
    qtype = QTYPES[cfg.dtype]

    out = Path(cfg.out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
    try:
        _add_hyperparameters(writer, config, folder, FILE_TYPES[cfg.dtype])
        tokenizer_source = _add_tokenizer(writer, folder, config, cfg.tokenizer_gguf)
        prompt_format = recorded_prompt_format(str(folder))
        if prompt_format is not None:  # generate and serve read it back: asked as trained
            writer.add_string(PROMPT_FORMAT_KEY, json.dumps(prompt_format, sort_keys=True))
        plan = list(_tensor_plan(weights, arch, config, qtype, permute_qk))
        for name, shape, tensor_type, _ in plan:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), _nbytes(shape, tensor_type), raw_dtype=tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, shape, tensor_type, load in plan:
            data = gguf.quants.quantize(load(), tensor_type)
            writer.write_tensor_data(data)
        writer.close()
        tmp.replace(out)  # atomic: OUT is either the old file or the whole new one
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    types: dict[str, int] = {}
    for _, _, tensor_type, _ in plan:
        types[tensor_type.name] = types.get(tensor_type.name, 0) + 1
    return {"out": str(out), "architecture": gguf.MODEL_ARCH_NAMES[arch], "source_architecture": arch_name,
            "tensors": len(plan), "tensor_types": types, "bytes": out.stat().st_size, "tokenizer": tokenizer_source}


# ---- weights ------------------------------------------------------------------------------------

class _Weights:
    """Read access to a folder's tensors by HF name: safetensors (one file or sharded), read lazily;
    or an unmerged LoRA adapter, merged into its base model in memory first."""

    def __init__(self, config: dict[str, Any], shapes: dict[str, tuple[int, ...]],
                 read: Callable[[str], np.ndarray]) -> None:
        self.config = config
        self.shapes = shapes
        self.read = read


def _open_weights(folder: Path) -> _Weights:
    if (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").is_file() \
            and not (folder / "model.safetensors.index.json").is_file():
        return _merged_adapter(folder)
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise InputError("no model.safetensors (codeplan train saves safetensors; re-save other formats with "
                         "save_pretrained(safe_serialization=True))", path=folder)
    where: dict[str, str] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(folder / file), framework="pt") as handle:
            for key in handle.keys():
                where[key] = file
                shapes[key] = tuple(handle.get_slice(key).get_shape())

    def read(name: str) -> np.ndarray:
        with safe_open(str(folder / where[name]), framework="pt") as handle:
            return handle.get_tensor(name).float().numpy()

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return _Weights(config, shapes, read)


def _merged_adapter(folder: Path) -> _Weights:
    """An adapter saved with `merge_lora: false`: load its base, merge, and read from memory."""
    from peft import AutoPeftModelForCausalLM

    try:
        model = AutoPeftModelForCausalLM.from_pretrained(str(folder)).merge_and_unload()
    except (OSError, ValueError) as err:
        raise InputError(f"cannot load the LoRA adapter over its base model: {err}", path=folder) from None
    state = {k: v for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied: llama.cpp reuses token_embd, as for a saved model
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    return _Weights(config, {k: tuple(v.shape) for k, v in state.items()},
                    lambda name: state[name].detach().float().numpy())


def _tensor_plan(weights: _Weights, arch: gguf.MODEL_ARCH, config: dict[str, Any], qtype: gguf.GGMLQuantizationType,
                 permute_qk: bool) -> Iterator[tuple[str, tuple[int, ...], gguf.GGMLQuantizationType, Callable[[], np.ndarray]]]:
    """(GGUF name, shape, stored type, loader) for every tensor, in the folder's order."""
    layers = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(arch, layers)
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    for hf_name, shape in weights.shapes.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope.freq_base
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise InputError(f"tensor {hf_name} has no GGUF name for {gguf.MODEL_ARCH_NAMES[arch]}",
                             path=weights.config.get("_name_or_path"), field=hf_name)
        tensor_type = qtype
        if len(shape) < 2 or qtype == gguf.GGMLQuantizationType.F32:
            tensor_type = gguf.GGMLQuantizationType.F32
        elif shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
            tensor_type = gguf.GGMLQuantizationType.F16
        heads_here = heads if ".q_proj." in hf_name else kv_heads if ".k_proj." in hf_name else 0

        def load(hf_name: str = hf_name, heads_here: int = heads_here) -> np.ndarray:
            data = weights.read(hf_name)
            if permute_qk and heads_here:
                data = _rotary_permute(data, heads_here)
            return np.ascontiguousarray(data, dtype=np.float32)

        yield name, shape, tensor_type, load


def _rotary_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """HF llama rotates the two halves of each head; llama.cpp rotates adjacent pairs. Reorder the
    rows of a q/k projection (or its bias) so that each head's halves interleave."""
    rows = weight.shape[0]
    return (weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _nbytes(shape: tuple[int, ...], tensor_type: gguf.GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[tensor_type]
    return int(np.prod(shape)) // block * size


# ---- metadata -----------------------------------------------------------------------------------

def _add_hyperparameters(writer: gguf.GGUFWriter, config: dict[str, Any], folder: Path,
                         file_type: gguf.LlamaFileType) -> None:
    where = folder / "config.json"
    rope = config.get("rope_scaling") or {}
    rope_parameters = config.get("rope_parameters") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or rope_parameters.get("rope_type") or "default"
    if rope_type != "default":
        raise InputError(f"RoPE scaling '{rope_type}' is not exported here", path=where, field="rope_scaling")
    theta = config.get("rope_theta") or rope_parameters.get("rope_theta") or 10000.0
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    writer.add_name(folder.name)
    writer.add_file_type(int(file_type))
    writer.add_context_length(int(config.get("max_position_embeddings") or 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(int(config["vocab_size"]))


def base_gguf(folder: Path) -> str | None:
    """The GGUF the student was fine-tuned from, where its training records say so."""
    from codeplan.modeling import packaged_model_path

    student = None
    summary, train_config = folder / "train_summary.json", folder / "train_config.yaml"
    if summary.is_file():
        student = json.loads(summary.read_text(encoding="utf-8")).get("student")
    elif train_config.is_file():
        student = (yaml.safe_load(train_config.read_text(encoding="utf-8")) or {}).get("student")
    if not isinstance(student, str):
        return None
    packaged = packaged_model_path(student)
    if packaged:
        return packaged
    return student if student.endswith(".gguf") and Path(student).expanduser().is_file() else None


def _add_tokenizer(writer: gguf.GGUFWriter, folder: Path, config: dict[str, Any], tokenizer_gguf: str | None) -> str:
    """Tokenizer metadata; returns where it came from."""
    from codeplan.modeling import packaged_model_path

    if tokenizer_gguf:
        source: str | None = packaged_model_path(tokenizer_gguf) or tokenizer_gguf
    else:
        source = base_gguf(folder)
    if source:
        if not Path(source).expanduser().is_file():
            raise InputError("GGUF file not found", path=source, field="tokenizer_gguf")
        _copy_tokenizer(writer, Path(source).expanduser(), int(config["vocab_size"]))
        return source
    _build_tokenizer(writer, folder, int(config["vocab_size"]))
    return str(folder)


def _copy_tokenizer(writer: gguf.GGUFWriter, source: Path, vocab_size: int) -> None:
    reader = gguf.GGUFReader(str(source))
    tokens = reader.get_field("tokenizer.ggml.tokens")
    if tokens is None:
        raise InputError("has no tokenizer metadata", path=source, field="tokenizer.ggml.tokens")
    if len(tokens.data) != vocab_size:
        raise InputError(f"its tokenizer has {len(tokens.data)} tokens but the student's vocab_size is {vocab_size}",
                         path=source, field="tokenizer.ggml.tokens")
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, field.contents(), gguf.GGUFValueType.ARRAY, sub_type=field.types[-1])
        else:
            writer.add_key_value(name, field.contents(), field.types[0])


def _build_tokenizer(writer: gguf.GGUFWriter, folder: Path, vocab_size: int) -> None:
    """llama.cpp's `gpt2` (byte-level BPE) tokenizer metadata from a Hugging Face fast tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    model = spec.get("model") or {}
    byte_level = "ByteLevel" in json.dumps(spec.get("pre_tokenizer")) or "ByteLevel" in json.dumps(spec.get("decoder"))
    if model.get("type") != "BPE" or not byte_level:
        raise InputError("the tokenizer is not byte-level BPE, so its GGUF metadata cannot be built here; give "
                         "tokenizer_gguf (the GGUF the student came from)", path=folder, field="tokenizer")
    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise InputError(f"the tokenizer has {len(vocab)} tokens but the model's vocab_size is {vocab_size}",
                         path=folder, field="vocab_size")
    added = {token.content: token.special for token in tokenizer.added_tokens_decoder.values()}
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [gguf.TokenType.UNUSED] * vocab_size
    for token, index in vocab.items():
        tokens[index] = token
        types[index] = (gguf.TokenType.NORMAL if token not in added else
                        gguf.TokenType.CONTROL if added[token] else gguf.TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([int(t) for t in types])
    writer.add_token_merges(merges)
    for token_id, add in ((tokenizer.bos_token_id, writer.add_bos_token_id), (tokenizer.eos_token_id, writer.add_eos_token_id),
                          (tokenizer.pad_token_id, writer.add_pad_token_id), (tokenizer.unk_token_id, writer.add_unk_token_id)):
        if token_id is not None:
            add(int(token_id))
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(bool(probe) and tokenizer.eos_token_id is not None and probe[-1] == tokenizer.eos_token_id
                             and len(probe) > 1)
    if isinstance(getattr(tokenizer, "chat_template", None), str):
        writer.add_chat_template(tokenizer.chat_template)
