"""How often each arm's programs pass the problem's public test, and on how many problems at least
one of its 8 programs does: the ceiling of any strategy that submits a program seen to pass.

Plan-sampled arms judged their programs while generating (samples.plans.jsonl holds the verdicts);
direct arms' programs are judged here on the public test, in codeplan's sandbox. Reranked arms keep
only the program they submit, so they have no row (their 8 programs are drawn like the
direct arm of the same student). Run from the repository root:

    .venv/bin/python experiments/mbpp/public_coverage.py > experiments/mbpp/out/public_coverage.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from codeplan.data.loading import load_problems
from codeplan.judge import Judge, JudgeConfig, JudgeTask
from codeplan.jsonl import read_jsonl
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


def main() -> None:
    cfg = load_run_config("experiments/mbpp/run.yaml")
    problems = {problem.id: problem for problem in load_problems(cfg.data.test)}
    lines = ["| arm | programs passing the public test | problems where at least one does | solved (hidden tests, pass@1) |",
             "| --- | --- | --- | --- |"]
    with Judge(JudgeConfig(workers=1)) as judge:
        for arm in cfg.runs():
            folder = cfg.results_path(arm).parent
            plans_file, samples_file = folder / "samples.plans.jsonl", folder / "samples.jsonl"
            if not cfg.results_path(arm).is_file():
                continue
            if plans_file.is_file():
                verdicts = judged_verdicts(plans_file)
            elif cfg.generate_config(arm).strategy == "direct" and samples_file.is_file():
                verdicts = public_verdicts(samples_file, problems, judge)
            else:
                continue
            programs = sum(len(v) for v in verdicts.values())
            passing = sum(sum(v) for v in verdicts.values())
            covered = sum(1 for v in verdicts.values() if any(v))
            solved = json.loads(cfg.results_path(arm).read_text(encoding="utf-8"))["pass_at_k"]["1"]
            lines.append(f"| {arm.label} | {passing} of {programs} ({100 * passing / programs:.1f}%) | "
                         f"{covered} of {len(verdicts)} | {100 * solved:.1f}% |")
            print(f"{arm.label}: done", file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
