"""Requests per second of `codeplan distill` against `codeplan serve`, at several concurrencies.

    .venv/bin/python bench/distill.py                    # tiny random model, 16-token answers
    .venv/bin/python bench/distill.py --model smollm2-135m-instruct --max-tokens 32

The server runs in this process on a free port (uvicorn on a thread); distill talks to it over
real HTTP with the openai client. Each concurrency gets a fresh output file and the same units, and
the ratio is against concurrency 1 measured in this same run. The server batches the requests that
arrive together, so throughput should grow with concurrency until the batch size is reached.

With `--teachers SPEC,SPEC,...` it compares local teachers instead (no server): each distils the
same units in this process, and the ratio is against the first spec, e.g. the HF backend against
llama.cpp on the same GGUF:

    .venv/bin/python bench/distill.py --problems 16 --max-tokens 64 --teachers \
        hf:~/.cache/offline-models/qwen2.5-coder-1.5b-instruct.gguf,llamacpp:~/.cache/offline-models/qwen2.5-coder-1.5b-instruct.gguf
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_problems(path: Path, count: int) -> Path:
    from codeplan.problems import Problem, write_problems

    problems = [Problem(id=f"b{k}", statement=f"Print the sum of the first {k} numbers.", kind="stdin",
                        solutions=[f"n = {k}\ntotal = 0\nfor i in range(n):\n    total += i\nprint(total)"])
                for k in range(count)]
    write_problems(path, problems)
    return path


def tiny_model(folder: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_tiny_causal_lm  # the same two-layer model the tests use

    return str(make_tiny_causal_lm(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model to serve (default: a tiny random model made here)")
    parser.add_argument("--problems", type=int, default=48, help="units (one solution each) per concurrency")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--batch-size", type=int, default=16, help="server batch size (sequences)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (on a shared 2-core machine more threads oversubscribe it)")
    parser.add_argument("--teachers", default=None, help="compare these local teacher specs instead (see above)")
    args = parser.parse_args()
    if args.teachers:
        compare_teachers(args)
        return

    import torch

    torch.set_num_threads(args.threads)

    from codeplan.config import DataConfig
    from codeplan.distill import DistillConfig, distill
    from codeplan.llm.hf import HFGenerator
    from codeplan.serve import background_server, create_app

    work = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    model = args.model or tiny_model(work / "tiny")
    data = make_problems(work / "problems.jsonl", args.problems)
    generator = HFGenerator(model, batch_size=args.batch_size)
    app = create_app(generator, "bench")
    rows = []
    with background_server(app) as url:
        # Warm-up: the first requests pay for lazy initialisation, not for concurrency.
        distill(DistillConfig(data=DataConfig(path=str(data), limit=2), out=str(work / "warm.jsonl"), teacher_url=url,
                              teacher_model="bench", max_tokens=args.max_tokens, progress=False))
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            batches_before = app.state.codeplan.batches
            summary = distill(DistillConfig(
                data=DataConfig(path=str(data)), out=str(work / f"plans-c{concurrency}.jsonl"), teacher_url=url,
                teacher_model="bench", concurrency=concurrency, max_tokens=args.max_tokens, temperature=0.0,
                max_attempts=1, request_timeout=600, progress=False))
            rows.append({"concurrency": concurrency, "requests": summary["requests"], "seconds": summary["seconds"],
                         "requests_per_s": summary["requests_per_s"],
                         "completion_tokens_per_s": round(summary["completion_tokens"] / summary["seconds"], 1),
                         "server_batches": app.state.codeplan.batches - batches_before})
    base = rows[0]["requests_per_s"]
    print(f"\nmodel: {args.model or 'tiny random 2-layer Llama'}; {args.problems} requests per row, "
          f"max_tokens {args.max_tokens}, server batch size {args.batch_size}, torch threads {args.threads}")
    print(f"{'concurrency':>11} {'requests':>8} {'seconds':>8} {'req/s':>7} {'tok/s':>7} {'batches':>7} {'vs c=1':>7}")
    for row in rows:
        print(f"{row['concurrency']:>11} {row['requests']:>8} {row['seconds']:>8.2f} {row['requests_per_s']:>7.2f} "
              f"{row['completion_tokens_per_s']:>7.1f} {row['server_batches']:>7} {row['requests_per_s'] / base:>6.2f}x")
    print(json.dumps(rows))


def compare_teachers(args: argparse.Namespace) -> None:
    """The same units through each local teacher, in this process; ratios against the first."""
    import os
    import time

    import torch

    import codeplan.distill
    from codeplan.config import BackendConfig, DataConfig
    from codeplan.distill import DistillConfig, distill
    from codeplan.llm import load_generator

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    data = make_problems(work / "problems.jsonl", args.problems)
    make_teacher = codeplan.distill._make_teacher  # type: ignore[attr-defined]
    rows = []
    for k, spec in enumerate(args.teachers.split(",")):
        spec = spec.split(":", 1)[0] + ":" + str(Path(spec.split(":", 1)[1]).expanduser())
        started = time.perf_counter()
        backend = BackendConfig(batch_size=args.batch_size, threads=args.threads)
        teacher = load_generator(spec, backend)
        load_s = time.perf_counter() - started
        # distill loads its teacher inside its timing; hand it this one so the figures are distilling only.
        codeplan.distill._make_teacher = lambda cfg, teacher=teacher: teacher  # type: ignore[attr-defined]
        base = {"data": DataConfig(path=str(data)), "teacher": spec, "max_tokens": args.max_tokens, "temperature": 0.0,
                "max_attempts": 1, "backend": backend, "progress": False}
        # Warm-up on 2 units (first-call allocation), not timed.
        distill(DistillConfig(**{**base, "data": DataConfig(path=str(data), limit=2)}, out=str(work / f"warm{k}.jsonl")))
        before = teacher.stats.snapshot()
        summary = distill(DistillConfig(**base, out=str(work / f"plans{k}.jsonl")))
        after = teacher.stats.snapshot()  # the teacher's totals include the warm-up: count this run only
        tokens = after["completion_tokens"] - before["completion_tokens"]
        rows.append({"teacher": spec, "load_s": round(load_s, 1), "requests": after["requests"] - before["requests"],
                     "plans_written": summary["plans_written"], "seconds": summary["seconds"], "completion_tokens": tokens,
                     "completion_tokens_per_s": round(tokens / summary["seconds"], 1)})
        del teacher
        codeplan.distill._make_teacher = make_teacher
    base_rate = rows[0]["completion_tokens_per_s"]
    print(f"\n{args.problems} units, max_tokens {args.max_tokens}, greedy, batch size {args.batch_size}, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}")
    for row in rows:
        print(f"  {row['teacher']}: {row['completion_tokens']} tokens in {row['seconds']:.1f} s = "
              f"{row['completion_tokens_per_s']} tokens/s ({row['completion_tokens_per_s'] / base_rate:.2f}x); "
              f"model load {row['load_s']} s, not counted")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
