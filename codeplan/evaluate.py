"""Stage 4, `codeplan evaluate`: judge samples.jsonl on the hidden tests and write results.json.

Verdicts are cached in an append-only JSONL file keyed by hash(program, tests, limits, mode), one
record per judged sample, flushed as soon as it is known: a re-run is free and a killed evaluation
resumes where it stopped. Expected outputs derived from reference solutions (HumanEval+/MBPP+), and
with `calibrate` the reference solutions' times, are cached in the same file, so a resumed run
judges with the limits the first one measured (outputs too large for one cache line, over the
judge's value budget, are not cached: a resumed run computes them again).

Cost: each verdict record also names the judging session that wrote it (its start time) and the
wall seconds from that session's start to the verdict. results.json's `cost` is computed from the
cache, never from the clock of the run that writes it, so a re-run that judges nothing writes the
same file: `programs_judged` (distinct programs), `cpu_seconds` (their CPU, as the judge measured
each one), `wall_seconds` (the sum over the sessions its verdicts came from of each session's last
verdict time: a resumed evaluation adds its sessions, a killed one counts up to its last verdict;
None when some verdict was cached before codeplan recorded sessions) and `sessions`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from tqdm import tqdm

from codeplan.config import DataConfig, StageConfig
from codeplan.data import load_problems
from codeplan.errors import InputError
from codeplan.jsonl import JsonlAppender, iter_jsonl, write_json
from codeplan.judge import Judge, JudgeConfig, JudgeTask, ProgramResult
from codeplan.judge._worker import TooLarge, decode_value, encode_value
from codeplan.metrics import SampleScore, aggregate, aggregate_by_difficulty
from codeplan.output_lock import locks_output
from codeplan.problems import Problem

# Bump when a change to the judge can change verdicts, or when cached records lack a field
# results.json needs: old cache records are then ignored. 5: `failure` (the first failing test)
# in results.json, and stdin programs can read their input from ./input.txt (APPS compatibility).
JUDGE_VERSION = 5


class EvaluateConfig(StageConfig):
    """Settings of `codeplan evaluate`; `judge` holds how programs are run (limits, sandbox, comparison)."""

    renamed = {"workers": "judge.workers", "timeout": "judge.timeout", "calibrate": "judge.calibrate",
               "unsafe_no_sandbox": "judge.sandbox (false)", "strict": "judge.strict", "memory_mb": "judge.memory_mb"}

    data: DataConfig
    samples: str = Field(description="samples.jsonl to judge.")
    out: str = Field(description="results.json to write.")
    k: list[int] = Field(default_factory=lambda: [1, 5, 10], description="Comma-separated k for pass@k.")
    cache: str | None = Field(None, description="Verdict cache (JSONL; default: OUT.cache.jsonl).")
    tests: Literal["hidden", "public"] = Field("hidden", description="hidden (default) or public tests.")
    progress: bool = Field(True, description="Show the progress bar.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig)

    @field_validator("k")
    @classmethod
    def _positive(cls, k: list[int]) -> list[int]:
        if not k or min(k) < 1:
            raise ValueError("expected positive integers")
        return k


def cache_path(cfg: EvaluateConfig) -> Path:
    return Path(cfg.cache) if cfg.cache else Path(cfg.out).with_name(Path(cfg.out).name + ".cache.jsonl")


def read_samples(path: str, problems: dict[str, Problem]) -> list[tuple[str, str]]:
    """(problem_id, code) in file order; unknown ids and bad fields are InputErrors naming the line."""
    samples: list[tuple[str, str]] = []
    for line, record in iter_jsonl(path):
        problem_id, code = record.get("problem_id"), record.get("code")
        if not isinstance(problem_id, str):
            raise InputError("expected a string problem_id", path=path, line=line, field="problem_id")
        if problem_id not in problems:
            raise InputError(f"unknown problem id {problem_id!r} (not in the data given with --data)",
                             path=path, line=line, field="problem_id")
        if not isinstance(code, str):
            raise InputError("expected the program as a string", path=path, line=line, record=problem_id, field="code")
        samples.append((problem_id, code))
    return samples


def verdict_key(judge: Judge, problem: Problem, code: str, cfg: EvaluateConfig) -> str:
    """What decides a verdict: the program, the problem's tests, the limits and the comparison mode."""
    tests = problem.hidden_tests if cfg.tests == "hidden" else problem.public_tests
    blob = json.dumps({
        "version": JUDGE_VERSION, "code": code, "kind": problem.kind, "entry_point": problem.entry_point,
        "setup": problem.test_setup, "tests": [t.model_dump(mode="json") for t in tests],
        "public": [t.model_dump(mode="json") for t in problem.public_tests] if problem.outputs_from_solution else None,
        "reference": problem.solutions[:1] if problem.outputs_from_solution else None, "atol": problem.atol,
        "limits": judge.limits(problem), "max_timeouts": judge.cfg.max_timeouts, "strict": cfg.judge.strict, "sandbox": cfg.judge.sandbox,
        "hide_asserts": judge.cfg.hide_assert_expected,
        "calibrate": [judge.cfg.calibrate_factor, judge.cfg.calibrate_min] if judge.cfg.calibrate else judge.cfg.calibrate_factor,
        "arg_types": [problem.metadata.get(key) for key in ("tuple_args", "arg_types")] if problem.outputs_from_solution else None,
    }, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class Cache:
    """What the cache file holds: verdicts by key; reference outputs (and their slowest test's
    CPU seconds) and reference times by the reference run's key."""

    verdicts: dict[str, dict] = field(default_factory=dict)
    references: dict[str, tuple[list, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    judged_in: dict[str, str] = field(default_factory=dict)  # verdict key -> the session that judged it
    session_seconds: dict[str, float] = field(default_factory=dict)  # session -> wall seconds to its last verdict

    def add_verdict(self, record: dict[str, Any]) -> None:
        self.verdicts[record["key"]] = record["result"]
        if isinstance(record.get("session"), str) and isinstance(record.get("elapsed"), (int, float)):
            self.judged_in[record["key"]] = record["session"]
            session = record["session"]
            self.session_seconds[session] = max(self.session_seconds.get(session, 0.0), float(record["elapsed"]))
        else:  # judged before sessions were recorded (or re-judged): its time is unknown
            self.judged_in.pop(record["key"], None)


def load_cache(path: Path) -> Cache:
    cache = Cache()
    if not path.exists():
        return cache
    for _, record in iter_jsonl(path, skip_torn_tail=True):
        if "key" in record and isinstance(record.get("result"), dict):
            cache.add_verdict(record)
        elif "reference" in record:
            cache.references[record["reference"]] = (decode_value(record["values"]), float(record.get("cpu", 0.0)))
        elif "timing" in record:
            cache.timings[record["timing"]] = float(record["cpu"])
    return cache


@locks_output(lambda cfg: cfg.out)
@locks_output(cache_path)  # a --cache shared by two outputs is appended to by one run at a time
def evaluate(cfg: EvaluateConfig) -> dict:
    """Judge every sample (cached verdicts are reused), compute the metrics, write results.json."""
    problems = {problem.id: problem for problem in load_problems(cfg.data)}
    samples = read_samples(cfg.samples, problems)
    cache_file = cache_path(cfg)
    stored = load_cache(cache_file)
    cached = stored.verdicts
    judge = Judge(cfg.judge)
    keys = [verdict_key(judge, problems[pid], code, cfg) for pid, code in samples]
    todo, seen = [], set()
    for index, key in enumerate(keys):  # identical samples of a problem are judged once
        if key not in cached and key not in seen:
            seen.add(key)
            todo.append(index)
    if todo:
        _judge_missing(judge, cfg, samples, problems, keys, todo, stored, cache_file)
    results = [ProgramResult(**cached[key]) for key in keys]
    report = summarize(cfg, samples, problems, results, judge_cost(keys, stored))
    write_json(cfg.out, report)
    return report


def _judge_missing(judge: Judge, cfg: EvaluateConfig, samples: list[tuple[str, str]], problems: dict[str, Problem],
                   keys: list[str], todo: list[int], stored: Cache, cache_file: Path) -> None:
    cached, references, timings = stored.verdicts, stored.references, stored.timings
    for problem in {samples[i][0]: problems[samples[i][0]] for i in todo}.values():
        key = judge.references.key(problem) if problem.outputs_from_solution or cfg.judge.calibrate else None
        if problem.outputs_from_solution and key in references:
            judge.references.set_outputs(problem, *references[key])
        elif key in timings:
            judge.references.set_time(problem, timings[key])
    session, started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), time.perf_counter()
    tasks = [JudgeTask(problem=problems[samples[i][0]], code=samples[i][1], tests=cfg.tests) for i in todo]
    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), desc="evaluate", unit="program",
               file=sys.stderr, dynamic_ncols=True, disable=not cfg.progress)
    passed = [sum(1 for key in keys if key in cached and cached[key]["passed"])]
    with judge, JsonlAppender(cache_file) as cache:
        def record(index: int, result: ProgramResult) -> None:
            key = keys[todo[index]]
            line = {"key": key, "problem_id": samples[todo[index]][0], "result": result.to_record(),
                    "session": session, "elapsed": round(time.perf_counter() - started, 3)}
            stored.add_verdict(line)
            cache.write(line)
            passed[0] += result.passed
            bar.set_postfix(passed=passed[0], refresh=False)
            bar.update(1)

        judge.prepare_references(tasks)
        for problem in {task.problem.id: task.problem for task in tasks}.values():
            key = judge.references.key(problem) if problem.outputs_from_solution or cfg.judge.calibrate else None
            if not key:
                continue
            if problem.outputs_from_solution and key not in references and judge.references.outputs(problem) is not None:
                references[key] = judge.references.outputs(problem)
                values, cpu = references[key]
                try:
                    cache.write({"reference": key, "values": encode_value(values), "cpu": cpu})
                except TooLarge:  # a cache line of that size would cost more than running the reference again
                    tqdm.write(f"evaluate: {problem.id}: the reference's outputs are too large to cache; "
                               "a resumed run computes them again", file=sys.stderr)
            elif not problem.outputs_from_solution and key not in timings and judge.references.time(problem) is not None:
                timings[key] = judge.references.time(problem)
                cache.write({"timing": key, "cpu": timings[key]})
        try:
            judge.run(tasks, on_result=record)
        finally:
            bar.close()


def judge_cost(keys: list[str], stored: Cache) -> dict[str, Any]:
    """results.json's `cost` from the cache (see the module docstring): the same on every re-run."""
    distinct = list(dict.fromkeys(keys))
    sessions = {stored.judged_in[key] for key in distinct if key in stored.judged_in}
    untimed = any(key not in stored.judged_in for key in distinct)
    return {"programs_judged": len(distinct),
            "cpu_seconds": round(sum(float(stored.verdicts[key].get("cpu_seconds", 0.0)) for key in distinct), 3),
            "wall_seconds": None if untimed else round(sum(stored.session_seconds[s] for s in sessions), 3),
            "sessions": len(sessions)}


def summarize(cfg: EvaluateConfig, samples: list[tuple[str, str]], problems: dict[str, Problem],
              results: list[ProgramResult], cost: dict[str, Any] | None = None) -> dict[str, Any]:
    per_problem: dict[str, list[ProgramResult]] = {}
    for (problem_id, _), result in zip(samples, results):
        per_problem.setdefault(problem_id, []).append(result)
    scores = {pid: [SampleScore(r.passed, r.tests_passed, r.tests_total) for r in rs] for pid, rs in per_problem.items()}
    overall = aggregate(scores, cfg.k)
    difficulty = {pid: problems[pid].difficulty for pid in per_problem}
    return {
        "pass_at_k": overall["pass_at_k"],
        "per_difficulty": aggregate_by_difficulty(scores, difficulty, cfg.k),
        "strict_accuracy": overall["strict_accuracy"],
        "test_case_average": overall["test_case_average"],
        "num_problems": overall["num_problems"],
        "num_samples": len(samples),
        "problems_without_samples": len(problems) - len(per_problem),
        "verdicts": dict(Counter(result.verdict for result in results)),
        "problems": {
            pid: {"n": len(rs), "c": sum(r.passed for r in rs), "difficulty": problems[pid].difficulty,
                  "samples": [{"passed": r.passed, "verdict": r.verdict, "tests_passed": r.tests_passed,
                               "tests_total": r.tests_total, "detail": r.detail,
                               **({"failure": r.failure} if r.failure else {})} for r in rs]}
            for pid, rs in per_problem.items()
        },
        **({"cost": cost} if cost is not None else {}),
        "config": {"samples": cfg.samples, "data": cfg.data.path, "k": cfg.k, "tests": cfg.tests,
                   "timeout": cfg.judge.timeout, "calibrate": cfg.judge.calibrate,
                   "strict": cfg.judge.strict, "sandbox": cfg.judge.sandbox, "memory_mb": cfg.judge.memory_mb,
                   "judge_version": JUDGE_VERSION},
    }
