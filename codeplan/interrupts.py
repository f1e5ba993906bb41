"""SIGTERM handled like Ctrl-C: how a scheduler's stop becomes the stages' "interrupted" path.

Schedulers (Slurm, Kubernetes, systemd) stop a job with SIGTERM, then SIGKILL after a grace period.
Inside `stop_on_signals()` the first SIGINT or SIGTERM raises `Interrupted`, a KeyboardInterrupt,
in the main thread, so every stage's Ctrl-C path runs: the item in flight is finished or dropped,
what is done is flushed (train saves a checkpoint), and the CLI exits with `exit_status()`:
130 after SIGINT, 143 after SIGTERM (128 + the signal's number, as a shell reports it).
From the first signal on, both signals take their default action: a second one stops the process
at once, in the middle of clean-up if need be (the output files stay resumable: see jsonl.py).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(error: KeyboardInterrupt) -> int:
    """128 + the signal's number: 130 for Ctrl-C (and a plain KeyboardInterrupt), 143 for SIGTERM."""
    return 128 + getattr(error, "signum", signal.SIGINT)


def _first_signal(signum: int, frame: FrameType | None) -> None:
    for each in SIGNALS:
        signal.signal(each, signal.SIG_DFL)
    raise Interrupted(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM raises Interrupted; the handlers before are
    restored after. Outside the main thread (signals cannot be handled there) it does nothing."""
    try:
        previous = {each: signal.signal(each, _first_signal) for each in SIGNALS}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
