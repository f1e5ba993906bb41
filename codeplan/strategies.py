"""How programs are sampled for a batch of problems: the strategies that generate and serve share.

    direct:         N programs per problem from the code prompt.
    direct-rerank:  B programs from the code prompt, judged on the problem's PUBLIC example tests;
                    the N best are submitted (ties in sampling order). The control that isolates
                    planning from test-based reranking.
    plan-sampling:  K plans per problem; M programs per plan, judged on the public tests; the best
                    plan by a selectable rule (codeplan.selection); then either N new programs
                    written from that plan (`final: rewrite`, the paper's Fig. 4) or the N best
                    programs already judged for it (`final: best-judged`).

Budget: `budget` counts the programs generated per problem (plans are reported apart, as
sequences and tokens): direct N, direct-rerank B, plan-sampling K*M (+ N with rewrite). When it is
set, the strategy's own numbers must add up to it, so arms compared at one budget really are.
Each problem's Budget also records its time: its share of its chunk's wall and CPU seconds, plus
the CPU seconds of its own programs judged on the public tests.

`run_chunk` takes a chunk of problems through every phase, sending each phase's prompts to the
backend at once. Every prompt has its own seed, a function of (seed, phase, problem, plan), so a
problem samples the same texts whatever else is in the chunk and after a resume.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from codeplan.config import StageConfig
from codeplan.judge import JudgeTask
from codeplan.llm import GenerationParams
from codeplan.problems import Problem
from codeplan.prompts import CODE_STOP, PLAN_STOP, code_prompt, plan_conditioned_code_prompt, plan_prompt
from codeplan.samples import Budget
from codeplan.sanitize import extract_code, student_plan
from codeplan.selection import (FallbackRule, PlanScore, Selection, SelectionRule, rank_programs, score_plan,
                                select_plan)

Strategy = Literal["plan-sampling", "direct", "direct-rerank"]


class SamplingConfig(StageConfig):
    """How many programs a problem gets and how; defaults for plan sampling follow the CodePLAN release."""

    strategy: Strategy = Field("plan-sampling", description="plan-sampling, direct, or direct-rerank (the reranking control).")
    num_plans: int = Field(20, ge=1, description="K: plans sampled per problem (release: 20).")
    codes_per_plan: int = Field(10, ge=1, description="M: programs per plan, judged on the example tests (release: 10).")
    num_samples: int = Field(10, ge=1, description="N: final programs per problem (enough for pass@10).")
    plan_temperature: float = Field(0.6, ge=0, description="Plan sampling temperature (release: 0.6).")
    plan_top_p: float = Field(0.95, gt=0, le=1, description="Plan nucleus sampling (release: 0.95).")
    plan_max_tokens: int = Field(256, ge=1, description="Longest plan, in tokens.")
    code_temperature: float = Field(0.8, ge=0, description="Temperature of programs (direct, and judged per plan).")
    code_top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling of programs.")
    code_max_tokens: int = Field(512, ge=1, description="Longest program, in tokens.")
    final_temperature: float | None = Field(None, ge=0, description="Temperature of the final programs (default: code_temperature).")
    selection: SelectionRule = Field("pass-share", description="Plan selection rule: pass-share, test-rate, likelihood, first.")
    fallback: FallbackRule = Field("likelihood", description="Rule for problems without public example tests.")
    seed: int = Field(0, description="Sampling seed (each prompt derives its own from it).")
    final: Literal["rewrite", "best-judged"] = Field("rewrite", description=(
        "Plan sampling's submissions: N new programs from the chosen plan, or its N best judged programs."))
    budget: int | None = Field(None, ge=1, description=(
        "Programs generated per problem (direct-rerank: B, required; others: checked against K*M (+N), N)."))

    renamed = {"judge_early_exit": ": plan selection now runs every public test"}

    @model_validator(mode="after")
    def _budget_adds_up(self) -> "SamplingConfig":
        if self.strategy == "direct-rerank":
            if self.budget is None:
                raise ValueError("direct-rerank needs budget (programs sampled and judged per problem)")
            if self.num_samples > self.budget:
                raise ValueError(f"num_samples {self.num_samples} is more than the budget {self.budget}")
        elif self.budget is not None and self.programs_per_problem() != self.budget:
            hint = ""
            if self.strategy == "plan-sampling":
                rest = self.budget - (self.num_samples if self.final == "rewrite" else 0)
                hint = (f"; codes_per_plan {rest // self.num_plans} would" if rest > 0 and rest % self.num_plans == 0
                        else "; choose num_plans and codes_per_plan so that they do")
            raise ValueError(f"strategy {self.strategy} generates {self.programs_per_problem()} programs per problem, "
                             f"not the budget {self.budget}{hint}")
        if self.strategy == "plan-sampling" and self.final == "best-judged" and self.num_samples > self.codes_per_plan:
            raise ValueError("final best-judged submits programs of the chosen plan: num_samples must be at most codes_per_plan")
        return self

    def programs_per_problem(self) -> int:
        """Programs (code sequences) this strategy generates for a problem with public tests."""
        if self.strategy == "direct":
            return self.num_samples
        if self.strategy == "direct-rerank":
            return self.budget or self.num_samples
        return self.num_plans * self.codes_per_plan + (self.num_samples if self.final == "rewrite" else 0)


@dataclass
class ProblemWork:
    """One problem in flight through the phases of a chunk."""

    problem: Problem
    budget: Budget = field(default_factory=Budget)
    plans: list[str] = field(default_factory=list)
    plan_logprobs: list[float | None] = field(default_factory=list)
    plan_tokens: list[int | None] = field(default_factory=list)
    programs: list[list[str]] = field(default_factory=list)  # per plan (direct-rerank: one list)
    verdicts: list[list[Any]] = field(default_factory=list)  # per plan
    scores: list[PlanScore] = field(default_factory=list)
    selection: Selection | None = None
    final: list[str] = field(default_factory=list)
    final_finish: list[str] = field(default_factory=list)


class ChatPrompts:
    """Sends each student prompt as one user turn of a chat, so a student trained with its chat
    template (`chat_template: true`) sees at inference the prompt format it was trained on."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.name = getattr(generator, "name", "chat")

    def generate(self, prompts: list[str], params: Any) -> list[Any]:
        return self.generator.chat([[{"role": "user", "content": prompt}] for prompt in prompts], params)


def prompt_seed(base: int, phase: str, problem_id: str, plan_index: int | None = None) -> int:
    """The seed of one prompt: a function of the run's seed, the phase, the problem and (for the
    programs written from candidate plan j) the plan, never of the other problems in the call or
    the run's history, so a problem samples the same whatever `batch_problems` and on resume."""
    key = f"{base}|{phase}|{problem_id}" + ("" if plan_index is None else f"|{plan_index}")
    return zlib.crc32(key.encode()) & 0x7FFFFFFF


def _params(cfg: SamplingConfig, phase: str, n: int, keys: Sequence[tuple[str, int | None]]) -> Any:
    """Settings of one phase's call; `keys` (problem id, plan index or None) give each prompt its seed."""
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


def run_chunk(works: list[ProblemWork], cfg: SamplingConfig, generator: Any, judge: Any, planner: Any = None,
              phase: Any = None) -> None:
    """Take a chunk of problems through every phase; the backend sees each phase's prompts at once.
    `planner` writes the plans when the student has a separate plan model; `phase(text)` is told
    what the chunk is doing (the progress bar shows it)."""
    phase = phase or (lambda text: None)
    started, cpu_started = time.perf_counter(), time.process_time()
    # One seed per prompt (see prompt_seed): final programs and plans by problem, the programs of
    # candidate plan j by (problem, j).
    each = [(w.problem.id, None) for w in works]
    if cfg.strategy == "direct":
        phase(f"{len(works)} problems: {cfg.num_samples} programs each")
        prompts = [code_prompt(w.problem) for w in works]
        for work, completion in zip(works, _complete(generator, prompts, _params(cfg, "final", cfg.num_samples, each))):
            work.budget.add_completion(completion, programs=True)
            work.final = [extract_code(text) for text in completion.texts]
            work.final_finish = list(completion.finish_reasons or [])
    elif cfg.strategy == "direct-rerank":
        size = cfg.programs_per_problem()
        phase(f"{len(works)} problems: {size} programs each, reranked on example tests")
        prompts = [code_prompt(w.problem) for w in works]
        for work, completion in zip(works, _complete(generator, prompts, _params(cfg, "final", size, each))):
            work.budget.add_completion(completion, programs=True)
            work.programs = [[extract_code(text) for text in completion.texts]]
            work.final_finish = list(completion.finish_reasons or [])
        testable = [w for w in works if w.problem.public_tests]
        phase(f"judging {sum(len(w.programs[0]) for w in testable)} programs on example tests")
        _judge_programs(testable, judge)
        for work in works:
            order = rank_programs(work.verdicts[0]) if work.problem.public_tests else list(range(size))
            keep = order[:cfg.num_samples]
            work.final = [work.programs[0][i] for i in keep]
            work.final_finish = [work.final_finish[i] for i in keep if i < len(work.final_finish)]
    else:
        # (1) K candidate plans per problem.
        phase(f"{len(works)} problems: sampling {cfg.num_plans} plans each")
        plans = _complete(planner or generator, [plan_prompt(w.problem) for w in works], _params(cfg, "plan", cfg.num_plans, each))
        for work, completion in zip(works, plans):
            work.budget.add_completion(completion)
            work.plans = [student_plan(text) for text in completion.texts]
            lps = completion.logprobs
            work.plan_logprobs = list(lps) if lps is not None and len(lps) == len(work.plans) else [None] * len(work.plans)
            per_token = completion.token_logprobs
            work.plan_tokens = ([len(t) for t in per_token] if per_token is not None and len(per_token) == len(work.plans)
                                else [None] * len(work.plans))
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
            work.budget.add_completion(completion, programs=True)
            work.programs.append([extract_code(text) for text in completion.texts])
        phase(f"judging {sum(len(p) for w in testable for p in w.programs)} programs on example tests")
        _judge_programs(testable, judge)
        # (3) choose a plan per problem.
        for work in works:
            if work.problem.public_tests:
                work.scores = [score_plan(i, verdicts, work.plan_logprobs[i], work.plan_tokens[i])
                               for i, verdicts in enumerate(work.verdicts)]
            else:
                work.scores = [PlanScore(index=i, logprob=lp, tokens=n)
                               for i, (lp, n) in enumerate(zip(work.plan_logprobs, work.plan_tokens))]
            work.selection = select_plan(work.scores, cfg.selection, has_public_tests=bool(work.problem.public_tests),
                                         fallback=cfg.fallback)
        # (4) N final programs: the chosen plan's best judged ones, or N new ones written from it
        # (always new where there were no public tests, so nothing was judged).
        judged = [w for w in works if cfg.final == "best-judged" and w.problem.public_tests]
        for work in judged:
            chosen = work.selection.chosen  # type: ignore[union-attr]
            work.final = [work.programs[chosen][i] for i in rank_programs(work.verdicts[chosen])[:cfg.num_samples]]
        rewrite = [w for w in works if w not in judged]
        phase(f"{len(rewrite)} problems: {cfg.num_samples} final programs from the chosen plan")
        prompts = [plan_conditioned_code_prompt(w.problem, w.plans[w.selection.chosen]) for w in rewrite]  # type: ignore[union-attr]
        keys = [(w.problem.id, None) for w in rewrite]
        for work, completion in zip(rewrite, _complete(generator, prompts, _params(cfg, "final", cfg.num_samples, keys))):
            work.budget.add_completion(completion, programs=True)
            work.final = [extract_code(text) for text in completion.texts]
            work.final_finish = list(completion.finish_reasons or [])
    # The chunk's wall and CPU time (every thread of this process: a local model's too) are shared
    # evenly by its problems; each problem's judged programs' CPU was added to its own budget.
    share = (time.perf_counter() - started) / max(1, len(works))
    cpu_share = (time.process_time() - cpu_started) / max(1, len(works))
    for work in works:
        work.budget.seconds += share
        work.budget.cpu_seconds += cpu_share
        if len(work.final) != cfg.num_samples:
            raise RuntimeError(f"backend returned {len(work.final)} programs for {work.problem.id}, "
                               f"expected {cfg.num_samples}")


def _judge_programs(works: list[ProblemWork], judge: Any) -> None:
    """Run every program of every plan on its problem's public tests, in one batch for the pool.
    Every test runs (no early exit): selection counts the tests a program passes. The programs run
    in the judge's processes, so their CPU seconds are added to their problem's budget here."""
    tasks, slots = [], []
    for work in works:
        work.verdicts = [[] for _ in work.programs]
        for plan_index, programs in enumerate(work.programs):
            for code in programs:
                tasks.append(JudgeTask(problem=work.problem, code=code, tests="public", early_exit=False))
                slots.append((work, plan_index))
    results = judge.run(tasks) if tasks else []
    for (work, plan_index), result in zip(slots, results):
        work.verdicts[plan_index].append(result)
        work.budget.programs_judged += 1
        work.budget.cpu_seconds += float(result.cpu_seconds)


def sample_records(work: ProblemWork, cfg: SamplingConfig) -> list[dict[str, Any]]:
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


def plans_record(work: ProblemWork) -> dict[str, Any]:
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


def solve_problem(problem: Problem, cfg: SamplingConfig, generator: Any, judge: Any) -> dict[str, Any]:
    """One problem through `cfg.strategy`; the answer the solve route returns."""
    work = ProblemWork(problem)
    run_chunk([work], cfg, generator, judge)
    answer: dict[str, Any] = {"problem_id": problem.id, "strategy": cfg.strategy, "code": work.final[0],
                              "codes": work.final, "budget": work.budget.to_record()}
    if work.selection is not None:
        answer.update(plan=work.plans[work.selection.chosen], plan_index=work.selection.chosen,
                      selection=work.selection.to_record(work.scores), plans=work.plans)
    return answer
