"""The llama.cpp backend against the HF backend on the same weights (a model exported to an f32
GGUF): same greedy tokens, log-probabilities, seeds, n samples from one prompt evaluation, stop
strings, streaming and chat. Needs llama-cpp-python (`make install` builds it once)."""

from __future__ import annotations

import ctypes
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from codeplan.errors import InputError, SetupError
from codeplan.export import ExportConfig, export_gguf
from codeplan.llm import GenerationParams, load_generator
from codeplan.llm.base import TextDelta
from codeplan.llm.hf import HFGenerator

PROMPTS = ["1. Read the input.\n2.", "def add(a, b):\n", "[GEN_CODE]\nQUESTION:\nRead n and print the sum"]
SKIP = "llama-cpp-python is not installed (pip install 'codeplan[cpu]'; make install builds it)"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def llama_cpp():
    return pytest.importorskip("llama_cpp", reason=SKIP)


@pytest.fixture(scope="module")
def tiny_gguf(tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-gguf") / "tiny-f32.gguf"
    export_gguf(ExportConfig(model=str(tiny_causal_lm), out=str(out), dtype="f32"))
    return out


@pytest.fixture(scope="module")
def tiny(llama_cpp, tiny_gguf: Path):
    from codeplan.llm.llamacpp import LlamaCppGenerator

    # One thread: on a shared CPU ggml's threads wait for each other at every graph node.
    generator = load_generator(f"llamacpp:{tiny_gguf}", batch_size=8, n_threads=1)
    assert isinstance(generator, LlamaCppGenerator)
    return generator


@pytest.fixture(scope="module")
def tiny_hf(tiny_causal_lm: Path) -> HFGenerator:
    return HFGenerator(str(tiny_causal_lm), batch_size=8)


def test_greedy_tokens_match_the_hf_backend_on_the_same_weights(tiny, tiny_hf: HFGenerator) -> None:
    params = GenerationParams(n=2, max_tokens=12)
    ours, theirs = tiny.generate(PROMPTS, params), tiny_hf.generate(PROMPTS, params)
    for a, b in zip(ours, theirs):
        assert a.token_ids == b.token_ids and a.texts == b.texts and len(set(a.texts)) == 1
        assert (a.prompt_tokens, a.completion_tokens, a.finish_reasons) == (b.prompt_tokens, b.completion_tokens,
                                                                          b.finish_reasons)
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)


def test_logprobs_are_the_models_raw_scores_of_the_sampled_tokens(tiny, tiny_hf: HFGenerator) -> None:
    [completion] = tiny.generate([PROMPTS[0]], GenerationParams(n=3, temperature=1.0, max_tokens=6, seed=4))
    prompt_ids = tiny.tokenizer(PROMPTS[0])["input_ids"]
    assert completion.token_ids is not None and completion.logprobs is not None
    for ids, total, per_token in zip(completion.token_ids, completion.logprobs, completion.token_logprobs or []):
        full = torch.tensor([prompt_ids + ids])
        with torch.no_grad():  # scored by transformers on the original (non-GGUF) weights
            logits = tiny_hf.model(full).logits.float().log_softmax(-1)
        scored = logits[0, len(prompt_ids) - 1:-1].gather(-1, full[0, len(prompt_ids):, None]).squeeze(-1)
        # ggml's f32 kernels sum in another order than torch's (and vectorise exp): ~1e-4 apart.
        assert per_token == pytest.approx(scored.tolist(), abs=1e-3)
        assert total == pytest.approx(scored.sum().item(), abs=2e-3)


def test_a_prompt_is_evaluated_once_for_its_n_samples(tiny, llama_cpp, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    decode = llama_cpp.llama_decode

    def counted(ctx, batch):
        sizes.append(batch.n_tokens)
        return decode(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", counted)
    [completion] = tiny.generate([PROMPTS[2]], GenerationParams(n=4, temperature=1.0, max_tokens=5, seed=1))
    prompt_tokens = len(tiny.tokenizer(PROMPTS[2])["input_ids"])
    assert sizes[0] == prompt_tokens  # the prompt once, not four times
    assert sizes[1:] == [4] * (len(sizes) - 1)  # then one token per sequence per step
    assert len(completion.texts) == 4 and len(set(completion.texts)) > 1


def test_seeded_sampling_repeats_and_follows_each_prompt(tiny) -> None:
    params = GenerationParams(n=2, temperature=1.0, top_p=0.9, max_tokens=8, seed=7)
    first = tiny.generate_tokens(tiny.encode(PROMPTS), params, seeds=[11, 12, 13])
    again = tiny.generate_tokens(tiny.encode(PROMPTS), params, seeds=[11, 12, 13])
    alone = tiny.generate_tokens(tiny.encode(PROMPTS[1:2]), params, seeds=[12])
    assert [c.texts for c in first] == [c.texts for c in again]
    assert alone[0].texts == first[1].texts  # batching does not change a prompt's samples
    swapped = tiny.generate(PROMPTS[::-1], replace(params, seeds=(13, 12, 11)))
    assert [c.texts for c in swapped] == [c.texts for c in first][::-1]
    assert [c.texts for c in tiny.generate(PROMPTS, replace(params, seed=8))] != [c.texts for c in first]


def test_sampling_matches_the_hf_backend_for_the_same_seed(tiny, tiny_hf: HFGenerator) -> None:
    # Same sampling code and random streams over logits equal to within rounding: the same draws.
    params = GenerationParams(n=3, temperature=0.8, top_p=0.95, max_tokens=8, seed=21)
    assert [c.token_ids for c in tiny.generate(PROMPTS, params)] == [c.token_ids for c in tiny_hf.generate(PROMPTS, params)]


def test_stop_strings_end_and_truncate_the_text(tiny) -> None:
    [free] = tiny.generate([PROMPTS[1]], GenerationParams(max_tokens=12))
    stop = free.texts[0][2:4]
    [stopped] = tiny.generate([PROMPTS[1]], GenerationParams(max_tokens=12, stop=(stop,)))
    assert stopped.texts[0] == free.texts[0][:free.texts[0].find(stop)]
    assert stopped.finish_reasons == ["stop"] and stopped.completion_tokens < free.completion_tokens


def test_streamed_deltas_add_up_to_the_texts_and_cancel_stops_a_prompt(tiny) -> None:
    [free] = tiny.generate([PROMPTS[1]], GenerationParams(max_tokens=12))
    params = GenerationParams(n=2, temperature=1.0, max_tokens=12, seed=3, stop=(free.texts[0][3:6],))
    steps: list[list[TextDelta]] = []
    streamed = tiny.generate_tokens(tiny.encode(PROMPTS), params, on_text=steps.append)
    assert streamed == tiny.generate_tokens(tiny.encode(PROMPTS), params)
    for p, completion in enumerate(streamed):
        for j, text in enumerate(completion.texts):
            mine = [d for step in steps for d in step if (d.prompt, d.index) == (p, j)]
            assert "".join(d.text for d in mine) == text
            assert [d.finish_reason for d in mine] == [None] * (len(mine) - 1) + [completion.finish_reasons[j]]
    greedy = GenerationParams(n=2, max_tokens=10)
    cancelled = tiny.generate_tokens(tiny.encode(PROMPTS[:2]), greedy, on_text=lambda deltas: {0})
    full = tiny.generate_tokens(tiny.encode(PROMPTS[:2]), greedy)
    assert cancelled[0].finish_reasons == ["cancelled", "cancelled"] and cancelled[0].completion_tokens == 2
    assert cancelled[1].texts == full[1].texts


def test_threads_share_the_model_one_decode_at_a_time(tiny) -> None:
    params = GenerationParams(n=2, temperature=1.0, max_tokens=8, seed=5)
    expected = [c.texts for c in tiny.generate(PROMPTS, params)]
    results: list[list[list[str]]] = []
    threads = [threading.Thread(target=lambda: results.append([c.texts for c in tiny.generate(PROMPTS, params)]))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


def test_a_batch_larger_than_the_context_grows_it(tiny) -> None:
    before = tiny._cells
    [completion] = tiny.generate([PROMPTS[0]], GenerationParams(n=8, temperature=1.0, max_tokens=700, seed=2))
    assert tiny._cells > before >= 4096
    assert len(completion.texts) == 8 and completion.completion_tokens > 8 * 100


def test_real_smollm2_export_runs_like_the_hf_backend(llama_cpp, smollm2_folder: Path, smollm2_student_gguf: Path) -> None:
    from codeplan.llm.llamacpp import LlamaCppGenerator

    ours = LlamaCppGenerator(str(smollm2_student_gguf), batch_size=8, n_threads=1)
    theirs = HFGenerator(str(smollm2_folder), batch_size=8)
    prompts = ["def fibonacci(n):\n", "Write a Python function that reverses a string.\n"]
    greedy = GenerationParams(max_tokens=16)
    # f32 weights, f32 KV cache: llama.cpp's sums differ from torch's only in rounding order.
    assert [c.token_ids for c in ours.generate(prompts, greedy)] == [c.token_ids for c in theirs.generate(prompts, greedy)]
    conversation = [{"role": "user", "content": "What is 2 + 2? Answer with a number."}]
    [chat] = ours.chat([conversation], GenerationParams(max_tokens=12))
    assert chat.texts == theirs.chat([conversation], GenerationParams(max_tokens=12))[0].texts
    assert "4" in chat.texts[0] and "<|im_start|>" not in chat.texts[0]
    # Why chat goes through the GGUF's jinja template (as transformers renders it) and not llama.cpp's
    # own chat formatting: that one recognises ChatML but not the default system turn SmolLM2's
    # template adds, so it agrees only when the conversation brings its own system message.
    system = [{"role": "system", "content": "You are terse."}, *conversation]
    assert _llama_chat_format(llama_cpp, ours, system) == ours.tokenizer.apply_chat_template(
        system, add_generation_prompt=True, tokenize=False)
    jinja = ours.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert _llama_chat_format(llama_cpp, ours, conversation) != jinja and "You are a helpful AI assistant" in jinja
    ours.close()


def _llama_chat_format(llama_cpp, generator, conversation: list[dict[str, str]]) -> str:
    """llama.cpp's built-in rendering (llama_chat_apply_template) of the GGUF's chat template."""
    template = llama_cpp.llama_model_chat_template(generator._model, None)
    # The encoded strings must outlive the call: keep them in a list.
    encoded = [(m["role"].encode(), m["content"].encode()) for m in conversation]
    messages = (llama_cpp.llama_chat_message * len(encoded))(*(llama_cpp.llama_chat_message(r, c) for r, c in encoded))
    buffer = ctypes.create_string_buffer(8192)
    size = llama_cpp.llama_chat_apply_template(template, messages, len(encoded), True, buffer, len(buffer))
    assert 0 < size <= len(buffer)
    return buffer.raw[:size].decode()


def test_missing_extra_and_non_gguf_models_are_one_line_errors(tiny_causal_lm: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    with pytest.raises(SetupError, match=r"pip install 'codeplan\[cpu\]'"):
        load_generator("llamacpp:model.gguf")
    monkeypatch.undo()
    pytest.importorskip("llama_cpp", reason=SKIP)
    with pytest.raises(InputError, match="codeplan export"):
        load_generator(f"llamacpp:{tiny_causal_lm}")
    with pytest.raises(InputError, match="dtype"):
        load_generator("llamacpp:model.gguf", dtype="float16")


def test_serve_streams_from_the_llamacpp_backend(tiny) -> None:
    import openai

    from codeplan.serve import background_server, create_app

    messages = [{"role": "user", "content": "Read the input."}]
    with background_server(create_app(tiny, "tiny-gguf", default_max_tokens=8)) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
        chunks = list(client.chat.completions.create(model="tiny-gguf", messages=messages, n=2, temperature=0.9,
                                                     max_tokens=8, seed=5, stream=True))
    [direct] = tiny.chat([messages], GenerationParams(n=2, temperature=0.9, max_tokens=8, seed=5))
    for i, text in enumerate(direct.texts):
        pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i]
        assert "".join(pieces) == text and len([p for p in pieces if p]) > 1  # streamed, not sent at the end


def test_a_script_that_never_closes_the_generator_exits_cleanly(llama_cpp, tiny_gguf: Path) -> None:
    # The generator is freed at interpreter exit, after module globals are torn down (with llama_cpp
    # imported by the script itself, its teardown comes first): no traceback at the end of a script.
    import subprocess

    script = ("import llama_cpp\nfrom codeplan.llm import GenerationParams, load_generator\n"
              f"g = load_generator('llamacpp:{tiny_gguf}', batch_size=2, n_threads=1)\n"
              "print(len(g.generate(['def f():'], GenerationParams(max_tokens=2))[0].texts))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
