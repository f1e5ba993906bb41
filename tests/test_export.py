"""`codeplan export`: a trained student folder becomes a GGUF file that transformers (and llama.cpp,
see test_llm_llamacpp.py) load back to the same model: same logits, same tokenizer."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from codeplan.errors import InputError
from codeplan.export import ExportConfig, export_gguf

TEXTS = ["def add(a, b):\n    return a + b\n", "1. Read the input.\n2. Print the sum ✓"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _logits(model, tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits[0].float()


def _reload(path: Path):
    return (AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name),
            AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name))


def test_f32_export_reloads_in_transformers_as_the_same_model(tiny_causal_lm: Path, tmp_path: Path) -> None:
    summary = export_gguf(ExportConfig(model=str(tiny_causal_lm), out=str(tmp_path / "tiny.gguf"), dtype="f32"))
    assert summary["architecture"] == "llama" and summary["tokenizer"] == str(tiny_causal_lm)
    original = AutoModelForCausalLM.from_pretrained(str(tiny_causal_lm))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_causal_lm))
    model, reloaded_tokenizer = _reload(tmp_path / "tiny.gguf")
    for text in TEXTS:
        # The tokenizer was rebuilt from the GGUF's metadata (vocabulary, merges, special ids).
        assert reloaded_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert reloaded_tokenizer.decode(tokenizer(text)["input_ids"]) == text
        # q/k were permuted for llama.cpp's rotary layout and back by transformers: nothing changed.
        torch.testing.assert_close(_logits(model, tokenizer, text), _logits(original, tokenizer, text), atol=1e-5, rtol=0)
    assert reloaded_tokenizer.eos_token == tokenizer.eos_token


def test_q8_0_export_quantises_matrices_and_stays_close(tiny_causal_lm: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny-q8.gguf"
    export_gguf(ExportConfig(model=str(tiny_causal_lm), out=str(out), dtype="q8_0"))
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(str(out)).tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["token_embd.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32  # norms stay f32
    assert "output.weight" not in types  # tied embeddings: llama.cpp reuses token_embd
    original = AutoModelForCausalLM.from_pretrained(str(tiny_causal_lm))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_causal_lm))
    model, _ = _reload(out)
    exact, quantised = _logits(original, tokenizer, TEXTS[0]), _logits(model, tokenizer, TEXTS[0])
    assert not torch.equal(exact, quantised)
    assert (exact - quantised).abs().max() < 0.02 * exact.abs().max()


def test_unmerged_lora_adapter_is_merged_on_export(tiny_causal_lm: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(str(tiny_causal_lm))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_causal_lm))
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(3)
    with torch.no_grad():  # a trained adapter: B is no longer zero, so merging changes the model
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    expected = _logits(peft_model, tokenizer, TEXTS[1])
    assert not torch.allclose(expected, _logits(AutoModelForCausalLM.from_pretrained(str(tiny_causal_lm)), tokenizer, TEXTS[1]))

    export_gguf(ExportConfig(model=str(adapter), out=str(tmp_path / "merged.gguf"), dtype="f32"))
    model, _ = _reload(tmp_path / "merged.gguf")
    torch.testing.assert_close(_logits(model, tokenizer, TEXTS[1]), expected, atol=1e-4, rtol=0)


def test_tokenizer_metadata_carries_over_from_the_gguf_the_student_came_from(smollm2_gguf: str,
                                                                              smollm2_student_gguf: Path) -> None:
    # The fixture exported a folder whose train_summary.json names the base model, without tokenizer_gguf.
    source, written = gguf.GGUFReader(smollm2_gguf), gguf.GGUFReader(str(smollm2_student_gguf))
    keys = [k for k in source.fields if k.startswith("tokenizer.")]
    assert "tokenizer.chat_template" in keys and "tokenizer.ggml.merges" in keys
    for key in keys:
        assert _raw(written.fields[key]) == _raw(source.fields[key]), key
    assert written.fields["general.architecture"].contents() == "llama"
    assert {t.tensor_type for t in written.tensors} == {gguf.GGMLQuantizationType.F32}


def test_unsupported_models_are_clear_errors(tiny_seq2seq_lm: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="T5ForConditionalGeneration cannot be exported"):
        export_gguf(ExportConfig(model=str(tiny_seq2seq_lm), out=str(tmp_path / "t5.gguf")))
    with pytest.raises(InputError, match="no config.json"):
        export_gguf(ExportConfig(model=str(tmp_path / "missing"), out=str(tmp_path / "x.gguf")))
    assert not list(tmp_path.glob("*.gguf*"))  # nothing half-written left behind


def _raw(field: gguf.ReaderField) -> bytes:
    """A metadata value as stored (type and bytes): comparing 49k-entry arrays element by element is slow."""
    return bytes(field.types) + b"".join(bytes(field.parts[i]) for i in field.data)


def test_export_command_writes_the_file_and_names_bad_input(tiny_causal_lm: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from codeplan.cli import app

    out = tmp_path / "cli.gguf"
    result = CliRunner().invoke(app, ["export", "--model", str(tiny_causal_lm), "--out", str(out), "--dtype", "q8_0"])
    assert result.exit_code == 0 and "wrote" in result.output and out.is_file()
    result = CliRunner().invoke(app, ["export", "--model", str(tiny_causal_lm), "--out", str(out), "--dtype", "q4"])
    assert result.exit_code == 2 and "dtype" in result.output


def test_a_student_exported_to_gguf_is_still_asked_as_it_was_trained(tiny_causal_lm: Path, tmp_path: Path) -> None:
    # A student trained with its chat template must get chat prompts from generate whether it runs
    # from its folder or from the GGUF made of it (the GGUF has no train_summary.json beside it).
    import json
    import shutil

    from codeplan.config import DataConfig
    from codeplan.generate import GenerateConfig, uses_chat_template
    from codeplan.modeling import recorded_prompt_format

    folder = tmp_path / "student"
    shutil.copytree(tiny_causal_lm, folder)
    trained = {"chat_template": True, "plan_conditioned_code": False}
    (folder / "train_summary.json").write_text(json.dumps({"prompt_format": trained}))
    export_gguf(ExportConfig(model=str(folder), out=str(tmp_path / "student.gguf"), dtype="f32"))
    export_gguf(ExportConfig(model=str(tiny_causal_lm), out=str(tmp_path / "untrained.gguf"), dtype="f32"))

    def asked_with_chat(model: str) -> bool:
        return uses_chat_template(GenerateConfig(data=DataConfig(path="sample"), model=model, out=str(tmp_path / "s.jsonl")))

    assert recorded_prompt_format(str(tmp_path / "student.gguf")) == trained
    assert asked_with_chat(f"llamacpp:{tmp_path / 'student.gguf'}") and asked_with_chat(str(folder))
    assert recorded_prompt_format(str(tmp_path / "untrained.gguf")) is None
    assert not asked_with_chat(f"llamacpp:{tmp_path / 'untrained.gguf'}")
    # An explicit setting still wins over the record.
    assert not uses_chat_template(GenerateConfig(data=DataConfig(path="sample"), model=f"llamacpp:{tmp_path / 'student.gguf'}",
                                                 out=str(tmp_path / "s.jsonl"), chat_template=False))
