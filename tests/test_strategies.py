"""Sampling strategies on a scripted model and a scripted judge: which programs are submitted, and
what each strategy spends (the budget that makes arms comparable)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from codeplan.llm import Completion
from codeplan.problems import Problem, TestCase
from codeplan.strategies import ProblemWork, SamplingConfig, run_chunk

PROBLEM = Problem(id="p", statement="Print 3.", kind="stdin", public_tests=[TestCase(input="", output="3\n"),
                                                                          TestCase(input="", output="3\n")])


class ScriptedModel:
    """Answers every prompt of a call with the next `n` programs of a script (plans: 'plan i')."""

    name = "scripted"

    def __init__(self, programs: list[str]) -> None:
        self.programs, self.calls = list(programs), []

    def generate(self, prompts: list[str], params) -> list[Completion]:
        self.calls.append((len(prompts), params.n))
        out = []
        for prompt in prompts:
            if "step by step:\n" in prompt and not prompt.rstrip().endswith("ANSWER:"):
                texts = [f"1. plan {i}" for i in range(params.n)]
                out.append(Completion(texts=texts, logprobs=[-1.0 * (i + 1) for i in range(params.n)],
                                      token_logprobs=[[-1.0] * (i + 1) for i in range(params.n)],
                                      completion_tokens=params.n))
            else:
                texts = [self.programs.pop(0) for _ in range(params.n)]
                out.append(Completion(texts=texts, completion_tokens=params.n))
        return out


@dataclass
class Verdict:
    passed: bool
    tests_passed: int
    tests_total: int
    verdict: str = ""


class ScriptedJudge:
    """`print(k)` passes k of the problem's two tests (the last programs pass both)."""

    def __init__(self) -> None:
        self.tasks = []

    def run(self, tasks):
        self.tasks += tasks
        verdicts = []
        for task in tasks:
            assert task.tests == "public" and not task.early_exit  # selection counts every test
            k = int(task.code.strip()[len("print("):-1])
            verdicts.append(Verdict(passed=k == 2, tests_passed=k, tests_total=2))
        return verdicts


def test_direct_rerank_submits_the_best_on_the_public_tests_ties_in_sampling_order():
    cfg = SamplingConfig(strategy="direct-rerank", budget=5, num_samples=2)
    model, judge = ScriptedModel(["print(0)", "print(1)", "print(2)", "print(1)", "print(2)"]), ScriptedJudge()
    work = ProblemWork(PROBLEM)
    run_chunk([work], cfg, model, judge)
    assert work.final == ["print(2)\n", "print(2)\n"]  # programs 2 and 4, both passing, in sampling order
    assert len(judge.tasks) == 5 and work.budget.programs == 5 and work.budget.programs_judged == 5


def test_direct_rerank_without_public_tests_keeps_sampling_order():
    cfg = SamplingConfig(strategy="direct-rerank", budget=3, num_samples=1)
    problem = PROBLEM.model_copy(update={"public_tests": []})
    work = ProblemWork(problem)
    run_chunk([work], cfg, ScriptedModel(["print(0)", "print(2)", "print(1)"]), ScriptedJudge())
    assert work.final == ["print(0)\n"]


def test_plan_sampling_best_judged_submits_the_chosen_plans_best_programs_without_writing_more():
    cfg = SamplingConfig(strategy="plan-sampling", num_plans=2, codes_per_plan=2, num_samples=1, final="best-judged")
    model = ScriptedModel(["print(1)", "print(0)", "print(0)", "print(2)"])  # plan 0: 1, 0; plan 1: 0, 2
    work = ProblemWork(PROBLEM)
    run_chunk([work], cfg, model, ScriptedJudge())
    assert work.selection.chosen == 1 and work.final == ["print(2)\n"]
    assert work.budget.programs == 4 == cfg.programs_per_problem()
    assert model.programs == []  # no final round


def test_plan_sampling_rewrite_spends_k_times_m_plus_n_programs():
    cfg = SamplingConfig(strategy="plan-sampling", num_plans=2, codes_per_plan=2, num_samples=2, budget=6)
    work = ProblemWork(PROBLEM)
    run_chunk([work], cfg, ScriptedModel(["print(0)"] * 4 + ["print(2)", "print(1)"]), ScriptedJudge())
    assert work.budget.programs == 6 and work.final == ["print(2)\n", "print(1)\n"]
    # Every plan failed every test: the tie goes to the likelier plan per token (both -1.0), then order.
    assert work.selection.chosen == 0


def test_a_budget_that_does_not_add_up_is_refused_with_the_setting_that_would():
    with pytest.raises(ValidationError, match="codes_per_plan 3 would"):
        SamplingConfig(strategy="plan-sampling", num_plans=2, codes_per_plan=2, num_samples=2, budget=8)
    with pytest.raises(ValidationError, match="needs budget"):
        SamplingConfig(strategy="direct-rerank", num_samples=2)
    with pytest.raises(ValidationError, match="generates 3 programs"):
        SamplingConfig(strategy="direct", num_samples=3, budget=8)
    assert SamplingConfig(strategy="direct", num_samples=8, budget=8).programs_per_problem() == 8
