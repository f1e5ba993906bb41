"""The local transformers backend: same tokens as `model.generate`, one prefill shared by n samples,
seeded sampling, stop strings, log-probabilities, usage, encoder-decoder models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from codeplan.llm import GenerationParams, load_generator
from codeplan.llm.base import TextDelta
from codeplan.llm.hf import HFGenerator, _TextStream

PROMPTS = ["1. Read the input.\n2.", "def add(a, b):\n", "[GEN_CODE]\nQUESTION:\nRead n and print the sum"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tiny_causal_lm: Path) -> HFGenerator:
    generator = load_generator(f"hf:{tiny_causal_lm}", batch_size=8)
    assert isinstance(generator, HFGenerator)
    return generator


def test_greedy_matches_transformers_generate_in_a_padded_batch(tiny: HFGenerator) -> None:
    completions = tiny.generate(PROMPTS, GenerationParams(max_tokens=10))
    for prompt, completion in zip(PROMPTS, completions):
        encoded = tiny.tokenizer(prompt, return_tensors="pt")
        reference = tiny.model.generate(**encoded, max_new_tokens=10, do_sample=False)
        expected = tiny.tokenizer.decode(reference[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
        assert completion.texts == [expected]
        assert completion.prompt_tokens == encoded["input_ids"].shape[1]
        assert completion.completion_tokens == 10 and completion.finish_reasons == ["length"]


def test_logprobs_are_the_models_own_scores_of_the_sampled_tokens(tiny: HFGenerator) -> None:
    [completion] = tiny.generate([PROMPTS[0]], GenerationParams(n=3, temperature=1.0, max_tokens=6, seed=4))
    prompt_ids = tiny.tokenizer(PROMPTS[0])["input_ids"]
    assert completion.token_ids is not None and completion.logprobs is not None
    for ids, total in zip(completion.token_ids, completion.logprobs):
        full = torch.tensor([prompt_ids + ids])
        with torch.no_grad():
            logits = tiny.model(full).logits.float().log_softmax(-1)
        scored = logits[0, len(prompt_ids) - 1:-1].gather(-1, full[0, len(prompt_ids):, None]).sum().item()
        assert total == pytest.approx(scored, abs=1e-3)


def test_n_samples_share_one_prefill(tiny: HFGenerator) -> None:
    lengths: list[int] = []
    hook = tiny.model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        [completion] = tiny.generate([PROMPTS[2]], GenerationParams(n=4, temperature=1.0, max_tokens=5, seed=1))
    finally:
        hook.remove()
    prefills = [n for n in lengths if n > 1]
    assert len(prefills) == 1  # the prompt was run through the model once, not four times
    assert len(completion.texts) == 4 and len(set(completion.texts)) > 1


def test_seeded_sampling_repeats_and_does_not_depend_on_batching(tiny: HFGenerator) -> None:
    params = GenerationParams(n=2, temperature=1.0, top_p=0.9, max_tokens=8, seed=7)
    first = tiny.generate_tokens(tiny.encode(PROMPTS), params, seeds=[11, 12, 13])
    again = tiny.generate_tokens(tiny.encode(PROMPTS), params, seeds=[11, 12, 13])
    alone = tiny.generate_tokens(tiny.encode(PROMPTS[1:2]), params, seeds=[12])
    assert [c.texts for c in first] == [c.texts for c in again]
    assert alone[0].texts == first[1].texts
    other_seed = tiny.generate(PROMPTS, GenerationParams(n=2, temperature=1.0, max_tokens=8, seed=8))
    assert [c.texts for c in other_seed] != [c.texts for c in first]


def test_per_prompt_seeds_in_the_params_follow_their_prompt(tiny: HFGenerator) -> None:
    sampling = GenerationParams(n=2, temperature=1.0, max_tokens=8, seed=7)
    first = tiny.generate(PROMPTS, replace(sampling, seeds=(31, 32, 33)))
    # Same prompts and seeds in another order: each prompt's texts move with it.
    swapped = tiny.generate(PROMPTS[::-1], replace(sampling, seeds=(33, 32, 31)))
    assert [c.texts for c in swapped] == [c.texts for c in first][::-1]
    # Without `seeds`, prompt 0 gets seed + 0 = 31: the same texts as seeds[0] = 31.
    assert tiny.generate(PROMPTS[:1], replace(sampling, seed=31))[0].texts == first[0].texts
    # Whereas position decides without `seeds`: the swapped order gives the first prompt other texts.
    by_position = tiny.generate(PROMPTS[::-1], replace(sampling, seed=31))
    assert by_position[2].texts != first[0].texts
    with pytest.raises(ValueError, match="2 seeds for 3 prompts"):
        tiny.generate(PROMPTS, GenerationParams(temperature=1.0, max_tokens=4, seeds=(1, 2)))


def test_stop_strings_end_and_truncate_the_text(tiny: HFGenerator) -> None:
    [free] = tiny.generate([PROMPTS[1]], GenerationParams(max_tokens=12))
    assert len(free.texts[0]) > 4
    stop = free.texts[0][2:4]
    [stopped] = tiny.generate([PROMPTS[1]], GenerationParams(max_tokens=12, stop=(stop,)))
    assert stopped.texts[0] == free.texts[0][:free.texts[0].find(stop)]
    assert stopped.finish_reasons == ["stop"] and stopped.completion_tokens < free.completion_tokens


def test_on_text_streams_each_sequence_as_it_decodes_and_adds_up_to_its_text(tiny: HFGenerator) -> None:
    # batch_size 2 with n=2: each prompt decodes in its own batch, so prompt numbers must be mapped back.
    small = HFGenerator.from_model(tiny.model, tiny.tokenizer, batch_size=2)
    [free] = small.generate([PROMPTS[1]], GenerationParams(max_tokens=12))
    stop = (free.texts[0][3:6],)
    for params in (GenerationParams(n=2, temperature=1.0, max_tokens=12, seed=3, stop=stop),
                   GenerationParams(n=2, temperature=0.0, max_tokens=12, stop=stop)):
        steps: list[list[TextDelta]] = []
        streamed = small.generate_tokens(small.encode(PROMPTS), params, on_text=steps.append)
        assert streamed == small.generate_tokens(small.encode(PROMPTS), params)  # streaming changes nothing
        for p, completion in enumerate(streamed):
            for j, text in enumerate(completion.texts):
                mine = [d for step in steps for d in step if (d.prompt, d.index) == (p, j)]
                assert "".join(d.text for d in mine) == text  # nothing sent that the stop string cut off later
                assert [d.finish_reason for d in mine] == [None] * (len(mine) - 1) + [completion.finish_reasons[j]]
        assert sum(1 for step in steps if any(d.prompt == 0 and d.text for d in step)) > 1  # not all at the end
    assert streamed[1].finish_reasons == ["stop", "stop"]


def test_incremental_decoding_waits_for_whole_characters_and_possible_stop_strings(tiny: HFGenerator) -> None:
    text = "héllo ✓ wörld"
    tokens = tiny.tokenizer(text)["input_ids"]
    # The tiny byte-level tokenizer splits these characters across tokens (what this test is about).
    assert any(tiny.tokenizer.decode(tokens[:k]).endswith("\ufffd") for k in range(1, len(tokens)))
    stream = _TextStream(tiny.tokenizer, ())
    pieces = [stream.push(tokens[:k]) for k in range(1, len(tokens) + 1)]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)
    stream = _TextStream(tiny.tokenizer, ("wörld",))
    pieces = [stream.push(tokens[:k]) for k in range(1, len(tokens) + 1)]
    assert "".join(pieces) == "héllo ✓ " and stream.finish("héllo ✓ ") == ""


def test_on_text_can_stop_the_sequences_of_one_prompt(tiny: HFGenerator) -> None:
    params = GenerationParams(n=2, temperature=0.0, max_tokens=10)
    cancelled = tiny.generate_tokens(tiny.encode(PROMPTS[:2]), params, on_text=lambda deltas: {0})
    full = tiny.generate_tokens(tiny.encode(PROMPTS[:2]), params)
    assert full[0].finish_reasons == ["length", "length"]
    assert cancelled[0].finish_reasons == ["cancelled", "cancelled"] and cancelled[0].completion_tokens == 2
    assert cancelled[1].texts == full[1].texts  # the other prompt of the batch went on


def test_chat_without_a_template_uses_a_transcript_and_counts_usage(tiny: HFGenerator) -> None:
    before = tiny.stats.snapshot()
    completions = tiny.chat([[{"role": "user", "content": "Read the input."}]] * 2, GenerationParams(n=2, max_tokens=3))
    assert [len(c.texts) for c in completions] == [2, 2]
    after = tiny.stats.snapshot()
    assert after["requests"] - before["requests"] == 2
    assert after["completion_tokens"] - before["completion_tokens"] == sum(c.completion_tokens for c in completions)


def test_from_model_wraps_an_in_memory_model(tiny: HFGenerator) -> None:
    wrapped = HFGenerator.from_model(tiny.model, tiny.tokenizer, batch_size=2)
    assert wrapped.generate(PROMPTS, GenerationParams(max_tokens=4))[0].texts == \
        tiny.generate(PROMPTS, GenerationParams(max_tokens=4))[0].texts


def test_encoder_decoder_model_matches_generate_and_samples_n(tiny_seq2seq_lm: Path) -> None:
    generator = HFGenerator(str(tiny_seq2seq_lm))
    greedy = generator.generate(PROMPTS[:2], GenerationParams(max_tokens=6))
    for prompt, completion in zip(PROMPTS[:2], greedy):
        encoded = generator.tokenizer(prompt, return_tensors="pt")
        reference = generator.model.generate(**encoded, max_new_tokens=6, do_sample=False)
        assert completion.texts == [generator.tokenizer.decode(reference[0], skip_special_tokens=True)]
    [sampled] = generator.generate([PROMPTS[0]], GenerationParams(n=3, temperature=1.0, max_tokens=6, seed=2))
    assert len(sampled.texts) == 3 and sampled.logprobs is not None and all(lp < 0 for lp in sampled.logprobs)


def test_vllm_spec_without_vllm_is_a_setup_error() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        from codeplan.errors import SetupError

        with pytest.raises(SetupError, match="pip install"):
            load_generator("vllm:some/model")
    else:  # pragma: no cover - only where vllm is installed
        pytest.skip("vllm is installed")


@pytest.mark.slow
def test_real_smollm2_chat_follows_its_template(smollm2_gguf: str) -> None:
    generator = HFGenerator("smollm2-135m-instruct", batch_size=4)
    [completion] = generator.chat([[{"role": "user", "content": "What is 2 + 2? Answer with a number."}]],
                                  GenerationParams(max_tokens=12))
    assert "4" in completion.texts[0]
    assert "<|im_start|>" not in completion.texts[0] and "assistant" not in completion.texts[0].lower()[:12]
