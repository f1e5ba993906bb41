"""One `Problem` type for every benchmark, and its canonical JSONL form.

Kinds of problem, which decide how the judge runs a program:
- `stdin`:  a whole program reading standard input and writing standard output (APPS, Codeforces).
  A test's `input` and `output` are strings.
- `call`:   a program defining the function `entry_point` (or a LeetCode-style `class Solution`
  with that method). A test's `input` is the list of positional arguments and `output` the expected
  return value. When `outputs_from_solution` is set (HumanEval+/MBPP+), outputs are absent and the
  judge derives them by running the first reference solution, as evalplus does.
- `assert`: a program checked by Python assertions (MBPP, HumanEval). A test's `input` is the
  assertion source code, run after the program and `test_setup`; `output` is unused.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codeplan.errors import InputError
from codeplan.jsonl import iter_jsonl, write_jsonl

Kind = Literal["stdin", "call", "assert"]
DIFFICULTIES = ("introductory", "interview", "competition")


class TestCase(BaseModel):
    """One test: see the module docstring for what `input` and `output` hold per kind."""

    __test__ = False  # not a pytest class
    # Test values may be inf or nan (MBPP+ inputs); pydantic's JSON mode would turn them into null.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    input: Any = None
    output: Any = None


class Problem(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")

    id: str
    source: str = "custom"
    statement: str
    starter_code: str = ""
    kind: Kind
    entry_point: str | None = None
    solutions: list[str] = Field(default_factory=list)
    # The examples shown in the statement: the only tests plan sampling may look at.
    public_tests: list[TestCase] = Field(default_factory=list)
    # The tests a program is graded on; never shown to the model or to plan selection.
    hidden_tests: list[TestCase] = Field(default_factory=list)
    test_setup: str = ""
    outputs_from_solution: bool = False
    atol: float = 0.0
    difficulty: str | None = None
    split: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def answer_type(self) -> str:
        """The method's answer-type line: stdin programs vs. function completion."""
        return "Use Standard Input format" if self.kind == "stdin" else "Use Call-Based format"


def problem_from_record(record: dict[str, Any], *, path: str | Path, line: int) -> Problem:
    """Validate one canonical record, turning pydantic's error into a one-line InputError."""
    try:
        return Problem.model_validate(record)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InputError(first["msg"], path=path, line=line, record=str(record.get("id", "")) or None, field=field) from None


def read_problems(path: str | Path) -> list[Problem]:
    """Read a canonical problems JSONL file (gzipped or not)."""
    return [problem_from_record(record, path=path, line=number) for number, record in iter_jsonl(path)]


def write_problems(path: str | Path, problems: Iterable[Problem]) -> None:
    write_jsonl(path, [problem.to_record() for problem in problems])
