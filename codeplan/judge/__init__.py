"""The judge: runs untrusted programs in a sandbox and grades them with APPS-compatible rules.

    from codeplan.judge import Judge, JudgeConfig, JudgeTask
    with Judge(JudgeConfig(workers=2)) as judge:
        results = judge.run([JudgeTask(problem=problem, code=code, tests="hidden")])

Modules: `config` (JudgeConfig, verdicts, default limits), `pool` (the worker pool and `Judge.run`),
`asserts` (assertion tests split so the expected value stays in the judge), `calibrate` (reference
solutions: HumanEval+/MBPP+ expected outputs, calibrated limits), `compare` (output comparison),
`sandbox` and `_worker` (the isolated worker process). See docs/judge.md for the isolation design,
the comparison rules and the limits.
"""

from codeplan.judge.asserts import split_assert
from codeplan.judge.config import DEFAULT_TIMEOUT, VERDICTS, JudgeConfig, default_timeout
from codeplan.judge.pool import Judge, JudgeTask, ProgramResult

__all__ = ["DEFAULT_TIMEOUT", "VERDICTS", "Judge", "JudgeConfig", "JudgeTask", "ProgramResult", "default_timeout",
           "split_assert"]
