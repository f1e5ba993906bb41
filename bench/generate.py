"""Throughput of the plan-sampling workload: codeplan's HF backend against plain `model.generate`.

The workload is what `codeplan generate --strategy plan-sampling` sends a local model: per problem
one plan prompt with n=K, then K plan-conditioned code prompts with n=M each. Both engines get the
same prompts, the same sampling settings and the same batch size (in sequences), in one process,
and the script prints generated tokens per second for each and their ratio.

    .venv/bin/python bench/generate.py                       # SmolLM2-135M on this machine (CPU)
    .venv/bin/python bench/generate.py --model Qwen/Qwen2.5-Coder-0.5B-Instruct --problems 16 --plans 8 --codes 8
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data", default="sample")
    parser.add_argument("--split", default="test")
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--plans", type=int, default=3, help="K")
    parser.add_argument("--codes", type=int, default=4, help="M")
    parser.add_argument("--plan-tokens", type=int, default=48)
    parser.add_argument("--code-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16, help="sequences decoded together, both engines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import torch

    from codeplan.config import DataConfig
    from codeplan.data import load_problems
    from codeplan.llm.hf import HFGenerator
    from codeplan.modeling import load_model, load_tokenizer
    from codeplan.prompts import plan_prompt

    torch.set_num_threads(max(1, torch.get_num_threads()))
    problems = load_problems(DataConfig(path=args.data, split=args.split, limit=args.problems))
    model = load_model(args.model)
    tokenizer = load_tokenizer(args.model)
    generator = HFGenerator.from_model(model, tokenizer, name=args.model, batch_size=args.batch_size)

    # Warm-up (first-call allocation and kernel selection) for both engines, not timed.
    run_codeplan(generator, [plan_prompt(problems[0])], 1, 4, args.seed)
    run_plain(model, tokenizer, [plan_prompt(problems[0])], 1, 4, args.batch_size, args.seed)

    plan_prompts = [plan_prompt(p) for p in problems]
    ours_plan_tokens, ours_plan_s, plan_completions = run_codeplan(generator, plan_prompts, args.plans, args.plan_tokens, args.seed)
    plain_plan_tokens, plain_plan_s = run_plain(model, tokenizer, plan_prompts, args.plans, args.plan_tokens,
                                                args.batch_size, args.seed)
    code_prompts = [prompt for prompt, _ in _workload(problems, args.plans, [c.texts for c in plan_completions])]
    ours_code_tokens, ours_code_s, _ = run_codeplan(generator, code_prompts, args.codes, args.code_tokens, args.seed)
    plain_code_tokens, plain_code_s = run_plain(model, tokenizer, code_prompts, args.codes, args.code_tokens,
                                                args.batch_size, args.seed)
    ours = (ours_plan_tokens + ours_code_tokens) / (ours_plan_s + ours_code_s)
    plain = (plain_plan_tokens + plain_code_tokens) / (plain_plan_s + plain_code_s)
    result = {
        "model": args.model, "device": str(model.device), "threads": torch.get_num_threads(),
        "problems": len(problems), "K": args.plans, "M": args.codes, "batch_size": args.batch_size,
        "codeplan_hf": {"tokens": ours_plan_tokens + ours_code_tokens, "seconds": round(ours_plan_s + ours_code_s, 2),
                        "tokens_per_s": round(ours, 1)},
        "model_generate": {"tokens": plain_plan_tokens + plain_code_tokens,
                           "seconds": round(plain_plan_s + plain_code_s, 2), "tokens_per_s": round(plain, 1)},
        "speedup": round(ours / plain, 2) if plain else None,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"plan-sampling workload: {len(problems)} problems, K={args.plans} plans, M={args.codes} programs per plan, "
          f"batch {args.batch_size} sequences, {result['device']} ({result['threads']} threads), model {args.model}")
    for name in ("codeplan_hf", "model_generate"):
        r = result[name]
        print(f"  {name:15s} {r['tokens']:6d} tokens in {r['seconds']:7.2f} s = {r['tokens_per_s']:7.1f} tokens/s")
    print(f"  speedup (codeplan HF backend / model.generate): {result['speedup']}x")


if __name__ == "__main__":
    main()
