"""The project's own format: one `Problem.to_record()` object a line (gzipped or not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from codeplan.data.common import InvalidRecords, read_json_lines
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


def load_canonical(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    for number, record in read_json_lines(path, invalid):
        try:
            problem = problem_from_record(record, path=path, line=number)
            check_tests(problem, path=path, line=number)
            yield problem
        except InputError as err:
            invalid.add(err)
