"""Reference solutions as the judge uses them: the expected outputs of HumanEval+/MBPP+ problems
(whose tests carry inputs only) and, with `calibrate`, CPU limits sized from the reference's times.

A problem's first reference solution is run at most once per judge, and what it gave is kept under
the reference run's key (its code and every input), so evaluate's cache can store and restore it.
This module decides what to run, with which limits, and what the replies mean; the runs themselves
go through the judge's workers (`Judge.prepare_references` in pool.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from codeplan.data.humaneval import convert_evalplus_arg
from codeplan.errors import SetupError
from codeplan.judge._worker import Opaque, decode_value, encode_value
from codeplan.judge.config import JudgeConfig, default_timeout
from codeplan.problems import Problem, TestCase

# The expected value of a HumanEval+/MBPP+ test on which the reference solution failed.
REFERENCE_FAILED = "reference-failed"


class References:
    """What the judge knows of each problem's first reference solution, by the reference run's key:
    its value on every test (public tests first, then hidden; HumanEval+/MBPP+ only) and its
    slowest test's CPU seconds (< 0: it passed none)."""

    def __init__(self, cfg: JudgeConfig) -> None:
        self.cfg = cfg
        self._outputs: dict[str, list[Any]] = {}
        self._cpu: dict[str, float] = {}
        self._keys: dict[int, tuple[Problem, str]] = {}  # id(problem) -> key (the problem is held, so ids stay unique)

    def key(self, problem: Problem) -> str:
        """The reference run's identity (hashed once per problem object)."""
        known = self._keys.get(id(problem))
        if known is None or known[0] is not problem:
            known = self._keys[id(problem)] = (problem, reference_key(problem))
        return known[1]

    def outputs(self, problem: Problem) -> tuple[list[Any], float] | None:
        """The expected outputs derived from the reference solution, and its slowest test's CPU seconds."""
        key = self.key(problem)
        if key not in self._outputs:
            return None
        return self._outputs[key], self._cpu.get(key, 0.0)

    def set_outputs(self, problem: Problem, values: list[Any], cpu: float = 0.0) -> None:
        key = self.key(problem)
        self._outputs[key], self._cpu[key] = values, cpu

    def time(self, problem: Problem) -> float | None:
        """Calibration: the reference's slowest passing test in CPU seconds (< 0: it passed none),
        None when not measured yet."""
        return self._cpu.get(self.key(problem))

    def set_time(self, problem: Problem, cpu: float) -> None:
        self._cpu[self.key(problem)] = cpu

    def expected(self, problem: Problem, which: str) -> list[Any] | None:
        """The derived expected outputs of the problem's public or hidden tests, in test order."""
        values = self._outputs.get(self.key(problem))
        if values is None:
            return None
        public = len(problem.public_tests)
        return values[:public] if which == "public" else values[public:]

    def calibrated(self, problem: Problem) -> bool:
        return self.cfg.calibrate and bool(problem.solutions)

    def cpu_limit(self, problem: Problem) -> float:
        """CPU seconds per test: the configured timeout, else the benchmark's default, which the
        reference's measured time raises (HumanEval+/MBPP+) or replaces (`calibrate`)."""
        cfg = self.cfg
        cpu = cfg.timeout or default_timeout(problem)
        if cfg.timeout is None and (problem.outputs_from_solution or self.calibrated(problem)):
            measured = self._cpu.get(self.key(problem))
            if self.calibrated(problem) and measured is not None and measured >= 0:
                cpu = max(cfg.calibrate_min, cfg.calibrate_factor * measured)
            elif problem.outputs_from_solution:
                cpu = max(cpu, cfg.calibrate_factor * max(measured or 0.0, 0.0))
        return cpu

    def missing(self, problems: Iterable[Problem]) -> tuple[list[Problem], list[Problem]]:
        """The problems whose expected outputs are still to be derived, and those whose reference
        is still to be timed (`calibrate` without an explicit timeout): one of each per key."""
        to_derive: dict[str, Problem] = {}
        to_time: dict[str, Problem] = {}
        for problem in problems:
            key = self.key(problem)
            if problem.outputs_from_solution and key not in self._outputs:
                if not problem.solutions:
                    raise SetupError(f"problem {problem.id}: outputs_from_solution is set but it has no reference solution")
                to_derive[key] = problem
            elif (self.calibrated(problem) and self.cfg.timeout is None and not problem.outputs_from_solution
                  and key not in self._cpu):
                to_time[key] = problem
        return list(to_derive.values()), list(to_time.values())


def reference_key(problem: Problem) -> str:
    """The reference run's identity: its code and every input."""
    inputs = [t.input for t in problem.public_tests] + [t.input for t in problem.hidden_tests]
    blob = json.dumps([problem.solutions[:1], inputs, problem.entry_point, problem.metadata.get("tuple_args"),
                       problem.metadata.get("arg_types")],
                      sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def reference_limits(limits: dict[str, Any], wall_factor: float) -> dict[str, Any]:
    """A problem's limits with room for its reference solution, which is trusted to finish."""
    limits = dict(limits)
    limits["cpu"] = max(limits["cpu"], 20.0)
    limits["wall"] = limits["cpu"] * wall_factor + 1.0
    return limits


def every_test(problem: Problem) -> Problem:
    """The problem with all its tests, public then hidden, as hidden tests (a timing run covers both)."""
    return problem.model_copy(update={"public_tests": [], "hidden_tests": [*problem.public_tests, *problem.hidden_tests]})


def slowest_passing(test_cpu: list[float], verdicts: list[str]) -> float:
    """A timing run's result: its slowest passing test's CPU seconds, or -1 when it passes none (a
    broken reference says nothing about how long a test should take)."""
    passing = [cpu for cpu, verdict in zip(test_cpu, verdicts) if verdict == "pass"]
    return max(passing) if passing else -1.0


def outputs_job(problem: Problem, limits: dict[str, Any], recursion_limit: int) -> dict[str, Any]:
    """The worker message that runs the first reference solution on every test, public then hidden,
    each returning its value."""
    tests = [*problem.public_tests, *problem.hidden_tests]
    return {"op": "program", "code": problem.solutions[0], "entry_point": problem.entry_point or "", "setup": "",
            "preamble": False, "limits": limits, "recursion_limit": recursion_limit, "tests": len(tests),
            "run": [{"op": "test", "mode": "call", "input": encode_value(evalplus_args(problem, test))} for test in tests]}


def reference_value(raw: dict[str, Any]) -> Any:
    """The value a test's reply says the reference returned; a REFERENCE_FAILED marker when it failed."""
    status = raw.get("status") or {}
    if status.get("ok") and "value" in status:
        return decode_value(status["value"])
    return Opaque(REFERENCE_FAILED, str(status.get("exc") or raw.get("signal")))


def evalplus_args(problem: Problem, test: TestCase) -> list[Any]:
    """The positional arguments of a HumanEval+/MBPP+ test. JSON has no tuples, sets or complex
    numbers, so each argument is turned back into the value it stands for, by the rules the loader
    recorded in `metadata["arg_types"]` (evalplus does the same when it loads its data). Problems
    written by earlier versions carry only `metadata["tuple_args"]`: those positions are tuples."""
    args = list(test.input) if isinstance(test.input, (list, tuple)) else [test.input]
    arg_types = problem.metadata.get("arg_types") or [
        {"containers": ["tuple"]} if i in problem.metadata.get("tuple_args", []) else None for i in range(len(args))]
    return [convert_evalplus_arg(arg, arg_types[i] if i < len(arg_types) else None) for i, arg in enumerate(args)]
