"""Requests per second of `codeplan distill` against `codeplan serve`, at several concurrencies.

    .venv/bin/python bench/distill.py                    # tiny random model, 16-token answers
    .venv/bin/python bench/distill.py --model smollm2-135m-instruct --max-tokens 32

The server runs in this process on a free port (uvicorn on a thread); distill talks to it over
real HTTP with the openai client. Each concurrency gets a fresh output file and the same units, and
the ratio is against concurrency 1 measured in this same run. The server batches the requests that
arrive together, so throughput should grow with concurrency until the batch size is reached.
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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
