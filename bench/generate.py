"""Throughput of the plan-sampling workload through codeplan's backends, in one process.

The workload is what `codeplan generate --strategy plan-sampling` sends a local model: per problem
one plan prompt with n=K, then K plan-conditioned code prompts with n=M each. Every engine gets the
same prompts (phase-2 prompts are built from the HF backend's plans), the same sampling settings
and the same batch size (in sequences); the script prints generated tokens per second for each and
its ratio to codeplan's HF backend measured in the same run. Engines:

  hf              codeplan's HF backend (transformers, its own decode loop, one prefill per prompt)
  plain           plain `model.generate(num_return_sequences=n)`
  llamacpp-DTYPE  codeplan's llama.cpp backend on the same weights exported by `codeplan export`
                  to a GGUF of DTYPE (f16, bf16, f32, q8_0; written once under the cache)
  raw-DTYPE       the engine's ceiling: the same GGUF, context and batches as llamacpp-DTYPE, but a
                  bare decode loop that takes each row's arg-max straight from llama.cpp's logits
                  buffer (greedy: no sampling, log-probabilities or stop strings), so nearly all its
                  time is llama_decode. llama.cpp's own sampler chain is no faster a ceiling: it
                  builds and sorts a vocabulary-sized candidate list per sequence per step

    .venv/bin/python bench/generate.py                       # SmolLM2-135M, hf against plain
    .venv/bin/python bench/generate.py --model ~/.cache/offline-models/qwen2.5-coder-0.5b-instruct.gguf \
        --engines hf,llamacpp-f16,llamacpp-q8_0 --problems 2 --plans 8 --codes 4 --plan-tokens 64 --code-tokens 64
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def _workload(problems: list[Any], k: int, plans_text: list[list[str]]) -> list[tuple[str, int]]:
    """(prompt, n) pairs of both phases; plans come from the first engine's phase 1 so that both
    engines see identical phase-2 prompts."""
    from codeplan.prompts import plan_conditioned_code_prompt

    return [(plan_conditioned_code_prompt(problem, plan), 0) for problem, plans in zip(problems, plans_text)
            for plan in plans[:k]]


def run_codeplan(generator: Any, prompts: list[str], n: int, max_tokens: int, seed: int) -> tuple[int, float, list[Any]]:
    from codeplan.llm import GenerationParams

    params = GenerationParams(n=n, temperature=0.6, top_p=0.95, max_tokens=max_tokens, seed=seed)
    start = time.perf_counter()
    completions = generator.generate(prompts, params)
    seconds = time.perf_counter() - start
    return sum(c.completion_tokens for c in completions), seconds, completions


def run_plain(model: Any, tokenizer: Any, prompts: list[str], n: int, max_tokens: int, batch_size: int,
              seed: int) -> tuple[int, float]:
    """`model.generate` with num_return_sequences=n, prompts batched so that prompts x n <= batch_size."""
    import torch

    torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    per_batch = max(1, batch_size // n)
    tokens = 0
    eos = tokenizer.eos_token_id
    start = time.perf_counter()
    for i in range(0, len(prompts), per_batch):
        batch = tokenizer(prompts[i:i + per_batch], return_tensors="pt", padding=True).to(model.device)
        with torch.no_grad():
            out = model.generate(**batch, do_sample=True, temperature=0.6, top_p=0.95, max_new_tokens=max_tokens,
                                 num_return_sequences=n, pad_token_id=tokenizer.pad_token_id)
        new = out[:, batch["input_ids"].shape[1]:]
        for row in new.tolist():
            tokens += next((j + 1 for j, t in enumerate(row) if t == eos), len(row))
    return tokens, time.perf_counter() - start


def run_raw(gen: Any, prompts: list[str], n: int, max_tokens: int, seed: int) -> tuple[int, float, list[Any]]:
    """The bare llama.cpp loop on `gen`'s model and context: each prompt evaluated once for its n
    sequences, then one llama_decode per step for every live sequence, greedy. Counts generated
    tokens as the backend does (an end token counts). `seed` is unused (greedy)."""
    import numpy as np

    from codeplan.llm.llamacpp import fill_batch

    llama = gen._llama
    vocab = llama.llama_model_get_vocab(gen._model)
    per_batch = max(1, gen.batch_size // n)
    tokens = 0
    start = time.perf_counter()
    for first in range(0, len(prompts), per_batch):
        batch_prompts = gen.encode(prompts[first:first + per_batch])
        seqs = len(batch_prompts) * n
        ctx = gen._ready(sum(map(len, batch_prompts)) + seqs * (max_tokens + 1), seqs)
        batch = gen._batch
        # Prefill: every prompt token tagged with its prompt's n sequence ids, in chunks of one
        # decode; each prompt's first token is the arg-max of its last token's logits.
        entries = [(t, pos, range(i * n, (i + 1) * n), pos == len(p) - 1)
                   for i, p in enumerate(batch_prompts) for pos, t in enumerate(p)]
        first_token: list[int] = []
        for chunk_start in range(0, len(entries), gen._batch_tokens):
            chunk = entries[chunk_start:chunk_start + gen._batch_tokens]
            fill_batch(batch, chunk)
            if llama.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            first_token += [int(np.ctypeslib.as_array(llama.llama_get_logits_ith(ctx, k), shape=(gen.n_vocab,)).argmax())
                            for k, e in enumerate(chunk) if e[3]]
        picked = [first_token[s // n] for s in range(seqs)]
        live = [(s, len(batch_prompts[s // n]), s) for s in range(seqs)]  # (sequence, next position, row in picked)
        for _ in range(max_tokens):
            step = []
            for s, pos, row in live:
                token = picked[row]
                tokens += 1
                if not llama.llama_vocab_is_eog(vocab, token):
                    step.append((token, pos, (s,), True))
                else:  # as the backend does: a finished sequence's cells go at once
                    llama.llama_memory_seq_rm(llama.llama_get_memory(ctx), s, -1, -1)
            if not step:
                break
            fill_batch(batch, step)
            if llama.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            # Outputs are stored in batch order: row k belongs to step[k].
            picked = np.ctypeslib.as_array(llama.llama_get_logits(ctx), shape=(len(step), gen.n_vocab)).argmax(axis=1).tolist()
            live = [(e[2][0], e[1] + 1, k) for k, e in enumerate(step)]
    return tokens, time.perf_counter() - start, []


def gguf_for(model: str, dtype: str) -> str:
    """The benchmark model exported to a GGUF of `dtype` (once; reused from the cache)."""
    from pathlib import Path

    from codeplan.export import ExportConfig, export_gguf
    from codeplan.modeling import cache_dir, resolve_model_source

    folder = Path(resolve_model_source(model)[0])
    out = cache_dir() / "bench-gguf" / f"{folder.name}-{dtype}.gguf"
    if not out.is_file():
        tokenizer = model if model.endswith(".gguf") else None  # carried over from the GGUF the model came from
        export_gguf(ExportConfig(model=str(folder), out=str(out), dtype=dtype, tokenizer_gguf=tokenizer))
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--engines", default="hf,plain", help="comma-separated: hf, plain, llamacpp-f16, llamacpp-q8_0, ...")
    parser.add_argument("--data", default="sample")
    parser.add_argument("--split", default="test")
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--plans", type=int, default=3, help="K")
    parser.add_argument("--codes", type=int, default=4, help="M")
    parser.add_argument("--plan-tokens", type=int, default=48)
    parser.add_argument("--code-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16, help="sequences decoded together, every engine")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads, every engine (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import os

    import torch

    from codeplan.config import DataConfig
    from codeplan.data import load_problems
    from codeplan.llm.hf import HFGenerator
    from codeplan.modeling import load_model, load_tokenizer
    from codeplan.prompts import plan_prompt

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if engines[0] != "hf":
        parser.error("the first engine must be hf: it writes the plans every engine's phase 2 uses, and is the baseline")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    problems = load_problems(DataConfig(path=args.data, split=args.split, limit=args.problems))
    model = load_model(args.model)
    tokenizer = load_tokenizer(args.model)
    hf = HFGenerator.from_model(model, tokenizer, name=args.model, batch_size=args.batch_size)
    plan_prompts = [plan_prompt(p) for p in problems]
    code_prompts: list[str] = []
    result: dict[str, Any] = {"model": args.model, "device": str(model.device), "threads": threads,
                              "problems": len(problems),
                              "K": args.plans, "M": args.codes, "plan_tokens": args.plan_tokens,
                              "code_tokens": args.code_tokens, "batch_size": args.batch_size, "engines": {}}
    for engine in engines:
        generator: Any = hf
        if engine == "plain":
            def run(prompts: list[str], n: int, max_tokens: int) -> tuple[int, float, list[Any]]:
                return (*run_plain(model, tokenizer, prompts, n, max_tokens, args.batch_size, args.seed), [])
        else:
            if engine.startswith(("llamacpp-", "raw-")):
                from codeplan.llm.llamacpp import LlamaCppGenerator

                generator = LlamaCppGenerator(gguf_for(args.model, engine.partition("-")[2]),
                                              batch_size=args.batch_size, n_threads=threads)
            elif engine != "hf":
                parser.error(f"unknown engine {engine}")
            measure = run_raw if engine.startswith("raw-") else run_codeplan

            def run(prompts: list[str], n: int, max_tokens: int, generator: Any = generator,
                    measure: Any = measure) -> tuple[int, float, list[Any]]:
                return measure(generator, prompts, n, max_tokens, args.seed)
        run([plan_prompts[0]], 1, 4)  # warm-up (first-call allocation, kernel selection), not timed
        load_before = os.getloadavg()[0]
        plan_tokens, plan_s, plans = run(plan_prompts, args.plans, args.plan_tokens)
        if engine == "hf":
            code_prompts = [prompt for prompt, _ in _workload(problems, args.plans, [c.texts for c in plans])]
        code_tokens, code_s, _ = run(code_prompts, args.codes, args.code_tokens)
        seconds = plan_s + code_s
        result["engines"][engine] = {"tokens": plan_tokens + code_tokens, "seconds": round(seconds, 2),
                                     "tokens_per_s": round((plan_tokens + code_tokens) / seconds, 1),
                                     # 1-minute load average before and after: other processes' share of the CPU.
                                     "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
        if generator is not hf:
            generator.close()  # one engine's memory at a time
    base = result["engines"]["hf"]["tokens_per_s"]
    for r in result["engines"].values():
        r["vs_hf"] = round(r["tokens_per_s"] / base, 2) if base else None
    if args.json:
        print(json.dumps(result))
        return
    print(f"plan-sampling workload: {len(problems)} problems, K={args.plans} plans of {args.plan_tokens} tokens, "
          f"M={args.codes} programs of {args.code_tokens} tokens per plan, batch {args.batch_size} sequences, "
          f"{result['device']} ({threads} threads), model {args.model}")
    for name, r in result["engines"].items():
        print(f"  {name:15s} {r['tokens']:6d} tokens in {r['seconds']:7.2f} s = {r['tokens_per_s']:7.1f} tokens/s"
              f"  ({r['vs_hf']}x the HF backend; load average {r['load_average'][0]} -> {r['load_average'][1]})")


if __name__ == "__main__":
    main()
