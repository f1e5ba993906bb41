"""Sampling strategies on a scripted model and a scripted judge: which programs are submitted, and
what each strategy spends (the budget that makes arms comparable)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from codeplan.llm import Completion
from codeplan.problems import Problem, TestCase
from codeplan.samples import Budget, summarize_samples
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
    cpu_seconds: float = 0.0


class ScriptedJudge:
    """`print(k)` passes k of the problem's two tests (the last programs pass both) in 0.25 x (k + 1)
    CPU seconds."""

    def __init__(self) -> None:
        self.tasks = []

    def run(self, tasks):
        self.tasks += tasks
        verdicts = []
        for task in tasks:
            assert task.tests == "public" and not task.early_exit  # selection counts every test
            k = int(task.code.strip()[len("print("):-1])
            verdicts.append(Verdict(passed=k == 2, tests_passed=k, tests_total=2, cpu_seconds=0.25 * (k + 1)))
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


class BusyModel(ScriptedModel):
    """A scripted model that works like a local backend: its own thread spends `cpu` seconds of CPU
    per call (llama.cpp and torch compute in threads of the generating process)."""

    def __init__(self, programs: list[str], cpu: float) -> None:
        super().__init__(programs)
        self.cpu = cpu

    def generate(self, prompts, params):
        def spin() -> None:
            start = time.thread_time()
            while time.thread_time() - start < self.cpu:
                pass

        worker = threading.Thread(target=spin)
        worker.start()
        worker.join()
        return super().generate(prompts, params)


def test_cpu_seconds_are_the_chunks_process_cpu_shared_evenly_plus_each_problems_judged_programs():
    cfg = SamplingConfig(strategy="direct-rerank", budget=2, num_samples=1)
    works = [ProblemWork(PROBLEM), ProblemWork(PROBLEM.model_copy(update={"id": "q"}))]
    # p's programs print 2, 2 (judged in 0.75 + 0.75 CPU s); q's print 0, 1 (0.25 + 0.5).
    run_chunk(works, cfg, BusyModel(["print(2)", "print(2)", "print(0)", "print(1)"], cpu=0.4), ScriptedJudge())
    first, second = (w.budget for w in works)
    # The same share of the chunk's process CPU each (the model thread's 0.4 s at least, split in
    # two), so the problems differ by exactly their own judged programs' CPU.
    assert first.cpu_seconds - second.cpu_seconds == pytest.approx(1.5 - 0.75)
    shared = second.cpu_seconds - 0.75
    assert 0.2 <= shared < 0.2 + 0.5  # the model thread's share; the rest is this process's own overhead
    assert first.to_record()["cpu_seconds"] == round(first.cpu_seconds, 3)


def test_cpu_seconds_add_up_over_every_phase_of_plan_sampling():
    cfg = SamplingConfig(strategy="plan-sampling", num_plans=2, codes_per_plan=2, num_samples=1, final="best-judged")
    work = ProblemWork(PROBLEM)
    run_chunk([work], cfg, BusyModel(["print(1)", "print(0)", "print(0)", "print(2)"], cpu=0.1), ScriptedJudge())
    judged = 0.5 + 0.25 + 0.25 + 0.75
    # Two model calls (plans, then programs), each spending 0.1 s in its thread.
    assert judged + 0.2 <= work.budget.cpu_seconds < judged + 0.2 + 0.5


def _samples_file(path, budgets: dict[str, dict]) -> None:
    """Two lines a problem, each carrying its problem's budget (as generate writes them)."""
    path.write_text("".join(json.dumps({"problem_id": pid, "sample_index": i, "code": "print(1)\n", "strategy": "direct",
                                        "problem_samples": 2, "budget": budget}) + "\n"
                            for pid, budget in budgets.items() for i in range(2)))


def test_summary_totals_cpu_seconds_and_says_unknown_where_a_problem_did_not_record_them(tmp_path):
    recorded = {**Budget(model_calls=1, sequences=2, programs=2, completion_tokens=40, seconds=3.0).to_record(),
                "cpu_seconds": 2.5}
    old = {key: value for key, value in recorded.items() if key != "cpu_seconds"}  # before codeplan recorded CPU
    samples = tmp_path / "samples.jsonl"
    _samples_file(samples, {"a": recorded, "b": {**recorded, "cpu_seconds": 1.5}})
    summary = summarize_samples(samples)
    assert summary["budget"]["cpu_seconds"] == 4.0 and summary["budget_per_problem"]["cpu_seconds"] == 2.0
    assert summary["budget"]["programs"] == 4  # a problem counts once, not once per line

    _samples_file(samples, {"a": old, "b": old})  # an older file: unknown, not 0
    summary = summarize_samples(samples)
    assert summary["budget"]["cpu_seconds"] is None and summary["budget_per_problem"]["cpu_seconds"] is None
    assert summary["budget"]["seconds"] == 6.0  # what was recorded still totals

    _samples_file(samples, {"a": recorded, "b": old})  # resumed across the change: a part is not the total
    assert summarize_samples(samples)["budget"]["cpu_seconds"] is None
