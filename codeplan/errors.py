"""Errors a user can act on. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input: names the file, the record (line number or folder) and the field at fault."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        record: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.record = record
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.record:
            where += f" [{self.record}]"
        if self.field:
            where += f" field '{self.field}'"
        return f"{where}: {self.message}" if where else self.message


class SetupError(Exception):
    """The environment cannot do what was asked (missing package, no sandbox, unreachable hub)."""
