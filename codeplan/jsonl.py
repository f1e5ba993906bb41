"""JSON Lines I/O shared by every stage: strict reading, crash-safe appending, resume.

Each stage appends one record per finished unit of work and flushes it to disk at once, so a crash
or Ctrl-C loses at most the record being written. A torn last line (the process died mid-write) is
detected on the next run and cut off before new records are appended. A write that fails (a full
disk, a quota) is cut back to the last whole record at once and ends the run with `WriteFailed`
naming the file; the next run, with space, resumes from there.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from codeplan.errors import InputError, SetupError


class WriteFailed(SetupError):
    """An output could not be written (no space left, quota, I/O error); what was whole is kept."""

    def __init__(self, path: Path, err: OSError) -> None:
        super().__init__(f"cannot write {path}: {err.strerror or err}; the records written before are kept - "
                         "free space and run the same command again to resume")


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
    """Append records one at a time; each write reaches the file (and, with fsync, the disk) before
    returning. Unbuffered on purpose: a failed write leaves nothing in a buffer for close() to
    append later, so cutting the file back to the record boundary is final."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fsync = fsync
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._writing = threading.Lock()  # callbacks on worker threads may write too

    def write(self, record: dict[str, Any]) -> None:
        assert self._fd is not None, f"{self.path} is closed"
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._writing:
            start = os.fstat(self._fd).st_size  # one process per file: the output lock sees to it
            try:
                written = 0
                while written < len(data):  # os.write may write part (a nearly full disk)
                    written += os.write(self._fd, data[written:])
                if self._fsync:
                    os.fsync(self._fd)
            except OSError as err:
                try:
                    os.ftruncate(self._fd, start)  # no torn record: back to the last whole one
                except OSError:
                    pass  # repair_torn_tail cuts it on the next run
                raise WriteFailed(self.path, err) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write a whole file atomically (temp file + rename): readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_whole(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def write_json(path: str | Path, obj: Any) -> None:
    """Write one JSON document atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_whole(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _write_whole(path: Path, text: str) -> None:
    """Temp file + rename; on failure the temp file goes and `path` is as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(path, err) from None
