"""How often each arm's programs pass the problem's public test, and on how many problems at least
one of its programs does: the ceiling of any strategy that submits a program seen to pass.

Generated programs: a plan-sampled arm's judged programs (their verdicts are in
samples.plans.jsonl, from generation); a direct arm's samples, judged here on the public test in
codeplan's sandbox. A reranked arm keeps only the program it submits, which passes the public test
exactly where one of its 8 did, so its "submitted" column is also its coverage. Submitted
programs (samples.jsonl, every arm) are judged here too. Run from the repository root:

    .venv/bin/python experiments/mbpp/public_coverage.py > experiments/mbpp/out/public_coverage.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from codeplan.data.loading import load_problems
from codeplan.jsonl import read_jsonl
from codeplan.judge import Judge, JudgeConfig, JudgeTask
from codeplan.pipeline import load_run_config


def judged_verdicts(plans_file: Path) -> dict[str, list[bool]]:
    """problem id -> passed, for every program judged while choosing a plan."""
    return {row["problem_id"]: [program["passed"] for candidate in row["candidates"] for program in candidate["programs"]]
            for row in read_jsonl(plans_file)}


def public_verdicts(samples_file: Path, problems: dict, judge: Judge) -> dict[str, list[bool]]:
    """problem id -> passed, judging every program of a samples file on its problem's public test."""
    rows = list(read_jsonl(samples_file))
    results = judge.run([JudgeTask(problem=problems[row["problem_id"]], code=row["code"], tests="public", early_exit=False)
                         for row in rows])
    verdicts: dict[str, list[bool]] = defaultdict(list)
    for row, result in zip(rows, results):
        verdicts[row["problem_id"]].append(result.passed)
    return verdicts


def share(verdicts: dict[str, list[bool]]) -> str:
    programs = sum(len(v) for v in verdicts.values())
    passing = sum(sum(v) for v in verdicts.values())
    return f"{passing} of {programs} ({100 * passing / programs:.1f}%)"


def main() -> None:
    cfg = load_run_config("experiments/mbpp/run.yaml")
    problems = {problem.id: problem for problem in load_problems(cfg.data.test)}
    header = ["arm", "generated programs passing the public test", "problems where at least one does",
              "submitted programs passing the public test", "pass@1 (hidden tests)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    with Judge(JudgeConfig(workers=1)) as judge:
        for arm in cfg.runs():
            folder = cfg.results_path(arm).parent
            if not cfg.results_path(arm).is_file():
                continue
            submitted = public_verdicts(folder / "samples.jsonl", problems, judge)
            strategy = cfg.generate_config(arm).strategy
            generated = (judged_verdicts(folder / "samples.plans.jsonl") if strategy == "plan-sampling"
                         else submitted if strategy == "direct" else None)
            # A reranked arm submits a program passing the public test exactly where one of its own did.
            reached = generated or submitted
            covered = f"{sum(1 for v in reached.values() if any(v))} of {len(reached)}"
            solved = json.loads(cfg.results_path(arm).read_text(encoding="utf-8"))["pass_at_k"]["1"]
            lines.append(f"| {arm.label} | {share(generated) if generated else 'not kept'} | {covered} | "
                         f"{share(submitted)} | {100 * solved:.1f}% |")
            print(f"{arm.label}: done", file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
