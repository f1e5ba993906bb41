"""One run at a time per output: an exclusive lock on what a stage writes, held for the whole run.

A stage locks its output (a file, the model folder, the run folder) through a sidecar file,
`<output>.lock`, created beside it, locked with `flock` and holding the holder's PID, host and start
time. A second run on the same output finds the lock taken and stops at once with `OutputInUse`
(exit status 2), naming the output and the PID and host holding it.

Invariants:
- The kernel drops a `flock` lock when its holder dies, however it dies (SIGKILL included), so a
  lock is never left held by a dead process. A clean exit also removes the lock file; a lock file
  found on acquiring is therefore one a dead process left, and taking it over is logged.
- A lock file is only removed by its holder while holding it; a run that opened a lock file which
  was removed meanwhile sees another inode at the path and tries again, so two runs never both
  hold "the" lock through two different files.
- Locks are re-entrant within a process: `codeplan run` holds the run folder and calls the stages
  in-process, and a stage called twice on one output inside a locked block does not lock itself out.
  Locks are per output: the run folder's lock does not cover, or block, the stage outputs inside it.

Network file systems: on Linux NFS clients (v3 with lockd, v4) `flock` is emulated with POSIX
byte-range locks, which the server arbitrates across hosts, so the lock works between machines.
On a mount with `local_lock=flock` or `local_lock=all` (or `nolock`), locks are local to each client:
two hosts can then both take the lock. The holder's host is recorded, so taking over a lock file
written on another host is logged with a warning; on such a mount keep each output to one host
(run a stage's jobs from one node, or give each job its own output). Some FUSE and object-store
mounts do not support `flock` at all; the lock then fails with a clear error naming the file.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from codeplan.errors import SetupError

# Lock files this process holds: resolved path -> [open descriptor, depth of nested holds].
_HELD: dict[str, list[int]] = {}

F = TypeVar("F", bound=Callable[..., Any])


class OutputInUse(SetupError):
    """Another live run holds the lock on this output."""


def lock_path(output: str | Path) -> Path:
    """The sidecar lock file of an output (a file or a folder): `<output>.lock` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


def _holder(path: Path) -> dict[str, str]:
    """What the lock file says about its holder: pid, host, since (empty when unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    return {k: v for k, v in fields.items() if k in ("pid", "host", "since")}


def _open_locked(path: Path, output: Path) -> tuple[int, dict[str, str]]:
    """An open descriptor of `path` holding its exclusive lock, and the previous holder it names
    (a dead run's leftover file, else empty)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _holder(path)
                who = f"PID {holder.get('pid', '?')} on {holder.get('host', 'an unknown host')}"
                since = f" since {holder['since']}" if "since" in holder else ""
                raise OutputInUse(f"{output} is in use by another run ({who}{since}, lock file {path}); "
                                  "wait for it to finish or stop it, then run again") from None
            raise SetupError(f"cannot lock {path} ({err.strerror}); the file system may not support "
                             "flock: put the output on a local disk") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, _holder(path)
        os.close(fd)  # the holder removed this file while we waited for it: lock the new one


@contextmanager
def hold_output(output: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock on `output` for the block; yields the lock file's path.
    Raises OutputInUse when a live run holds it."""
    output = Path(output)
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _HELD:  # this process holds it already (the pipeline calling a stage): nest
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    fd, previous = _open_locked(path, output)
    host = socket.gethostname()
    if previous.get("pid"):
        note = f"note: took over {path}: a stale lock file from PID {previous['pid']} on {previous.get('host', '?')}"
        if previous.get("host") not in (None, host):
            note += (" (another host: if that run is still going, this file system does not share locks "
                     "between hosts, see docs/pipeline.md)")
        print(note, file=sys.stderr, flush=True)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid={os.getpid()} host={host} since={time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(), 0)
    _HELD[key] = [fd, 1]
    try:
        yield path
    finally:
        del _HELD[key]
        try:
            path.unlink()  # while still holding the lock: see the module docstring
        except OSError:
            pass
        os.close(fd)


def locks_output(output: Callable[[Any], str | Path], *, when: Callable[[], bool] = lambda: True) -> Callable[[F], F]:
    """Decorate a stage function `f(cfg, ...)` so it runs holding the lock on `output(cfg)`
    (only where `when()` is true: e.g. on the main rank of a distributed run)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def locked(cfg: Any, *args: Any, **kwargs: Any) -> Any:
            if not when():
                return func(cfg, *args, **kwargs)
            with hold_output(output(cfg)):
                return func(cfg, *args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate


def main_rank() -> bool:
    """True outside distributed launches and on global rank 0 of one (torchrun and accelerate set RANK)."""
    return os.environ.get("RANK", "0") == "0"
