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
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from codeplan.config import DataConfig, StageConfig
from codeplan.errors import InputError, SetupError
from codeplan.jsonl import JsonlAppender, iter_jsonl, write_json, write_jsonl
from codeplan.llm.base import Completion, GenerationParams
from codeplan.problems import Problem


class DistillConfig(StageConfig):
    data: DataConfig
    out: str
    # The teacher: an OpenAI-compatible server (teacher_url + teacher_model) or a local model spec.
    teacher: str | None = None  # hf:MODEL (hub id, folder, .gguf, smollm2-135m-instruct) or vllm:MODEL
    teacher_url: str | None = None
    teacher_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    # What to ask for.
    forward: bool = False  # plan from the statement alone (the ablation); else backward from code
    include_statement: bool = False  # backward prompt also shows the problem statement
    solution_choice: Literal["first", "shortest", "all"] = "first"
    max_solutions: int | None = Field(None, ge=1)  # per problem; None (or choice "all") = every solution
    plans_per_solution: int = Field(1, ge=1)
    temperature: float = Field(0.2, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1)
    seed: int = 0
    # Throughput and faults.
    concurrency: int = Field(8, ge=1)  # requests in flight (server teacher)
    batch_size: int = Field(16, ge=1)  # sequences decoded together (local teacher)
    threads: int | None = Field(None, ge=1)  # torch CPU threads (local teacher); 1 is fastest on a busy CPU
    timeout: float = Field(120.0, gt=0)  # seconds per request
    max_retries: int = Field(6, ge=0)  # per request, on 429 / 5xx / timeouts / dropped connections / garbage
    backoff_base: float = Field(1.0, ge=0)
    backoff_max: float = Field(60.0, ge=0)
    max_attempts: int = Field(3, ge=1)  # answers per unit when the answer is empty, refused or not a plan
    retry_failures: bool = True  # a re-run retries the units in the failures file
    # Stop the run when this many units in a row failed for good (a teacher that is down would
    # otherwise cost every unit its full retry budget); 0 never stops.
    max_consecutive_failures: int = Field(20, ge=0)
    price_in: float | None = Field(None, ge=0)  # currency per 1M prompt tokens, for the cost line
    price_out: float | None = Field(None, ge=0)  # currency per 1M completion tokens
    # Plan faithfulness check: code written from the plan alone must pass the problem's tests.
    verify: bool = False
    verify_model: str | None = None  # generator spec for the code writer (hf:..., openai:URL); default: the teacher
    verify_model_name: str | None = None  # model name on the verify_model server (openai:URL)
    verify_tests: Literal["hidden", "public"] = "hidden"
    verify_with_statement: bool = False
    verify_max_tokens: int = Field(1024, ge=1)
    judge_workers: int | None = None
    judge_timeout: float | None = None
    unsafe_no_sandbox: bool = False
    progress: bool = True

    @model_validator(mode="after")
    def _one_teacher(self) -> "DistillConfig":
        if bool(self.teacher) == bool(self.teacher_url):
            raise ValueError("give either teacher (hf:MODEL) or teacher_url with teacher_model")
        if self.teacher_url and not self.teacher_model:
            raise ValueError("teacher_url needs teacher_model (the model name on that server)")
        return self


# ---- turning the teacher's answer into a numbered plan -------------------------------------------

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```[ \t]*(?=\n|$)|\Z)", re.S)
_CODE_LANGS = {"python", "py", "python3", "cpp", "c++", "c", "java", "javascript", "js", "go", "rust", "bash", "sh"}
_NUMBERED = re.compile(r"^\s*(?:#{1,6}\s*)?(?:\*\*|__)?\s*(?:step\s*(\d+)|(\d+)\s*[.):])\s*(?:\*\*|__)?\s*[:.)\-–]?\s*(?:\*\*|__)?\s*(.*)$",
                       re.I)
_BULLET = re.compile(r"^\s*[-*•+]\s+(.*)$")
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:'|no)t|i cannot|i'm unable|i am unable|as an ai)", re.I)
_CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import |for .*:\s*$|while .*:\s*$|if .*:\s*$|return\b|print\(|\w+\s*=\s*\S)")


def clean_plan(text: str, *, truncated: bool = False) -> tuple[str | None, str]:
    """(numbered plan, "") or (None, reason). Preambles ("Here is the plan:"), code blocks and
    closing chatter are dropped; "Step 1:", "1)", "**1.**" and bullets become "1. ", "2. ", ...
    Text under a step (sub-bullets, wrapped lines) joins that step; a step repeated word for word is
    kept once. `truncated` (the answer hit max_tokens) drops the unfinished last step."""
    if not text or not text.strip():
        return None, "empty answer"
    # An unwrapped block is followed by a blank line: its end ends the list, so chatter after the
    # closing fence does not join the last step.
    body = _FENCE.sub(lambda m: "" if _is_code_block(m.group(1), m.group(2)) else f"\n{m.group(2)}\n\n", text)
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").split("\n")]
    if not any(line.strip() for line in lines):
        return None, "answer holds only code, no plan"
    numbered = [i for i, line in enumerate(lines) if _NUMBERED.match(line)]
    markers = numbered or [i for i, line in enumerate(lines) if _BULLET.match(line)]
    if not markers:
        if _REFUSAL.match(body):
            return None, "refused: " + body.strip().split("\n")[0][:120]
        steps = _prose_steps([line for line in lines if not _CODE_LINE.match(line)])
        return _numbered(steps, truncated)
    steps: list[str] = []
    for k, start in enumerate(markers):
        end = markers[k + 1] if k + 1 < len(markers) else len(lines)
        head = _NUMBERED.match(lines[start]) if numbered else _BULLET.match(lines[start])
        first = (head.group(3) if numbered else head.group(1)) if head else lines[start]
        parts = [_unbold(first)]
        for line in lines[start + 1:end]:
            if not line.strip():
                if k == len(markers) - 1:
                    break  # after the last step, a blank line ends the plan: what follows is chatter
                continue
            sub = _BULLET.match(line)
            after_sentence = not sub and not line[:1].isspace() and parts[-1].rstrip().endswith((".", "!", "?"))
            if after_sentence and k == len(markers) - 1:
                break  # a new sentence flush left after the last finished step: closing remarks
            if after_sentence and line.rstrip().endswith(":"):
                continue  # "Here it is again:" between steps introduces, it is not part of a step
            parts.append(_unbold(sub.group(1) if sub else line.strip()))
        step = " ".join(p for p in parts if p).strip()
        if step:
            steps.append(step)
    return _numbered(steps, truncated)


def _numbered(steps: list[str], truncated: bool) -> tuple[str | None, str]:
    if truncated and len(steps) > 1:
        steps = steps[:-1]
    unique: list[str] = []
    for step in steps:
        if step not in unique:  # a small teacher that loops repeats whole steps
            unique.append(step)
    if not unique:
        return None, "no plan in answer"
    return "\n".join(f"{i}. {step}" for i, step in enumerate(unique, 1)), ""


def _is_code_block(lang: str, content: str) -> bool:
    if lang.lower() in _CODE_LANGS:
        return True
    if lang.lower() in ("", "text", "txt", "markdown", "md", "plaintext"):
        rows = [line for line in content.split("\n") if line.strip()]
        steps = sum(bool(_NUMBERED.match(r) or _BULLET.match(r)) for r in rows)
        return steps == 0 and sum(bool(_CODE_LINE.match(r)) for r in rows) * 2 >= len(rows) > 0
    return True


def _unbold(text: str) -> str:
    return re.sub(r"(\*\*|__)(.+?)\1", r"\2", text).strip().strip("*_").strip()


def _prose_steps(lines: list[str]) -> list[str]:
    """An answer without list markers: one step per paragraph line, or per sentence when it is one
    paragraph. A lone line that introduces something ("Here is the plan:") is not a step."""
    rows = [line.strip() for line in lines if line.strip() and not line.strip().endswith(":")]
    if len(rows) == 1:
        rows = [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", rows[0]) if s.strip()]
    return [_unbold(r) for r in rows]


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
            from codeplan.llm import load_generator

            options: dict[str, Any] = {}
            if cfg.verify_model.startswith("openai:"):
                options = {"model": cfg.verify_model_name or cfg.teacher_model or "", "api_key_env": cfg.api_key_env,
                           "concurrency": cfg.concurrency, "timeout": cfg.timeout, "max_retries": cfg.max_retries}
            self.verifier = load_generator(cfg.verify_model, **options)
        self.judge: Any = None
        self.bar: Any = None

    # -- messages and parameters --

    def messages(self, unit: Unit) -> list[dict[str, str]]:
        from codeplan.prompts import backward_messages, forward_messages

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
            plan, reason = clean_plan(text, truncated=truncated)
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
        from codeplan.judge import JudgeTask

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
        from codeplan.llm.openai_compat import OpenAIGenerator

        return OpenAIGenerator(cfg.teacher_url, cfg.teacher_model or "", api_key_env=cfg.api_key_env,
                               concurrency=cfg.concurrency, timeout=cfg.timeout, max_retries=cfg.max_retries,
                               backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max)
    from codeplan.llm import load_generator

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    spec = str(cfg.teacher)
    if spec.startswith("openai:"):
        raise InputError("use teacher_url and teacher_model for a server teacher", field="teacher")
    return load_generator(spec, **({} if spec.startswith("vllm:") else {"batch_size": cfg.batch_size}))


def distill(cfg: DistillConfig) -> dict[str, Any]:
    """Write cfg.out (appending, resuming) and return the run's summary (also in <out>.summary.json)."""
    from codeplan.data import load_problems

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
    run = _Run(cfg, units, already)
    failures_before = _drop_stale_failures(paths["failures"], direction, done) if cfg.retry_failures else None
    total = sum(len(u.plan_indices) for u in units)
    if cfg.progress and total:
        from tqdm import tqdm

        run.bar = tqdm(total=total, desc=f"distill ({direction})", unit="plan", file=sys.stderr, dynamic_ncols=True)
    judge_context = _judge(cfg) if cfg.verify and units else None
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


def _judge(cfg: DistillConfig) -> Any:
    try:
        from codeplan.judge import Judge, JudgeConfig
    except ImportError as err:
        raise SetupError(f"--verify needs the judge (codeplan.judge): {err}") from None
    options: dict[str, Any] = {"sandbox": not cfg.unsafe_no_sandbox}
    if cfg.judge_workers is not None:
        options["workers"] = cfg.judge_workers
    if cfg.judge_timeout is not None:
        options["timeout"] = cfg.judge_timeout
    return Judge(JudgeConfig(**options))


async def _run_async(run: _Run, plans: JsonlAppender, failures: SideFile, rejected: SideFile) -> None:
    """Server teacher: `concurrency` workers take units from a queue. Each answer is filed under
    the unit object that asked for it, so concurrency cannot misfile a plan."""
    from codeplan.llm.openai_compat import GenerationError

    queue: asyncio.Queue[Unit] = asyncio.Queue()
    for unit in run.units:
        queue.put_nowait(unit)
    judge_lock = asyncio.Lock()
    fatal: list[BaseException] = []
    in_a_row = [0]  # units that failed for good since the last answer

    async def verify(unit: Unit, good: list[tuple[int, str, dict[str, Any]]]) -> list[dict[str, Any] | None]:
        from codeplan.prompts import verify_messages
        from codeplan.sampling import extract_code

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
    from codeplan.llm.openai_compat import GenerationError

    per_batch = max(1, run.cfg.batch_size // run.cfg.plans_per_solution)
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
    from codeplan.prompts import verify_messages
    from codeplan.sampling import extract_code

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
