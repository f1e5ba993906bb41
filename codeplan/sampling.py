"""Stage 3: sample programs for each problem, directly or through CodePLAN's plan sampling.

    direct:         N programs per problem from the code prompt.
    plan-sampling:  K plans per problem; M programs per plan, judged on the problem's PUBLIC
                    example tests only; the best plan by a selectable rule; N final programs
                    written from that plan (a new round of generation, as in the paper's Fig. 4).

Output: samples.jsonl (one program a line, the problem's N lines written together), beside it
samples.plans.jsonl (every candidate plan with the verdicts of its programs, one record a problem)
and samples.summary.json (totals and the budget spent). A re-run skips finished problems and drops
the lines of a problem a killed run left unfinished, so no sample is ever duplicated.
"""

from __future__ import annotations

import ast
import json
import math
import re
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codeplan.config import DataConfig, StageConfig
from codeplan.errors import InputError
from codeplan.jsonl import JsonlAppender, read_jsonl, repair_torn_tail, write_json, write_jsonl
from codeplan.problems import Problem, TestCase

Strategy = Literal["plan-sampling", "direct"]
SelectionRule = Literal["pass-share", "test-rate", "likelihood", "first"]
FallbackRule = Literal["likelihood", "first"]


class GenerateConfig(StageConfig):
    """Settings of `codeplan generate`; defaults for plan sampling follow the CodePLAN release."""

    data: DataConfig
    model: str  # folder, hub id, .gguf, packaged name, hf:..., vllm:..., or openai:BASE_URL
    model_name: str | None = None  # model name on an OpenAI-compatible server
    # Model that writes the plans: default MODEL/plan_model when training exported one (the
    # separate plan head option), else MODEL itself.
    plan_model: str | None = None
    out: str
    strategy: Strategy = "plan-sampling"
    num_plans: int = Field(20, ge=1)  # K (release: 20)
    codes_per_plan: int = Field(10, ge=1)  # M (release: 10)
    num_samples: int = Field(10, ge=1)  # N final programs per problem (enough for pass@10)
    plan_temperature: float = Field(0.6, ge=0)  # release
    plan_top_p: float = Field(0.95, gt=0, le=1)  # release
    plan_max_tokens: int = Field(256, ge=1)
    code_temperature: float = Field(0.8, ge=0)  # programs judged on example tests, and direct sampling
    code_top_p: float = Field(0.95, gt=0, le=1)
    code_max_tokens: int = Field(512, ge=1)
    final_temperature: float | None = Field(None, ge=0)  # final programs; None = code_temperature
    selection: SelectionRule = "pass-share"
    fallback: FallbackRule = "likelihood"  # rule for problems without public example tests
    judge_workers: int | None = None
    judge_timeout: float | None = None
    judge_early_exit: bool = True  # stop a program at its first failing example test
    unsafe_no_sandbox: bool = False
    batch_problems: int = Field(1, ge=1)  # problems whose prompts go to the backend together
    batch_size: int | None = Field(None, ge=1)  # HF backend: sequences per forward pass
    dtype: str | None = None  # HF backend: auto, float32, bfloat16, float16
    seed: int = 0
    progress: bool = True
    # Wrap prompts in the model's chat template (one user turn), as training did with
    # `chat_template: true`. None = read it from MODEL/train_summary.json (False if absent).
    chat_template: bool | None = None

    @model_validator(mode="after")
    def _openai_needs_name(self) -> "GenerateConfig":
        if self.model.startswith("openai:") and not self.model_name:
            raise ValueError("an openai:URL model needs model_name (--model-name)")
        return self


# ---- plan scores and selection rules (pure functions) -------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What plan selection needs from one judged program (a judge ProgramResult has these fields)."""

    passed: bool
    tests_passed: int
    tests_total: int
    verdict: str = ""


@dataclass(frozen=True)
class PlanScore:
    """One candidate plan's record on the public example tests."""

    index: int
    programs: int = 0  # programs judged
    programs_passed: int = 0  # programs passing every example test
    tests_passed: int = 0
    tests_total: int = 0
    logprob: float | None = None  # summed log-probability of the plan text, where the backend gives it

    @property
    def pass_share(self) -> float:
        return self.programs_passed / self.programs if self.programs else 0.0

    @property
    def test_rate(self) -> float:
        return self.tests_passed / self.tests_total if self.tests_total else 0.0

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "pass_share": round(self.pass_share, 6), "test_rate": round(self.test_rate, 6)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "PlanScore":
        return cls(**{key: record[key] for key in cls.__dataclass_fields__ if key in record})


def score_plan(index: int, results: Sequence[Any], logprob: float | None = None) -> PlanScore:
    """Score a plan from the verdicts of its programs (objects with passed/tests_passed/tests_total)."""
    return PlanScore(index=index, programs=len(results), programs_passed=sum(bool(r.passed) for r in results),
                     tests_passed=sum(int(r.tests_passed) for r in results),
                     tests_total=sum(int(r.tests_total) for r in results), logprob=logprob)


def _likelihood(score: PlanScore) -> float:
    return score.logprob if score.logprob is not None and math.isfinite(score.logprob) else -math.inf


# Each rule is a sort key; the highest key wins and ties go to the earliest plan.
RULE_KEYS: dict[str, Any] = {
    "pass-share": lambda s: (s.pass_share, s.test_rate, _likelihood(s)),
    "test-rate": lambda s: (s.test_rate, s.pass_share, _likelihood(s)),
    "likelihood": lambda s: (_likelihood(s),),
    "first": lambda s: (0,),
}


@dataclass(frozen=True)
class Selection:
    chosen: int  # index of the chosen plan
    rule: str  # the rule actually applied (the fallback when there were no example tests)
    reason: str  # one line a reader can check against the scores

    def to_record(self, scores: Sequence[PlanScore]) -> dict[str, Any]:
        return {"chosen": self.chosen, "rule": self.rule, "reason": self.reason,
                "scores": [score.to_record() for score in scores]}


def select_plan(scores: Sequence[PlanScore], rule: str = "pass-share", *, has_public_tests: bool = True,
                fallback: str = "likelihood") -> Selection:
    """Choose one plan. Without example tests, every plan scores zero, so `fallback` decides."""
    if not scores:
        raise ValueError("no candidate plans to choose from")
    applied = rule if has_public_tests else fallback
    if applied not in RULE_KEYS:
        raise ValueError(f"unknown selection rule '{applied}' (known: {', '.join(RULE_KEYS)})")
    key = RULE_KEYS[applied]
    best = max(scores, key=lambda s: (key(s), -s.index))
    return Selection(chosen=best.index, rule=applied, reason=_reason(best, scores, applied, has_public_tests))


def _reason(best: PlanScore, scores: Sequence[PlanScore], rule: str, has_public_tests: bool) -> str:
    prefix = "" if has_public_tests else "no public example tests; "
    if rule == "first":
        return f"{prefix}rule 'first': plan 0 taken without scoring"
    lp = "n/a" if best.logprob is None else f"{best.logprob:.2f}"
    if rule == "likelihood":
        return f"{prefix}highest plan log-probability ({lp}) of {len(scores)} plans"
    ties = sum(1 for s in scores if RULE_KEYS[rule](s) == RULE_KEYS[rule](best))
    tie_note = f"; {ties} plans tied on every key, the first was taken" if ties > 1 else ""
    return (f"{prefix}{best.programs_passed}/{best.programs} programs passed all example tests, "
            f"{best.tests_passed}/{best.tests_total} example tests passed, log-probability {lp} "
            f"(rule '{rule}', best of {len(scores)} plans{tie_note})")


def solved_by_plan_count(selections: Sequence[Sequence[PlanScore]], rule: str = "pass-share") -> list[int]:
    """For k = 1..K: problems whose chosen plan among the first k sampled plans has at least one
    program passing all example tests (the paper's Fig. 5 view, on public tests)."""
    width = max((len(s) for s in selections), default=0)
    counts = []
    for k in range(1, width + 1):
        solved = 0
        for scores in selections:
            head = list(scores[:k])
            if not head:
                continue
            chosen = select_plan(head, rule).chosen
            if next(s for s in head if s.index == chosen).programs_passed > 0:
                solved += 1
        counts.append(solved)
    return counts


# ---- turning model output into a program -------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut a continuation at the first stop string (backends that ignore `stop` still end right)."""
    cut = len(text)
    for marker in stop:
        position = text.find(marker)
        if position != -1:
            cut = min(cut, position)
    return text[:cut]


def clean_plan(text: str) -> str:
    from codeplan.prompts import PLAN_STOP

    return cut_at_stop(text, PLAN_STOP).strip()


def extract_code(text: str) -> str:
    """The program in a model answer: the fenced Python block when there is one, else the answer
    with leading chatter and a trailing unfinished line dropped where that makes it parse."""
    from codeplan.prompts import CODE_STOP

    text = cut_at_stop(text, CODE_STOP)
    blocks = _FENCE.findall(text)
    if blocks:
        python = [body for lang, body in blocks if lang.lower() in ("", "python", "py", "python3")]
        return (python or [blocks[0][1]])[0].strip("\n") + "\n"
    text = text.strip("\n")
    if not text.strip():
        return ""
    return _parsable_part(text) + "\n"


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def _parsable_part(text: str) -> str:
    """The longest run of lines that parses, starting within the first few lines (chatter such as
    "Here is the code:" comes first; a sequence cut at max_tokens ends mid-line)."""
    if _parses(text):
        return text
    lines = text.split("\n")
    for start in range(min(4, len(lines))):
        for end in range(len(lines), start, -1):
            part = "\n".join(lines[start:end])
            if part.strip() and _parses(part):
                return part
    return text  # nothing parses: keep it whole, the judge will say compile_error


# ---- budget ------------------------------------------------------------------------------------


@dataclass
class Budget:
    """What a problem cost, so strategies compare at equal cost."""

    model_calls: int = 0  # prompts sent to the model
    sequences: int = 0  # continuations generated
    prompt_tokens: int = 0
    completion_tokens: int = 0
    programs_judged: int = 0
    seconds: float = 0.0

    def add_completion(self, completion: Any) -> None:
        self.model_calls += 1
        self.sequences += len(completion.texts)
        self.prompt_tokens += int(completion.prompt_tokens or 0)
        self.completion_tokens += int(completion.completion_tokens or 0)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["seconds"] = round(self.seconds, 3)
        return record


BUDGET_KEYS = tuple(Budget.__dataclass_fields__)


# ---- the stage ---------------------------------------------------------------------------------


@dataclass
class _Work:
    """One problem in flight through the phases of a chunk."""

    problem: Problem
    budget: Budget = field(default_factory=Budget)
    plans: list[str] = field(default_factory=list)
    plan_logprobs: list[float | None] = field(default_factory=list)
    programs: list[list[str]] = field(default_factory=list)  # per plan
    verdicts: list[list[Any]] = field(default_factory=list)  # per plan
    scores: list[PlanScore] = field(default_factory=list)
    selection: Selection | None = None
    final: list[str] = field(default_factory=list)
    final_finish: list[str] = field(default_factory=list)


def sidecar_paths(out: str | Path) -> tuple[Path, Path]:
    """(plans file, summary file) written beside samples.jsonl."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".plans.jsonl"), out.with_name(stem + ".summary.json")


def finished_problems(out: str | Path, strategy: str | None = None, num_samples: int | None = None) -> set[str]:
    """Problems whose samples are all in `out`; lines of unfinished problems (a killed run) are
    removed, so the re-run writes them once. Refuses a file made with another strategy or N."""
    out = Path(out)
    if not out.exists():
        return set()
    repair_torn_tail(out)
    records = read_jsonl(out)
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for number, record in enumerate(records, start=1):
        if "problem_id" not in record or "code" not in record:
            raise InputError("not a samples file: a record lacks problem_id or code", path=out, line=number)
        if strategy and record.get("strategy") not in (None, strategy):
            raise InputError(f"holds samples of strategy '{record.get('strategy')}', not '{strategy}'; "
                             "choose another --out", path=out, line=number, field="strategy")
        if num_samples is not None and int(record.get("problem_samples", num_samples)) != num_samples:
            raise InputError(f"holds {record.get('problem_samples')} samples per problem, not {num_samples}; "
                             "choose another --out", path=out, line=number, field="problem_samples")
        by_problem[str(record["problem_id"])].append(record)
    done = {pid for pid, rows in by_problem.items()
            if len(rows) == int(rows[0].get("problem_samples", len(rows)))}
    if len(done) != len(by_problem):
        write_jsonl(out, [r for r in records if str(r["problem_id"]) in done])
    plans_path, _ = sidecar_paths(out)
    if plans_path.exists():
        repair_torn_tail(plans_path)
        kept: dict[str, dict[str, Any]] = {}
        rows = read_jsonl(plans_path)
        for row in rows:
            if str(row.get("problem_id")) in done:
                kept[str(row["problem_id"])] = row
        if len(kept) != len(rows):
            write_jsonl(plans_path, list(kept.values()))
    return done


def prompt_seed(base: int, phase: str, problem_id: str, plan_index: int | None = None) -> int:
    """The seed of one prompt: a function of the run's seed, the phase, the problem and (for the
    programs written from candidate plan j) the plan, never of the other problems in the call or
    the run's history, so a problem samples the same whatever `batch_problems` and on resume."""
    key = f"{base}|{phase}|{problem_id}" + ("" if plan_index is None else f"|{plan_index}")
    return zlib.crc32(key.encode()) & 0x7FFFFFFF


def load_student(cfg: GenerateConfig, spec: str | None = None) -> Any:
    """The generation backend for cfg.model (HF local, vLLM, or an OpenAI-compatible server)."""
    from codeplan.llm import load_generator

    spec = spec or cfg.model
    options: dict[str, Any] = {}
    if spec.startswith("openai:"):
        options["model"] = cfg.model_name
        # Plan likelihood breaks ties (and is the fallback rule): ask the server for log-probabilities.
        options["logprobs"] = cfg.strategy == "plan-sampling"
    elif not spec.startswith("vllm:"):
        if cfg.batch_size is not None:
            options["batch_size"] = cfg.batch_size
        if cfg.dtype is not None:
            options["dtype"] = cfg.dtype
    return load_generator(spec, **options)


class ChatPrompts:
    """Sends each student prompt as one user turn of a chat, so a student trained with its chat
    template (`chat_template: true`) sees at inference the prompt format it was trained on."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.name = getattr(generator, "name", "chat")

    def generate(self, prompts: list[str], params: Any) -> list[Any]:
        return self.generator.chat([[{"role": "user", "content": prompt}] for prompt in prompts], params)


def uses_chat_template(cfg: GenerateConfig) -> bool:
    """cfg.chat_template, else what `codeplan train` recorded for a local model folder."""
    if cfg.chat_template is not None:
        return cfg.chat_template
    scheme, _, rest = cfg.model.partition(":")
    summary = Path(rest if scheme in ("hf", "vllm") and rest else cfg.model) / "train_summary.json"
    if not summary.is_file():
        return False
    try:
        recorded = json.loads(summary.read_text(encoding="utf-8")).get("prompt_format", {})
    except (OSError, json.JSONDecodeError):
        return False
    return bool(recorded.get("chat_template", False))


def plan_model_spec(cfg: GenerateConfig) -> str | None:
    """The separate plan model to use, if any (see GenerateConfig.plan_model)."""
    if cfg.plan_model:
        return cfg.plan_model
    scheme, _, rest = cfg.model.partition(":")
    folder = Path(rest if scheme in ("hf", "vllm") and rest else cfg.model)
    if (folder / "plan_model" / "config.json").is_file():
        return f"{scheme}:{folder / 'plan_model'}" if scheme in ("hf", "vllm") and rest else str(folder / "plan_model")
    return None


def _params(cfg: GenerateConfig, phase: str, n: int, keys: Sequence[tuple[str, int | None]]) -> Any:
    """Settings of one phase's call; `keys` (problem id, plan index or None) give each prompt its seed."""
    from codeplan.llm import GenerationParams
    from codeplan.prompts import CODE_STOP, PLAN_STOP

    seeds = tuple(prompt_seed(cfg.seed, phase, pid, plan) for pid, plan in keys)
    if phase == "plan":
        return GenerationParams(n=n, temperature=cfg.plan_temperature, top_p=cfg.plan_top_p,
                                max_tokens=cfg.plan_max_tokens, stop=PLAN_STOP, seed=cfg.seed, seeds=seeds)
    temperature = cfg.final_temperature if phase == "final" and cfg.final_temperature is not None else cfg.code_temperature
    return GenerationParams(n=n, temperature=temperature, top_p=cfg.code_top_p, max_tokens=cfg.code_max_tokens,
                            stop=CODE_STOP, seed=cfg.seed, seeds=seeds)


def _complete(generator: Any, prompts: list[str], params: Any) -> list[Any]:
    completions = generator.generate(prompts, params) if prompts else []
    if len(completions) != len(prompts):
        raise RuntimeError(f"backend returned {len(completions)} completions for {len(prompts)} prompts")
    return completions


def run_chunk(works: list[_Work], cfg: GenerateConfig, generator: Any, judge: Any, planner: Any = None,
              phase: Any = None) -> None:
    """Take a chunk of problems through every phase; the backend sees each phase's prompts at once.
    `planner` writes the plans when the student has a separate plan model; `phase(text)` is told
    what the chunk is doing (the progress bar shows it)."""
    from codeplan.prompts import code_prompt, plan_conditioned_code_prompt, plan_prompt

    phase = phase or (lambda text: None)
    started = time.perf_counter()
    # One seed per prompt (see prompt_seed): final programs and plans by problem, the programs of
    # candidate plan j by (problem, j).
    each = [(w.problem.id, None) for w in works]
    if cfg.strategy == "direct":
        phase(f"{len(works)} problems: {cfg.num_samples} programs each")
        prompts = [code_prompt(w.problem) for w in works]
        for work, completion in zip(works, _complete(generator, prompts, _params(cfg, "final", cfg.num_samples, each))):
            work.budget.add_completion(completion)
            work.final = [extract_code(text) for text in completion.texts]
            work.final_finish = list(completion.finish_reasons or [])
    else:
        # (1) K candidate plans per problem.
        phase(f"{len(works)} problems: sampling {cfg.num_plans} plans each")
        plans = _complete(planner or generator, [plan_prompt(w.problem) for w in works], _params(cfg, "plan", cfg.num_plans, each))
        for work, completion in zip(works, plans):
            work.budget.add_completion(completion)
            work.plans = [clean_plan(text) for text in completion.texts]
            lps = completion.logprobs
            work.plan_logprobs = list(lps) if lps is not None and len(lps) == len(work.plans) else [None] * len(work.plans)
        # (2) M programs per plan, only where example tests can tell plans apart.
        testable = [w for w in works if w.problem.public_tests]
        prompts = [plan_conditioned_code_prompt(w.problem, plan) for w in testable for plan in w.plans]
        owners = [w for w in testable for _ in w.plans]
        keys = [(w.problem.id, j) for w in testable for j in range(len(w.plans))]
        phase(f"{len(testable)} problems: {cfg.codes_per_plan} programs per plan")
        codes = _complete(generator, prompts, _params(cfg, "code", cfg.codes_per_plan, keys))
        for work in testable:
            work.programs = []
        for work, completion in zip(owners, codes):
            work.budget.add_completion(completion)
            work.programs.append([extract_code(text) for text in completion.texts])
        phase(f"judging {sum(len(p) for w in testable for p in w.programs)} programs on example tests")
        _judge_programs(testable, cfg, judge)
        # (3) choose a plan per problem.
        for work in works:
            if work.problem.public_tests:
                work.scores = [score_plan(i, verdicts, work.plan_logprobs[i]) for i, verdicts in enumerate(work.verdicts)]
            else:
                work.scores = [PlanScore(index=i, logprob=lp) for i, lp in enumerate(work.plan_logprobs)]
            work.selection = select_plan(work.scores, cfg.selection, has_public_tests=bool(work.problem.public_tests),
                                         fallback=cfg.fallback)
        # (4) N final programs from the chosen plan.
        phase(f"{len(works)} problems: {cfg.num_samples} final programs from the chosen plan")
        prompts = [plan_conditioned_code_prompt(w.problem, w.plans[w.selection.chosen]) for w in works]  # type: ignore[union-attr]
        for work, completion in zip(works, _complete(generator, prompts, _params(cfg, "final", cfg.num_samples, each))):
            work.budget.add_completion(completion)
            work.final = [extract_code(text) for text in completion.texts]
            work.final_finish = list(completion.finish_reasons or [])
    share = (time.perf_counter() - started) / max(1, len(works))
    for work in works:
        work.budget.seconds += share
        if len(work.final) != cfg.num_samples:
            raise RuntimeError(f"backend returned {len(work.final)} programs for {work.problem.id}, "
                               f"expected {cfg.num_samples}")


def _judge_programs(works: list[_Work], cfg: GenerateConfig, judge: Any) -> None:
    """Run every program of every plan on its problem's public tests, in one batch for the pool."""
    from codeplan.judge import JudgeTask

    tasks, slots = [], []
    for work in works:
        work.verdicts = [[] for _ in work.programs]
        for plan_index, programs in enumerate(work.programs):
            for code in programs:
                tasks.append(JudgeTask(problem=work.problem, code=code, tests="public", early_exit=cfg.judge_early_exit))
                slots.append((work, plan_index))
    results = judge.run(tasks) if tasks else []
    for (work, plan_index), result in zip(slots, results):
        work.verdicts[plan_index].append(result)
        work.budget.programs_judged += 1


def sample_records(work: _Work, cfg: GenerateConfig) -> list[dict[str, Any]]:
    """samples.jsonl lines of one finished problem."""
    budget = work.budget.to_record()
    rows = []
    for index, code in enumerate(work.final):
        row: dict[str, Any] = {"problem_id": work.problem.id, "sample_index": index, "code": code,
                               "strategy": cfg.strategy, "problem_samples": len(work.final)}
        if work.selection is not None:
            chosen = work.selection.chosen
            row.update(plan=work.plans[chosen], plan_index=chosen, plan_score=work.scores[chosen].to_record(),
                       selection=work.selection.to_record(work.scores))
        if index < len(work.final_finish):
            row["finish_reason"] = work.final_finish[index]
        row["budget"] = budget
        rows.append(row)
    return rows


def plans_record(work: _Work) -> dict[str, Any]:
    """samples.plans.jsonl line of one problem: every candidate plan, its programs' verdicts, why."""
    candidates = []
    for i, plan in enumerate(work.plans):
        verdicts = work.verdicts[i] if i < len(work.verdicts) else []
        candidates.append({"plan_index": i, "plan": plan, "score": work.scores[i].to_record() if work.scores else None,
                           "programs": [{"code": code, "verdict": getattr(v, "verdict", ""), "passed": bool(v.passed),
                                         "tests_passed": int(v.tests_passed), "tests_total": int(v.tests_total)}
                                        for code, v in zip(work.programs[i] if i < len(work.programs) else [], verdicts)]})
    return {"problem_id": work.problem.id, "public_tests": len(work.problem.public_tests),
            "selection": work.selection.to_record(work.scores) if work.selection else None,
            "candidates": candidates, "budget": work.budget.to_record()}


def _chunks(problems: list[Problem], size: int, done: set[str]) -> Iterator[list[Problem]]:
    """Fixed chunks over the whole problem list, minus finished ones."""
    for start in range(0, len(problems), size):
        todo = [p for p in problems[start:start + size] if p.id not in done]
        if todo:
            yield todo


def _judge_context(cfg: GenerateConfig, needed: bool) -> Any:
    if not needed:
        return nullcontext(None)
    from codeplan.judge import Judge, JudgeConfig

    return Judge(JudgeConfig(workers=cfg.judge_workers, timeout=cfg.judge_timeout, sandbox=not cfg.unsafe_no_sandbox))


def generate(cfg: GenerateConfig) -> dict[str, Any]:
    """Write cfg.out (resuming) and return the run's summary (also written to *.summary.json)."""
    from tqdm import tqdm

    from codeplan.data import load_problems

    problems = load_problems(cfg.data)
    ids = [p.id for p in problems]
    duplicates = [pid for pid, count in Counter(ids).items() if count > 1]
    if duplicates:
        raise InputError(f"problem id '{duplicates[0]}' occurs {Counter(ids)[duplicates[0]]} times", path=cfg.data.path)
    out = Path(cfg.out)
    done = finished_problems(out, cfg.strategy, cfg.num_samples) & set(ids)
    started = time.perf_counter()
    todo = [p for p in problems if p.id not in done]
    if todo:
        generator = load_student(cfg)
        planner_spec = plan_model_spec(cfg) if cfg.strategy == "plan-sampling" else None
        planner = load_student(cfg, planner_spec) if planner_spec else None
        if uses_chat_template(cfg):
            generator = ChatPrompts(generator)
            planner = ChatPrompts(planner) if planner is not None else None
        plans_path, _ = sidecar_paths(out)
        needs_judge = cfg.strategy == "plan-sampling" and any(p.public_tests for p in todo)
        bar = tqdm(total=len(problems), initial=len(problems) - len(todo), unit="problem", desc=f"generate ({cfg.strategy})",
                   disable=not cfg.progress, file=sys.stderr, dynamic_ncols=True)
        with _judge_context(cfg, needs_judge) as judge, JsonlAppender(out) as samples_out, \
                (JsonlAppender(plans_path) if cfg.strategy == "plan-sampling" else nullcontext()) as plans_out:
            for chunk in _chunks(problems, cfg.batch_problems, done):
                works = [_Work(problem) for problem in chunk]
                run_chunk(works, cfg, generator, judge, planner, phase=lambda text: bar.set_postfix_str(text, refresh=True))
                for work in works:
                    if plans_out is not None:
                        plans_out.write(plans_record(work))
                    for row in sample_records(work, cfg):
                        samples_out.write(row)
                bar.update(len(works))
        bar.close()
    summary = summarize_samples(out, cfg, seconds=time.perf_counter() - started, ids=ids)
    write_json(sidecar_paths(out)[1], summary)
    return summary


def summarize_samples(out: str | Path, cfg: GenerateConfig | None = None, *, seconds: float | None = None,
                      ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Totals over a samples file: problems, samples, budget spent, chosen-plan statistics."""
    import codeplan

    rows = read_jsonl(out) if Path(out).exists() else []
    if ids is not None:
        keep = set(ids)
        rows = [r for r in rows if r["problem_id"] in keep]
    per_problem: dict[str, dict[str, Any]] = {}
    for row in rows:
        per_problem.setdefault(row["problem_id"], row)
    totals = {key: 0.0 if key == "seconds" else 0 for key in BUDGET_KEYS}
    for row in per_problem.values():
        for key in BUDGET_KEYS:
            totals[key] += (row.get("budget") or {}).get(key, 0)
    totals["seconds"] = round(totals["seconds"], 3)
    problems = len(per_problem)
    summary: dict[str, Any] = {
        "samples": str(out), "strategy": rows[0].get("strategy") if rows else (cfg.strategy if cfg else None),
        "problems": problems, "programs": len(rows), "budget": totals,
        "budget_per_problem": {key: round(value / problems, 3) for key, value in totals.items()} if problems else {},
        "codeplan_version": codeplan.__version__,
    }
    selected = [row["selection"] for row in per_problem.values() if row.get("selection")]
    if selected:
        summary["selection"] = {
            "rules": dict(Counter(s["rule"] for s in selected)),
            "chosen_plan_passed_examples": sum(1 for s in selected if s["scores"][s["chosen"]]["programs_passed"] > 0),
        }
    if cfg is not None:
        summary["config"] = cfg.model_dump(mode="json")
    if seconds is not None:
        summary["wall_seconds_this_run"] = round(seconds, 3)
    return summary


# ---- plan sampling as a service: POST /v1/codeplan/solve on `codeplan serve` --------------------


def solve_problem(problem: Problem, cfg: GenerateConfig, generator: Any, judge: Any) -> dict[str, Any]:
    """One problem through `cfg.strategy`; the answer the solve route returns."""
    work = _Work(problem)
    run_chunk([work], cfg, generator, judge)
    answer: dict[str, Any] = {"problem_id": problem.id, "strategy": cfg.strategy, "code": work.final[0],
                              "codes": work.final, "budget": work.budget.to_record()}
    if work.selection is not None:
        answer.update(plan=work.plans[work.selection.chosen], plan_index=work.selection.chosen,
                      selection=work.selection.to_record(work.scores), plans=work.plans)
    return answer


class _QueuedGenerator:
    """Sends a solve request's prompts through the server's batching queue (the model has one
    owner thread), each prompt as its own job so that concurrent requests batch together."""

    def __init__(self, state: Any, loop: Any) -> None:
        self.state, self.loop, self.name = state, loop, state.model_name

    def generate(self, prompts: list[str], params: Any) -> list[Any]:
        import asyncio
        from dataclasses import replace

        # Each job carries its prompt's own seed (params.seeds[i], else seed + i): the queue may batch
        # it with other requests' prompts, and a job's seed is what decides its texts there.
        futures = [asyncio.run_coroutine_threadsafe(
            self.state.submit("completion", prompt, replace(params, seed=seed, seeds=None)), self.loop)
            for prompt, seed in zip(prompts, params.prompt_seeds(len(prompts)))]
        return [future.result() for future in futures]


class SolveRequest(BaseModel):
    """Body of POST /v1/codeplan/solve."""

    model_config = ConfigDict(extra="forbid")

    statement: str = Field(min_length=1)
    starter_code: str = ""
    kind: Literal["stdin", "call", "assert"] | None = None  # default: call with starter code, else stdin
    entry_point: str | None = None
    public_tests: list[TestCase] = Field(default_factory=list)
    strategy: Strategy = "plan-sampling"
    num_plans: int = Field(4, ge=1, le=64)
    codes_per_plan: int = Field(4, ge=1, le=64)
    num_samples: int = Field(1, ge=1, le=64)
    selection: SelectionRule = "pass-share"
    plan_max_tokens: int = Field(256, ge=1)
    code_max_tokens: int = Field(512, ge=1)
    seed: int = 0
    return_plan: bool = False


def add_solve_route(app: Any, state: Any) -> None:
    """Register POST /v1/codeplan/solve: a problem statement (+ starter code, + public example
    tests) in, the final program out, and the chosen plan with its scores when asked."""
    import asyncio

    from fastapi import HTTPException

    class _RequestJudge:
        """A sandboxed judge pool for one request's programs (started only when there are some)."""

        def run(self, tasks: list[Any]) -> list[Any]:
            from codeplan.judge import Judge, JudgeConfig

            with Judge(JudgeConfig(workers=min(4, max(1, len(tasks))))) as judge:
                return judge.run(tasks)

    @app.post("/v1/codeplan/solve")
    async def solve(request: SolveRequest) -> dict[str, Any]:
        kind = request.kind or ("call" if request.starter_code.strip() else "stdin")
        try:
            problem = Problem(id="request", statement=request.statement, starter_code=request.starter_code, kind=kind,
                              entry_point=request.entry_point, public_tests=request.public_tests)
        except ValueError as err:
            raise HTTPException(status_code=400, detail=str(err)) from None
        cfg = GenerateConfig(data=DataConfig(path="-"), model=state.model_name, out="-", strategy=request.strategy,
                             num_plans=request.num_plans, codes_per_plan=request.codes_per_plan,
                             num_samples=request.num_samples, selection=request.selection,
                             plan_max_tokens=request.plan_max_tokens, code_max_tokens=request.code_max_tokens,
                             seed=request.seed, progress=False)
        generator = _QueuedGenerator(state, asyncio.get_running_loop())
        answer = await asyncio.to_thread(solve_problem, problem, cfg, generator, _RequestJudge())
        answer["model"] = state.model_name
        if not request.return_plan:
            for key in ("plan", "plans", "selection"):
                answer.pop(key, None)
        return answer
