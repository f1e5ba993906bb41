"""MBPP (the original JSONL: text, code, task_id, test_setup_code, test_list, challenge_test_list).

The public test is the first assertion of test_list, shown in the statement as MBPP prompts do;
the hidden tests are the whole test_list, so that first assertion is graded too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codeplan.data.common import Fields, InvalidRecords, load_records
from codeplan.problems import Problem, TestCase

# The standard MBPP splits by task_id (Austin et al. 2021).
SPLIT_RANGES = (("prompt", 1, 10), ("test", 11, 510), ("validation", 511, 600), ("train", 601, 974))


def mbpp_split(task_id: int) -> str | None:
    for name, low, high in SPLIT_RANGES:
        if low <= task_id <= high:
            return name
    return None


def asserted_function(assertion: str) -> str | None:
    """The function an assertion calls first: `assert f(1) == 2` -> "f"."""
    found = re.search(r"assert\s+(?:not\s+)?\(?\s*(?:set|sorted|math\.isclose|abs|round)?\(?\s*([A-Za-z_]\w*)\s*\(",
                      assertion)
    return found.group(1) if found else None


def with_example(text: str, assertion: str | None) -> str:
    """The statement: the task's text, then its first test as the example."""
    text = text.strip()
    return f"{text}\nYour code should pass this test:\n{assertion.strip()}\n" if assertion else text + "\n"


def mbpp_from_record(record: dict[str, Any], *, path: str | Path, line: int | None) -> Problem:
    raw_id = record.get("task_id")
    fields = Fields(record, path=path, line=line, record_id=None if raw_id is None else str(raw_id))
    task_id = fields.get("task_id", int)
    tests = fields.get("test_list", list)
    if not tests or not all(isinstance(t, str) for t in tests):
        raise fields.error("expected a non-empty list of assertion strings", "test_list")
    challenge = fields.get("challenge_test_list", list, required=False, default=[])
    code = fields.get("code", str).replace("\r\n", "\n")
    # The "sanitized" MBPP release names the text `prompt` and lists imports in `test_imports`.
    text = fields.get("text" if "text" in record or "prompt" not in record else "prompt", str)
    setup = fields.get("test_setup_code", str, required=False, default="").replace("\r\n", "\n")
    imports = fields.get("test_imports", list, required=False, default=[])
    if imports:
        setup = "\n".join([*imports, setup]).strip("\n")
    return Problem(
        id=str(task_id), source="mbpp", statement=with_example(text, tests[0]), kind="assert",
        entry_point=asserted_function(tests[0]), solutions=[code], public_tests=[TestCase(input=tests[0])],
        hidden_tests=[TestCase(input=t) for t in tests], test_setup=setup,
        split=mbpp_split(task_id), metadata={"challenge_test_list": challenge} if challenge else {})


def load_mbpp(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    return load_records(path, invalid, mbpp_from_record)
