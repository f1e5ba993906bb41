"""Training examples: problems + teacher plans -> (task, prompt, target) -> token ids.

Bad input is counted per kind and skipped (reported in train_summary.json); with `stop_on_bad_input` the
first one raises an InputError naming the file, record and field instead.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeplan.data import load_problems
from codeplan.errors import InputError, SetupError
from codeplan.jsonl import iter_jsonl
from codeplan.problems import Problem
from codeplan.prompts import chat_prompt, code_prompt, plan_conditioned_code_prompt, plan_prompt
from codeplan.train.config import Task, TrainConfig

IGNORE = -100  # label value the loss skips (prompt tokens, padding)


@dataclass(frozen=True)
class Example:
    task: Task
    problem_id: str
    prompt: str
    target: str


@dataclass
class Encoded:
    """One tokenized example. Causal LMs: `input_ids` = prompt + target, `labels` masks the prompt.
    Encoder-decoders: `input_ids` = source, `labels` = target."""

    task: Task
    input_ids: list[int]
    labels: list[int]

    @property
    def num_target_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class DataReport:
    """What was used and what was left out, per reason (written into train_summary.json)."""

    problems: int = 0
    train_problems: int = 0
    val_problems: int = 0
    excluded_test_split: int = 0
    problems_without_solutions: int = 0
    plans_total: int = 0
    plans_unknown_problem: int = 0
    plans_not_selected: int = 0
    plans_empty: int = 0
    plans_bad_solution_index: int = 0
    examples: Counter = field(default_factory=Counter)
    val_examples: Counter = field(default_factory=Counter)
    truncated: Counter = field(default_factory=Counter)
    skipped_too_long: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = dict(value) if isinstance(value, Counter) else value
        return out


@dataclass(frozen=True)
class PlanRecord:
    problem_id: str
    solution_index: int
    plan: str


def _bad(report_field: str, message: str, cfg: TrainConfig, report: DataReport, *, path: str, line: int | None,
         record: str | None, field_name: str | None) -> None:
    """Count a bad input, or raise it in strict mode."""
    if cfg.stop_on_bad_input:
        raise InputError(message, path=path, line=line, record=record, field=field_name)
    setattr(report, report_field, getattr(report, report_field) + 1)


def read_plans(path: str | Path) -> list[tuple[int, PlanRecord]]:
    """Read plans.jsonl; malformed records (wrong types, missing fields) are always errors."""
    records = []
    for line, rec in iter_jsonl(path):
        pid = rec.get("problem_id")
        if not isinstance(pid, str) or not pid:
            raise InputError("expected a non-empty string", path=path, line=line, field="problem_id")
        index = rec.get("solution_index", 0)
        if not isinstance(index, int) or isinstance(index, bool):
            raise InputError("expected an integer", path=path, line=line, record=pid, field="solution_index")
        plan = rec.get("plan")
        if not isinstance(plan, str):
            raise InputError("expected a string", path=path, line=line, record=pid, field="plan")
        records.append((line, PlanRecord(pid, index, plan)))
    return records


def load_training_problems(cfg: TrainConfig, report: DataReport) -> list[Problem]:
    problems = load_problems(cfg.data)
    report.problems = len(problems)
    if cfg.data.split is None:
        # Never train on test problems by accident: with no split chosen, a test split is left out.
        kept = [p for p in problems if (p.split or "").lower() != "test"]
        report.excluded_test_split = len(problems) - len(kept)
        problems = kept
    with_solutions = []
    for problem in problems:
        if any(s.strip() for s in problem.solutions):
            with_solutions.append(problem)
        else:
            _bad("problems_without_solutions", "problem has no reference solution", cfg, report,
                 path=cfg.data.path, line=None, record=problem.id, field_name="solutions")
    return with_solutions


def all_problem_ids(cfg: TrainConfig, selected: list[Problem]) -> set[str]:
    """Ids of every problem in the data, selected or not (to tell unselected from unknown plans)."""
    if cfg.data.split is None and not cfg.data.difficulty and cfg.data.limit is None:
        everything = load_problems(cfg.data)
    else:
        everything = load_problems(cfg.data.model_copy(update={"split": None, "difficulty": None, "limit": None}))
    return {p.id for p in everything} | {p.id for p in selected}


def split_validation(problems: list[Problem], fraction: float, seed: int) -> tuple[list[Problem], list[Problem]]:
    """Hold out whole problems (never one problem's plan in train and its code in validation)."""
    if fraction <= 0 or len(problems) < 2:
        return problems, []
    ids = sorted(p.id for p in problems)
    random.Random(seed).shuffle(ids)
    n_val = min(len(ids) - 1, max(1, math.ceil(fraction * len(ids))))
    val_ids = set(ids[:n_val])
    return [p for p in problems if p.id not in val_ids], [p for p in problems if p.id in val_ids]


def build_examples(problems: list[Problem], plans: list[tuple[int, PlanRecord]], cfg: TrainConfig,
                   report: DataReport, *, all_ids: set[str] | None = None) -> list[Example]:
    """Code examples (one per reference solution), and in CodePLAN mode plan and plan-conditioned
    code examples (one per teacher plan)."""
    by_id = {p.id: p for p in problems}
    tasks = cfg.tasks()
    examples: list[Example] = []
    for problem in problems:
        for solution in problem.solutions:
            if solution.strip():
                examples.append(Example("code", problem.id, code_prompt(problem), solution.strip("\n")))
    if tasks == ["code"]:
        return examples
    for line, rec in plans:
        problem = by_id.get(rec.problem_id)
        if problem is None:
            if all_ids is not None and rec.problem_id in all_ids:
                report.plans_not_selected += 1  # another split / held out: expected, not an error
            else:
                _bad("plans_unknown_problem", "plan for an unknown problem", cfg, report, path=cfg.plans, line=line,
                     record=rec.problem_id, field_name="problem_id")
            continue
        if not rec.plan.strip():
            _bad("plans_empty", "empty plan", cfg, report, path=cfg.plans, line=line, record=rec.problem_id,
                 field_name="plan")
            continue
        if not 0 <= rec.solution_index < len(problem.solutions) or not problem.solutions[rec.solution_index].strip():
            _bad("plans_bad_solution_index", f"no solution {rec.solution_index} in this problem", cfg, report,
                 path=cfg.plans, line=line, record=rec.problem_id, field_name="solution_index")
            continue
        plan = rec.plan.strip()
        examples.append(Example("plan", problem.id, plan_prompt(problem), plan))
        if "plan_code" in tasks:
            solution = problem.solutions[rec.solution_index].strip("\n")
            examples.append(Example("plan_code", problem.id, plan_conditioned_code_prompt(problem, plan), solution))
    return examples


def _truncate_source(ids: list[int], limit: int) -> list[int]:
    """Keep the head (task tag, start of the question) and the tail (answer type, ANSWER: cue): the
    model must still see which task it is doing and where the answer starts."""
    if len(ids) <= limit:
        return ids
    head = limit // 4
    return ids[:head] + ids[len(ids) - (limit - head):]


def encode_examples(examples: list[Example], tokenizer: Any, cfg: TrainConfig, report: DataReport, *,
                    encoder_decoder: bool, counter: Counter) -> list[Encoded]:
    """Tokenize prompts and targets separately (so the prompt/target boundary is exact), append EOS
    to targets, apply the length limits."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise SetupError("the student's tokenizer has no EOS token: targets could not end")
    if cfg.chat_template:
        prompts = [chat_prompt(tokenizer, ex.prompt) for ex in examples]
        special = False  # the template already holds BOS and role markers
    else:
        prompts = [ex.prompt for ex in examples]
        special = True
    if not examples:
        return []
    source_ids = tokenizer(prompts, add_special_tokens=special)["input_ids"]
    target_ids = tokenizer([ex.target for ex in examples], add_special_tokens=False)["input_ids"]
    out: list[Encoded] = []
    for ex, src, tgt in zip(examples, source_ids, target_ids, strict=True):
        src = list(src)
        tgt = list(tgt) + [eos]
        too_long = len(src) > cfg.max_source_tokens or len(tgt) > cfg.max_target_tokens
        if too_long:
            if cfg.stop_on_bad_input:
                which = "prompt" if len(src) > cfg.max_source_tokens else "target"
                raise InputError(f"{ex.task} example {which} is longer than the limit "
                                 f"({len(src)} prompt / {len(tgt)} target tokens)", path=cfg.data.path,
                                 record=ex.problem_id, field="max_source_tokens" if which == "prompt" else "max_target_tokens")
            if cfg.too_long == "skip":
                report.skipped_too_long[ex.task] += 1
                continue
            report.truncated[ex.task] += 1
            src = _truncate_source(src, cfg.max_source_tokens)
            tgt = tgt[: cfg.max_target_tokens]
        counter[ex.task] += 1
        if encoder_decoder:
            out.append(Encoded(ex.task, src, tgt))
        else:
            out.append(Encoded(ex.task, src + tgt, [IGNORE] * len(src) + tgt))
    return out
