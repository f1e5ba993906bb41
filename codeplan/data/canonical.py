"""The project's own format: one `Problem.to_record()` object a line (gzipped or not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from codeplan.data.common import InvalidRecords, read_json_lines
from codeplan.errors import InputError
from codeplan.problems import Problem, problem_from_record


def load_canonical(path: Path, invalid: InvalidRecords) -> Iterator[Problem]:
    for number, record in read_json_lines(path, invalid):
        try:
            yield problem_from_record(record, path=path, line=number)
        except InputError as err:
            invalid.add(err)
