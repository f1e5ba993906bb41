"""JSON Lines I/O shared by every stage: strict reading, crash-safe appending, resume.

Each stage appends one record per finished unit of work and flushes it to disk at once, so a crash
or Ctrl-C loses at most the record being written. A torn last line (the process died mid-write) is
detected on the next run and cut off before new records are appended.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from codeplan.errors import InputError


def open_text(path: Path):
    """Open a text file for reading, transparently un-gzipping `.gz` files."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def iter_jsonl(path: str | Path, *, skip_torn_tail: bool = False,
               on_invalid: Callable[[InputError], None] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line_number, object) for each non-blank line; raise InputError naming the bad line,
    or, with `on_invalid`, hand that error to it and read on (`--skip-invalid`).

    With skip_torn_tail, an unparsable *last* line without a trailing newline is ignored: that is
    what a killed writer leaves behind, and `repair_torn_tail` removes it before appending.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    try:
        with open_text(path) as handle:
            lines = handle.readlines()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise InputError(f"cannot read file ({err})", path=path) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            is_tail = number == len(lines) and not line.endswith("\n")
            if skip_torn_tail and is_tail:
                return
            error = InputError(f"not valid JSON ({err.msg} at column {err.colno})", path=path, line=number)
        else:
            if isinstance(record, dict):
                yield number, record
                continue
            error = InputError(f"expected a JSON object, got {type(record).__name__}", path=path, line=number)
        if on_invalid is None:
            raise error
        on_invalid(error)


def read_jsonl(path: str | Path, *, skip_torn_tail: bool = False) -> list[dict[str, Any]]:
    return [record for _, record in iter_jsonl(path, skip_torn_tail=skip_torn_tail)]


def repair_torn_tail(path: str | Path) -> bool:
    """Cut an incomplete last line left by a killed writer. Returns True when something was cut."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(keep)
    return True


class JsonlAppender:
    """Append records one at a time; each write is flushed and fsynced before returning."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fsync = fsync
        self._handle = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        # One write call per record keeps records whole even when several writers share a file.
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write a whole file atomically (temp file + rename): readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_json(path: str | Path, obj: Any) -> None:
    """Write one JSON document atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
