"""APPS compatibility: a stdin test's input is also readable as ./input.txt (the official harness
mocks `open`, so Codeforces-style programs that read input.txt pass there)."""

from __future__ import annotations

import pytest

from codeplan.judge import Judge, JudgeConfig, JudgeTask
from codeplan.problems import Problem, TestCase

SUM = Problem(id="sum", statement="", kind="stdin",
              hidden_tests=[TestCase(input="1 2\n", output="3\n"), TestCase(input="5 5\n", output="10\n"),
                            TestCase(input="-1 1\n", output="0\n")])
LISTING = Problem(id="input-txt-left", statement="", kind="call", entry_point="files",
                  hidden_tests=[TestCase(input=[], output=[False])])

# Codeforces style: stdin replaced by input.txt, the answer written to stdout.
CODEFORCES = "import sys\nsys.stdin = open('input.txt', 'r')\na, b = map(int, input().split())\nprint(a + b)\n"
# Reads the file, then vandalises it: the next test must still see its own input.
VANDAL = ("with open('input.txt') as f:\n    a, b = map(int, f.read().split())\nprint(a + b)\n"
          "open('input.txt', 'w').write('999 999')\n")
# Writes its answer to output.txt as well: only stdout is compared, as in the harness.
OUTPUT_FILE = "a, b = map(int, open('input.txt').read().split())\nopen('output.txt', 'w').write(str(a + b))\n"


@pytest.fixture(scope="module", params=[True, False], ids=["sandbox", "unsafe"])
def judge(request):
    with Judge(JudgeConfig(workers=1, timeout=2.0, sandbox=request.param)) as running:
        yield running


def verdicts(judge: Judge, problem: Problem, *codes: str) -> list[str]:
    return [result.verdict for result in judge.run([JudgeTask(problem=problem, code=code) for code in codes])]


def test_stdin_programs_read_input_txt(judge):
    assert verdicts(judge, SUM, CODEFORCES, VANDAL, OUTPUT_FILE) == ["pass", "pass", "wrong_answer"]
    # Each test wrote its own input: all three tests of the vandal passed, not only the first.
    assert judge.run([JudgeTask(problem=SUM, code=VANDAL)])[0].tests_passed == 3


def test_input_txt_is_gone_after_the_test(judge):
    # One worker: the listing program runs right after a stdin program in the same directory.
    judge.run([JudgeTask(problem=SUM, code=CODEFORCES)])
    listing = "import os\ndef files():\n    return 'input.txt' in os.listdir('.')\n"
    assert verdicts(judge, LISTING, listing) == ["pass"]


def test_strict_mode_gives_no_input_txt():
    with Judge(JudgeConfig(workers=1, timeout=2.0, strict=True)) as strict:
        result = strict.run([JudgeTask(problem=SUM, code=CODEFORCES)])[0]
    assert result.verdict == "runtime_error" and "FileNotFoundError" in result.detail
