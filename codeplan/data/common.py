"""Helpers every loader shares: reading records line by line and collecting bad ones."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from codeplan.errors import InputError
from codeplan.jsonl import iter_jsonl, open_text
from codeplan.problems import Problem


class InvalidRecords:
    """Where loaders report a bad record: raised at once, or (skip_invalid) counted and skipped."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.errors: list[InputError] = []

    def add(self, err: InputError) -> None:
        if not self.skip:
            raise err
        self.errors.append(err)

    def warn(self) -> None:
        """One counted warning on stderr (stdout may carry --json output)."""
        if not self.errors:
            return
        print(f"warning: skipped {len(self.errors)} invalid record(s); first: {self.errors[0]}", file=sys.stderr)


def load_records(path: Path, invalid: InvalidRecords,
                 from_record: Callable[..., Problem]) -> Iterator[Problem]:
    """Problems from a JSONL file, one `from_record(record, path=, line=)` call per line; a bad line
    or record goes to `invalid` and reading goes on."""
    for number, record in iter_jsonl(path, on_invalid=invalid.add):
        try:
            yield from_record(record, path=path, line=number)
        except InputError as err:
            invalid.add(err)


def first_record(path: Path) -> dict[str, Any] | None:
    """The first JSON object of a JSONL file, for format detection; None when there is none."""
    with open_text(path) as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return record if isinstance(record, dict) else None
    return None


class Fields:
    """Typed access to one record's fields; every failure names file, line/folder and field."""

    def __init__(self, record: dict[str, Any], *, path: str | Path, line: int | None = None,
                 record_id: str | None = None) -> None:
        self.record = record
        self.path = path
        self.line = line
        self.record_id = record_id

    def error(self, message: str, field: str | None = None) -> InputError:
        return InputError(message, path=self.path, line=self.line, record=self.record_id, field=field)

    def get(self, field: str, types: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
        value = self.record.get(field)
        if value is None:
            if required:
                raise self.error("missing field", field)
            return default
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            raise self.error(f"expected {_type_names(types)}, got {type(value).__name__}", field)
        return value

    def json_field(self, field: str, *, required: bool = True, default: Any = None) -> Any:
        """A field holding JSON text (APPS's `solutions`, `input_output`); empty text counts as absent."""
        value = self.record.get(field)
        if value is None or value == "":
            if required:
                raise self.error("missing field", field)
            return default
        if not isinstance(value, str):
            return value  # already decoded (e.g. a re-saved copy): accept it as is
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise self.error(f"not valid JSON text ({err.msg})", field) from None


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {"str": "a string", "list": "a list", "dict": "an object", "int": "an integer", "float": "a number",
             "bool": "true/false"}
    return " or ".join(names.get(t.__name__, t.__name__) for t in _as_tuple(types))
