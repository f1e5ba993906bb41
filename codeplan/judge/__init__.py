"""The judge: runs untrusted programs in a sandbox and grades them with APPS-compatible rules.

    from codeplan.judge import Judge, JudgeConfig, JudgeTask
    with Judge(JudgeConfig(workers=2)) as judge:
        results = judge.run([JudgeTask(problem=problem, code=code, tests="hidden")])

See docs/judge.md for the isolation design, the comparison rules and the limits.
"""

from codeplan.judge.pool import (DEFAULT_TIMEOUT, VERDICTS, Judge, JudgeConfig, JudgeTask, ProgramResult,
                                 default_timeout, split_assert)

__all__ = ["DEFAULT_TIMEOUT", "VERDICTS", "Judge", "JudgeConfig", "JudgeTask", "ProgramResult", "default_timeout",
           "split_assert"]
