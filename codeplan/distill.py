"""`codeplan distill`: a teacher LLM writes the plan behind each reference solution (METHOD.md §1).

Work unit: (problem, solution index), asking for the plan indices still missing for it. Each plan is
appended to plans.jsonl the moment it arrives (flushed and fsynced), so a crash or Ctrl-C loses only
requests in flight, and a re-run skips every (problem, solution, plan index) already on file. Units
that keep failing go to `<out>.failures.jsonl` with the reason (a re-run tries them again); plans the
`--verify` check rejects go to `<out>.rejected.jsonl` (not retried: the check ran and said no).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from tqdm import tqdm

from codeplan.config import BackendConfig, DataConfig, StageConfig
from codeplan.data import load_problems
from codeplan.errors import InputError, SetupError
from codeplan.jsonl import JsonlAppender, iter_jsonl, write_json, write_jsonl
from codeplan.judge import Judge, JudgeConfig, JudgeTask
from codeplan.llm import Completion, GenerationParams, load_generator
from codeplan.llm.openai_compat import GenerationError, OpenAIGenerator
from codeplan.output_lock import locks_output
from codeplan.problems import Problem
from codeplan.prompts import backward_messages, forward_messages, verify_messages
from codeplan.sanitize import extract_code, teacher_plan


class DistillConfig(StageConfig):
    renamed = {"timeout": "request_timeout", "batch_size": "backend.batch_size", "threads": "backend.threads",
               "judge_workers": "judge.workers", "judge_timeout": "judge.timeout",
               "unsafe_no_sandbox": "judge.sandbox (false)"}

    data: DataConfig
    out: str = Field(description="plans.jsonl to write (appended to; re-runs resume).")
    # The teacher: an OpenAI-compatible server (teacher_url + teacher_model) or a local model spec.
    teacher: str | None = Field(None, description="A local teacher: hf:MODEL (hub id, folder, .gguf, packaged name) or vllm:MODEL.")
    teacher_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server.")
    teacher_model: str | None = Field(None, description="Model name on that server.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the server's API key.")
    # What to ask for.
    forward: bool = Field(False, description="Plan from the statement alone (the ablation); else backward from code.")
    include_statement: bool = Field(False, description="Backward prompt also shows the problem statement.")
    solution_choice: Literal["first", "shortest", "all"] = Field("first", description="Which solutions get plans.")
    max_solutions: int | None = Field(None, ge=1, description="Reference solutions per problem that get plans (default: every one).")
    plans_per_solution: int = Field(1, ge=1, description="Plans asked for per chosen solution.")
    temperature: float = Field(0.2, ge=0.0, description="Teacher temperature (release: 0.2).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Teacher nucleus sampling.")
    max_tokens: int = Field(512, ge=1, description="Longest plan, in tokens.")
    seed: int = Field(0, description="Base seed (each unit gets its own from it).")
    # Throughput and faults.
    concurrency: int = Field(8, ge=1, description="Requests in flight (server teacher).")
    request_timeout: float = Field(120.0, gt=0, description="Seconds per request (server teacher).")
    max_retries: int = Field(6, ge=0, description="Per request, on 429 / 5xx / timeouts / dropped connections / garbage.")
    backoff_base: float = Field(1.0, ge=0, description="First retry's back-off, seconds (doubles each retry).")
    backoff_max: float = Field(60.0, ge=0, description="Longest back-off, seconds.")
    max_attempts: int = Field(3, ge=1, description="Answers per unit when the answer is empty, refused or not a plan.")
    retry_failures: bool = Field(True, description="A re-run retries the units in the failures file.")
    # Stop the run when this many units in a row failed for good (a teacher that is down would
    # otherwise cost every unit its full retry budget); 0 never stops.
    max_consecutive_failures: int = Field(20, ge=0, description="Stop after this many units in a row failed for good (0: never).")
    price_in: float | None = Field(None, ge=0, description="Currency per 1M prompt tokens, for the cost line.")
    price_out: float | None = Field(None, ge=0, description="Currency per 1M completion tokens.")
    # Plan faithfulness check: code written from the plan alone must pass the problem's tests.
    verify: bool = Field(False, description="Keep a plan only if code written from it passes the tests.")
    verify_model: str | None = Field(None, description="Generator spec for the code writer (hf:..., openai:URL); default: the teacher.")
    verify_model_name: str | None = Field(None, description="Model name on the verify_model server (openai:URL).")
    verify_tests: Literal["hidden", "public"] = Field("hidden", description="Tests the --verify code must pass: hidden or public.")
    verify_with_statement: bool = Field(False, description="Show the code writer the problem statement too.")
    verify_max_tokens: int = Field(1024, ge=1, description="Longest program the code writer may write.")
    progress: bool = Field(True, description="Show the progress bar.")
    backend: BackendConfig = Field(default_factory=BackendConfig)  # a local teacher (and code writer)
    judge: JudgeConfig = Field(default_factory=JudgeConfig, json_schema_extra={"flag_prefix": "judge-"})  # --verify programs

    @model_validator(mode="after")
    def _one_teacher(self) -> "DistillConfig":
        if bool(self.teacher) == bool(self.teacher_url):
            raise ValueError("give either teacher (hf:MODEL) or teacher_url with teacher_model")
        if self.teacher_url and not self.teacher_model:
            raise ValueError("teacher_url needs teacher_model (the model name on that server)")
        return self


# ---- work units ------------------------------------------------------------------------------------

Key = tuple[str, int, int]  # (problem_id, solution_index, plan_index)


@dataclass
class Unit:
    problem: Problem
    solution_index: int
    plan_indices: list[int]
    attempts: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.problem.id}#{self.solution_index}"


def choose_solutions(problem: Problem, choice: str, max_solutions: int | None) -> list[int]:
    """Which reference solutions get plans: `first` keeps file order, `shortest` prefers the
    shortest programs (cheaper, and the most direct way the problem is solved), `all` ignores the cap.
    Blank solutions are never chosen."""
    usable = [i for i, s in enumerate(problem.solutions) if s.strip()]
    if choice == "shortest":
        usable.sort(key=lambda i: (len(problem.solutions[i]), i))
    if choice == "all" or max_solutions is None:
        return usable
    return sorted(usable[:max_solutions])


def plan_units(problems: list[Problem], cfg: DistillConfig, done: set[Key]) -> tuple[list[Unit], int, int]:
    """(units still to do, plans already on file, problems without any usable solution)."""
    units: list[Unit] = []
    already = 0
    no_solution = 0
    for problem in problems:
        chosen = choose_solutions(problem, cfg.solution_choice, cfg.max_solutions)
        if not chosen:
            no_solution += 1
        for s in chosen:
            missing = [p for p in range(cfg.plans_per_solution) if (problem.id, s, p) not in done]
            already += cfg.plans_per_solution - len(missing)
            if missing:
                units.append(Unit(problem, s, missing))
    return units, already, no_solution


def side_paths(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    stem = out.name[:-len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return {name: out.with_name(f"{stem}.{name}.{'json' if name == 'summary' else 'jsonl'}")
            for name in ("failures", "rejected", "summary")}


class SideFile:
    """An append-only side file (failures, rejected plans) that is created by its first record, so a
    run with nothing to file leaves none behind; once open it is a `JsonlAppender` (fsynced records)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._appender: JsonlAppender | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self._appender is None:
            self._appender = JsonlAppender(self.path)  # cuts a torn tail left by a killed run first
        self._appender.write(record)

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()

    def __enter__(self) -> "SideFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_keys(path: Path, direction: str) -> set[Key]:
    keys: set[Key] = set()
    if not path.exists():
        return keys
    for line, record in iter_jsonl(path, skip_torn_tail=True):
        try:
            if record.get("direction", direction) == direction:
                keys.add((str(record["problem_id"]), int(record["solution_index"]), int(record.get("plan_index", 0))))
        except (KeyError, TypeError, ValueError):
            raise InputError("expected problem_id and integer solution_index / plan_index", path=path, line=line) from None
    return keys


def unit_seed(base: int, unit: Unit) -> int:
    """A seed per unit and attempt, independent of order and of what ran before: a resumed run asks
    for what an uninterrupted one would have asked."""
    text = f"{base}|{unit.problem.id}|{unit.solution_index}|{unit.attempts}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


# ---- the run -------------------------------------------------------------------------------------


class _Run:
    """State of one distill run: the teacher, the output files, counters, the progress bar."""

    def __init__(self, cfg: DistillConfig, units: list[Unit], already: int) -> None:
        self.cfg = cfg
        self.direction = "forward" if cfg.forward else "backward"
        self.teacher_name = cfg.teacher_model if cfg.teacher_url else str(cfg.teacher)
        self.paths = side_paths(cfg.out)
        self.units = units
        self.already = already
        self.written = 0
        self.failed = 0
        self.rejected = 0
        self.verified = 0
        self.attempts_for_content = 0
        self.failure_reasons: dict[str, int] = {}
        self.started = time.monotonic()
        self.teacher = _make_teacher(cfg)
        self.verifier = self.teacher
        if cfg.verify and cfg.verify_model:
            options: dict[str, Any] = {}
            if cfg.verify_model.startswith("openai:"):
                options = {"model": cfg.verify_model_name or cfg.teacher_model or "", "api_key_env": cfg.api_key_env,
                           "concurrency": cfg.concurrency, "timeout": cfg.request_timeout, "max_retries": cfg.max_retries}
            self.verifier = load_generator(cfg.verify_model, cfg.backend, **options)
        self.judge: Any = None
        self.bar: Any = None

    # -- messages and parameters --

    def messages(self, unit: Unit) -> list[dict[str, str]]:

        if self.cfg.forward:
            return forward_messages(unit.problem)
        solution = unit.problem.solutions[unit.solution_index]
        return backward_messages(unit.problem, solution, include_statement=self.cfg.include_statement)

    def params(self, unit: Unit) -> GenerationParams:
        return GenerationParams(n=len(unit.plan_indices), temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                max_tokens=self.cfg.max_tokens, seed=unit_seed(self.cfg.seed, unit))

    def verify_params(self, n: int, seed: int) -> GenerationParams:
        return GenerationParams(n=n, temperature=0.0, max_tokens=self.cfg.verify_max_tokens, seed=seed)

    # -- what to do with an answer --

    def take(self, unit: Unit, completion: Completion) -> list[tuple[int, str, dict[str, Any]]]:
        """Clean each text; return (plan_index, plan, extra) for the good ones and leave the plan
        indices whose answer was unusable in unit.plan_indices for another attempt."""
        good: list[tuple[int, str, dict[str, Any]]] = []
        still: list[int] = []
        share_in = completion.prompt_tokens
        share_out = completion.completion_tokens // max(1, len(completion.texts))
        reasons = list(completion.finish_reasons) + ["?"] * len(completion.texts)
        for k, (index, text) in enumerate(zip(unit.plan_indices, completion.texts)):
            truncated = reasons[k] == "length"
            plan, reason = teacher_plan(text, truncated=truncated)
            if plan is None:
                still.append(index)
                unit.errors.append(f"{reason} | {text.strip()[:200]!r}" if text.strip() else reason)
            else:
                good.append((index, plan, {"usage": {"prompt_tokens": share_in, "completion_tokens": share_out},
                                           "finish_reason": reasons[k], "truncated": truncated}))
                share_in = 0  # the prompt was sent once for all n answers
        missing = unit.plan_indices[len(completion.texts):]  # a backend that returned fewer texts
        if missing:
            unit.errors.append(f"teacher returned {len(completion.texts)} answers for {len(unit.plan_indices)}")
        unit.plan_indices = still + missing
        unit.attempts += 1
        return good

    def record(self, unit: Unit, plan_index: int, plan: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {"problem_id": unit.problem.id, "solution_index": unit.solution_index, "plan": plan,
                "direction": self.direction, "teacher": self.teacher_name, "plan_index": plan_index,
                "include_statement": self.cfg.include_statement and not self.cfg.forward, **extra}

    def write_plan(self, plans: JsonlAppender, rejected: SideFile, record: dict[str, Any],
                   verdict: dict[str, Any] | None) -> None:
        if verdict is None:
            plans.write(record)
            self.written += 1
        elif verdict["passed"]:
            plans.write(record | {"verified": True})
            self.written += 1
            self.verified += 1
        else:
            rejected.write(record | {"verified": False, "verification": verdict})
            self.rejected += 1
        self.advance()

    def fail(self, failures: SideFile, unit: Unit, reason: str, kind: str, indices: list[int] | None = None) -> None:
        """Record the unit's missing plans (or just `indices`) as failed: a re-run asks again."""
        for index in unit.plan_indices if indices is None else indices:
            failures.write({"problem_id": unit.problem.id, "solution_index": unit.solution_index, "plan_index": index,
                            "direction": self.direction, "teacher": self.teacher_name, "kind": kind,
                            "reason": reason, "attempts": unit.attempts, "errors": unit.errors[-3:]})
            self.failed += 1
            self.failure_reasons[kind] = self.failure_reasons.get(kind, 0) + 1
            self.advance()
        if indices is None:
            unit.plan_indices = []

    def advance(self) -> None:
        if self.bar is not None:
            stats = self.teacher.stats
            self.bar.set_postfix(ok=self.written, failed=self.failed, retries=stats.retries, refresh=False)
            self.bar.update(1)

    # -- verification --

    def verify_codes(self, problems: list[Problem], codes: list[str]) -> list[dict[str, Any]]:
        results = self.judge.run([JudgeTask(problem=p, code=c, tests=self.cfg.verify_tests, early_exit=True)
                                  for p, c in zip(problems, codes)])
        return [{"passed": bool(r.passed), "verdict": str(r.verdict), "tests_passed": int(r.tests_passed),
                 "tests_total": int(r.tests_total)} for r in results]

    # -- summary --

    def summary(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        stats = self.teacher.stats.snapshot()
        if self.verifier is not self.teacher:
            other = self.verifier.stats.snapshot()
            for key in ("requests", "retries", "failures", "prompt_tokens", "completion_tokens"):
                stats[key] += other[key]  # type: ignore[operator]
        cost = None
        if self.cfg.price_in is not None or self.cfg.price_out is not None:
            cost = (stats["prompt_tokens"] * (self.cfg.price_in or 0) + stats["completion_tokens"] * (self.cfg.price_out or 0)) / 1e6  # type: ignore[operator]
        judged = self.verified + self.rejected
        return {
            "out": str(self.cfg.out), "direction": self.direction, "teacher": self.teacher_name,
            "plans_requested": self.already + self.written + self.failed + self.rejected + self.pending(),
            "plans_on_file_before": self.already, "plans_written": self.written, "failed": self.failed,
            "failure_kinds": self.failure_reasons, "rejected_by_verify": self.rejected,
            "verify_kept_share": (self.verified / judged) if judged else None,
            "pending": self.pending(),
            "requests": stats["requests"], "retries": stats["retries"], "request_failures": stats["failures"],
            "errors": stats["errors"], "prompt_tokens": stats["prompt_tokens"],
            "completion_tokens": stats["completion_tokens"], "seconds": round(seconds, 3),
            "requests_per_s": round(stats["requests"] / seconds, 3) if seconds > 0 else None,  # type: ignore[operator]
            "plans_per_s": round(self.written / seconds, 3) if seconds > 0 else None,
            "cost": cost, "failures_file": str(self.paths["failures"]) if self.failed else None,
        }

    def pending(self) -> int:
        return sum(len(u.plan_indices) for u in self.units)


def _make_teacher(cfg: DistillConfig) -> Any:
    if cfg.teacher_url:
        return OpenAIGenerator(cfg.teacher_url, cfg.teacher_model or "", api_key_env=cfg.api_key_env,
                               concurrency=cfg.concurrency, timeout=cfg.request_timeout, max_retries=cfg.max_retries,
                               backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max)
    spec = str(cfg.teacher)
    if spec.startswith("openai:"):
        raise InputError("use teacher_url and teacher_model for a server teacher", field="teacher")
    return load_generator(spec, cfg.backend)


@locks_output(lambda cfg: cfg.out)
def distill(cfg: DistillConfig) -> dict[str, Any]:
    """Write cfg.out (appending, resuming) and return the run's summary (also in <out>.summary.json)."""
    problems = load_problems(cfg.data)
    direction = "forward" if cfg.forward else "backward"
    paths = side_paths(cfg.out)
    out = Path(cfg.out)
    done = _read_keys(out, direction) | _read_keys(paths["rejected"], direction)
    if not cfg.retry_failures:
        done |= _read_keys(paths["failures"], direction)
    units, already, no_solution = plan_units(problems, cfg, done)
    if no_solution == len(problems) and problems:
        raise InputError("no problem has a reference solution to plan from", path=cfg.data.path, field="solutions")
    if not units and paths["summary"].is_file():
        # Nothing left to plan: the teacher is not loaded, and the summary of the run that wrote
        # the plans is kept (a re-run of a finished pipeline costs nothing here).
        print(f"distill: nothing to do, {already} plans already on file in {out}", file=sys.stderr)
        return json.loads(paths["summary"].read_text(encoding="utf-8"))
    run = _Run(cfg, units, already)
    failures_before = _drop_stale_failures(paths["failures"], direction, done) if cfg.retry_failures else None
    total = sum(len(u.plan_indices) for u in units)
    if cfg.progress and total:
        run.bar = tqdm(total=total, desc=f"distill ({direction})", unit="plan", file=sys.stderr, dynamic_ncols=True)
    judge_context = Judge(cfg.judge) if cfg.verify and units else None
    try:
        with JsonlAppender(out) as plans, SideFile(paths["failures"]) as failures, \
                SideFile(paths["rejected"]) as rejected:
            if judge_context is not None:
                run.judge = judge_context.__enter__()
            if hasattr(run.teacher, "achat_one"):
                asyncio.run(_run_async(run, plans, failures, rejected))
            else:
                _run_batched(run, plans, failures, rejected)
    finally:
        if judge_context is not None:
            judge_context.__exit__(*sys.exc_info())
        if run.bar is not None:
            run.bar.close()
    summary = run.summary() | {"problems": len(problems), "problems_without_solutions": no_solution,
                                "failures_retried": failures_before}
    write_json(paths["summary"], summary)
    _print_summary(summary)
    return summary


def _drop_stale_failures(path: Path, direction: str, done: set[Key]) -> int:
    """Failures of this direction are retried now: keep only the other direction's records in the
    file (this run appends the ones that fail again), removing it when none are left (no file
    means no failures). Returns how many are being retried."""
    if not path.exists():
        return 0
    keep, retried = [], 0
    for _, record in iter_jsonl(path, skip_torn_tail=True):
        if record.get("direction") == direction:
            retried += 1
        else:
            keep.append(record)
    if keep:
        write_jsonl(path, keep)
    else:
        path.unlink()
    return retried


async def _run_async(run: _Run, plans: JsonlAppender, failures: SideFile, rejected: SideFile) -> None:
    """Server teacher: `concurrency` workers take units from a queue. Each answer is filed under
    the unit object that asked for it, so concurrency cannot misfile a plan."""
    queue: asyncio.Queue[Unit] = asyncio.Queue()
    for unit in run.units:
        queue.put_nowait(unit)
    judge_lock = asyncio.Lock()
    fatal: list[BaseException] = []
    in_a_row = [0]  # units that failed for good since the last answer

    async def verify(unit: Unit, good: list[tuple[int, str, dict[str, Any]]]) -> list[dict[str, Any] | None]:
        verdicts: list[dict[str, Any] | None] = []
        for index, plan, _ in good:
            messages = verify_messages(unit.problem, plan, include_statement=run.cfg.verify_with_statement)
            try:
                params = run.verify_params(1, unit_seed(run.cfg.seed, unit) + index)
                if hasattr(run.verifier, "achat_one"):
                    answer = await run.verifier.achat_one(messages, params)
                else:  # a local code writer: one at a time on a helper thread
                    answer = (await asyncio.to_thread(run.verifier.chat, [messages], params))[0]
                code = extract_code(answer.texts[0])
            except GenerationError as err:  # no verdict: the plan is neither kept nor rejected
                verdicts.append({"error": str(err), "kind": f"verify_{err.kind}", "fatal": err.fatal})
                continue
            async with judge_lock:  # one judge batch at a time; the judge runs its own workers
                verdicts.append((await asyncio.to_thread(run.verify_codes, [unit.problem], [code]))[0])
        return verdicts

    async def work() -> None:
        while not fatal:
            try:
                unit = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            while unit.plan_indices and not fatal:
                if unit.attempts >= run.cfg.max_attempts:
                    run.fail(failures, unit, f"no usable plan in {unit.attempts} answers: {unit.errors[-1]}", "bad_answer")
                    break
                try:
                    completion = await run.teacher.achat_one(run.messages(unit), run.params(unit))
                except GenerationError as err:
                    if err.fatal:
                        fatal.append(err)
                        return
                    unit.errors.append(str(err))
                    run.fail(failures, unit, str(err), err.kind)
                    in_a_row[0] += 1
                    if run.cfg.max_consecutive_failures and in_a_row[0] >= run.cfg.max_consecutive_failures:
                        fatal.append(GenerationError(err.kind, f"{in_a_row[0]} units in a row failed; last: {err}"))
                    break
                in_a_row[0] = 0
                good = run.take(unit, completion)
                verdicts = await verify(unit, good) if run.cfg.verify and good else [None] * len(good)
                for (index, plan, extra), verdict in zip(good, verdicts):
                    if verdict is not None and "error" in verdict:
                        if verdict["fatal"]:
                            fatal.append(GenerationError(verdict["kind"], verdict["error"], fatal=True))
                        run.fail(failures, unit, verdict["error"], verdict["kind"], indices=[index])
                    else:
                        run.write_plan(plans, rejected, run.record(unit, index, plan, extra), verdict)

    workers = [asyncio.create_task(work()) for _ in range(min(run.cfg.concurrency, max(1, len(run.units))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await run.teacher.aclose()
        if run.verifier is not run.teacher and hasattr(run.verifier, "aclose"):
            await run.verifier.aclose()
    if fatal:
        raise SetupError(f"stopped: the teacher at {run.cfg.teacher_url} failed: {fatal[0]} "
                         "(finished plans are saved; run the same command again to resume)")


def _run_batched(run: _Run, plans: JsonlAppender, failures: SideFile, rejected: SideFile) -> None:
    """Local teacher: units go to the model in batches (their n answers share one prefill)."""
    per_batch = max(1, run.cfg.backend.batch_size // run.cfg.plans_per_solution)
    pending = list(run.units)
    while pending:
        batch, pending = pending[:per_batch], pending[per_batch:]
        while batch:
            by_n: dict[int, list[Unit]] = {}
            for unit in batch:
                by_n.setdefault(len(unit.plan_indices), []).append(unit)
            for n, group in by_n.items():
                completions = _local_chat(run.teacher, [run.messages(u) for u in group],
                                          [run.params(u) for u in group])
                found: list[tuple[Unit, int, str, dict[str, Any]]] = []
                for unit, completion in zip(group, completions):
                    found.extend((unit, index, plan, extra) for index, plan, extra in run.take(unit, completion))
                try:
                    verdicts = _verify_batch(run, found) if run.cfg.verify and found else [None] * len(found)
                except GenerationError as err:  # a server code writer failed: no verdict, a re-run asks again
                    if err.fatal:
                        raise SetupError(f"the --verify model refused the run: {err}") from None
                    for unit, index, _, _ in found:
                        run.fail(failures, unit, str(err), f"verify_{err.kind}", indices=[index])
                    continue
                for (unit, index, plan, extra), verdict in zip(found, verdicts):
                    run.write_plan(plans, rejected, run.record(unit, index, plan, extra), verdict)
            still = []
            for unit in batch:
                if not unit.plan_indices:
                    continue
                if unit.attempts >= run.cfg.max_attempts:
                    run.fail(failures, unit, f"no usable plan in {unit.attempts} answers: {unit.errors[-1]}", "bad_answer")
                else:
                    still.append(unit)
            batch = still


def _local_chat(generator: Any, conversations: list[list[dict[str, str]]], params: list[GenerationParams]) -> list[Completion]:
    """One batched call, each conversation with its own seed."""
    seeds = None if any(p.seed is None for p in params) else tuple(p.seed for p in params)
    return generator.chat(conversations, replace(params[0], seeds=seeds))


def _verify_batch(run: _Run, found: list[tuple[Unit, int, str, dict[str, Any]]]) -> list[dict[str, Any] | None]:
    conversations = [verify_messages(u.problem, plan, include_statement=run.cfg.verify_with_statement)
                     for u, _, plan, _ in found]
    answers = _local_chat(run.verifier, conversations,
                          [run.verify_params(1, unit_seed(run.cfg.seed, u) + i) for u, i, _, _ in found])
    codes = [extract_code(a.texts[0]) for a in answers]
    return list(run.verify_codes([u.problem for u, _, _, _ in found], codes))


def _print_summary(summary: dict[str, Any]) -> None:
    line = (f"distill: {summary['plans_written']} plans written ({summary['plans_on_file_before']} already on file), "
            f"{summary['failed']} failed, {summary['requests']} requests ({summary['retries']} retries, "
            f"{summary['requests_per_s']} req/s), tokens in/out {summary['prompt_tokens']}/{summary['completion_tokens']}")
    if summary.get("verify_kept_share") is not None:
        line += f", verify kept {summary['verify_kept_share']:.1%} ({summary['rejected_by_verify']} rejected)"
    if summary.get("cost") is not None:
        line += f", cost {summary['cost']:.4f}"
    if summary["failed"]:
        line += f"; failures in {summary['failures_file']} (a re-run retries them)"
    print(line, file=sys.stderr, flush=True)
