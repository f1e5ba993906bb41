"""The project's own format: one `Problem.to_record()` object a line (gzipped or not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codeplan.data.common import InvalidRecords, load_records
from codeplan.errors import InputError
from codeplan.problems import Problem, problem_from_record


def check_tests(problem: Problem, *, path: str | Path, line: int | None) -> None:
    """What pydantic cannot see: each test's shape must fit the problem's kind."""
    def fail(message: str, field: str) -> InputError:
        return InputError(message, path=path, line=line, record=problem.id, field=field)

    if problem.kind == "call" and not problem.entry_point:
        raise fail("call problems need the name of the function to call", "entry_point")
    for group in ("public_tests", "hidden_tests"):
        for index, test in enumerate(getattr(problem, group)):
            where = f"{group}.{index}"
            if problem.kind == "stdin":
                if not isinstance(test.input, str):
                    raise fail("stdin tests need a string input", f"{where}.input")
                if not isinstance(test.output, str):
                    raise fail("stdin tests need a string output", f"{where}.output")
            elif problem.kind == "call":
                if not isinstance(test.input, list):
                    raise fail("call tests need a list of arguments", f"{where}.input")
            elif not isinstance(test.input, str) or not test.input.strip():
                raise fail("assert tests need the assertion source as input", f"{where}.input")


def canonical_from_record(record: dict[str, Any], *, path: str | Path, line: int) -> Problem:
    problem = problem_from_record(record, path=path, line=line)
    check_tests(problem, path=path, line=line)
    return problem


def load_canonical(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    return load_records(path, invalid, canonical_from_record)
